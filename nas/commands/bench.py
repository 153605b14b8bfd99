"""``nas bench``: latency (p50 / p90), throughput and peak memory of a model on several runtimes, side by side."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from nas.commands.export import add_model_arguments
from nas.deploy.load import load_model
from nas.deploy.machine import machine_info
from nas.deploy.runtimes import RUNTIMES, check_runtime
from nas.errors import ConfigError
from nas.fileio import atomic_write_json, check_output_file


def comma_list(text: str, field: str, convert: Any = str) -> list[Any]:
    """``"1,8"`` -> ``[1, 8]``; a bad item is a one-line ConfigError on ``field``."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{field} is empty; give a comma-separated list", field=field)
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ConfigError(f"{field} {text!r}: expected a comma-separated list of {convert.__name__} values",
                          field=field) from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="inference latency, throughput and memory on eager PyTorch, TorchScript, ONNX Runtime, int8",
        description="Measure MODEL's inference on each runtime at each batch size and thread count: p50 and "
                    "p90 latency after warm-up, throughput (images/s at p50) and peak memory, in one table with "
                    "the speed-up over eager PyTorch. All configurations run in this process one after another; "
                    "compare ratios, and run on an otherwise idle machine.")
    add_model_arguments(p)
    p.add_argument("--runtime", default=",".join(RUNTIMES), help=f"comma-separated: {', '.join(RUNTIMES)}")
    p.add_argument("--int8", action="store_true", help="also measure the int8 model (ONNX Runtime static "
                                                       "quantization, calibrated on random images)")
    p.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    p.add_argument("--repeats", dest="min_repeats", type=int, default=20, help="timed calls (at least; more until --min-seconds)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds per configuration")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.deploy.bench import bench_model  # torch: the library loads when the command runs, not for --help
    from nas.deploy.measure import TimingPolicy
    from nas.timing import steady_allocator

    runtimes = [check_runtime(name) for name in comma_list(args.runtime, "runtime")]  # before any output
    batches = comma_list(args.batch, "batch", int)
    threads = comma_list(args.threads, "threads", int)
    policy = TimingPolicy(warmup=args.warmup, min_repeats=args.min_repeats, min_seconds=args.min_seconds,
                          max_repeats=max(args.min_repeats, 1000))
    json_path = check_output_file(args.json, "json") if args.json else None
    loaded = load_model(args.model, resolution=args.resolution, ema=args.ema, seed=args.seed)
    console = Console()
    console.print(f"benchmarking {loaded.description}", soft_wrap=True)
    rows = bench_model(loaded.model, loaded.spec, runtimes, batches, threads, int8=args.int8, policy=policy)
    machine = machine_info()
    console.print(bench_table(rows, f"{loaded.spec.name or 'model'} at {loaded.spec.resolution} px on {machine['cpu']}"))
    if json_path is not None:
        atomic_write_json(json_path, {"model": args.model, "spec": loaded.spec.to_dict(), "trained": loaded.trained,
                                      "resolution": loaded.spec.resolution, "machine": machine,
                                      "allocator": steady_allocator(), "policy": policy.__dict__, "results": [r.to_dict() for r in rows]})
        console.print(f"wrote {json_path}")
    return 0


def bench_table(rows: list[Any], title: str) -> Any:
    table = Table(title=title)
    for name in ("threads", "batch", "runtime", "p50 ms", "p90 ms", "img/s", "peak MB", "speed-up"):
        table.add_column(name, justify="left" if name == "runtime" else "right", no_wrap=name == "runtime")
    previous = None
    for row in rows:
        group = (row.threads, row.batch)
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        table.add_row(str(row.threads), str(row.batch), row.runtime, f"{row.latency.p50_ms:.2f}",
                      f"{row.latency.p90_ms:.2f}", f"{row.throughput:.1f}",
                      "-" if row.peak_memory_mb is None else f"{row.peak_memory_mb:.0f}",
                      "-" if row.speedup is None else f"{row.speedup:.2f}x")
    return table
