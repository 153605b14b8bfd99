"""``nas latency-table``: build a space's per-block latency table on the target device; predict with it."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas.api import load_spec
from nas.deploy.runtimes import RUNTIMES
from nas.errors import ConfigError


def add_parser(sub: Any) -> None:
    # torch: the library loads when the command runs, not for --help
    from nas.deploy.latency_table import CALIBRATION_NETWORKS, NETWORK_POLICY, PIECE_POLICY

    p = sub.add_parser("latency-table", help="per-block latency tables for platform-aware search",
                       description="Build a latency table on the device you will deploy to, then search anywhere "
                                   "with nas search --cost latency --latency-table FILE.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    b = actions.add_parser(
        "build", help="time every block configuration a space can produce, plus stem and head",
        description="Time, on this machine, every distinct block configuration the space's full-size candidates "
                    "can contain at the target resolution (operator, input size, input/output width, kernel, "
                    "stride, expansion, SE, group size; first and repeated blocks), the stem and every head, at "
                    "batch 1; then time a few whole random candidates to calibrate the sum. The file is written "
                    "as it goes: run the same command again after a kill and it resumes.")
    b.add_argument("--space", required=True, help="built-in space name or a YAML space file")
    b.add_argument("--runtime", default="torch", help=f"one of: {', '.join(RUNTIMES)}")
    b.add_argument("--threads", type=int, default=1, help="inference threads")
    b.add_argument("--resolution", type=int, default=None, help="target resolution (default: the space's)")
    b.add_argument("--in-chans", type=int, default=3, help="input channels of the deployed network")
    b.add_argument("--classes", type=int, default=1000, help="classes of the deployed network")
    b.add_argument("--calibration-networks", type=int, default=CALIBRATION_NETWORKS,
                   help="whole random candidates timed to calibrate the sum")
    b.add_argument("--piece-seconds", type=float, default=PIECE_POLICY.min_seconds,
                   help="minimum timed seconds per table entry (more: steadier medians, longer build)")
    b.add_argument("--network-seconds", type=float, default=NETWORK_POLICY.min_seconds,
                   help="minimum timed seconds per calibration network")
    b.add_argument("--out", required=True, help="table file (JSON); an unfinished one is resumed")
    b.set_defaults(func=run_build)

    q = actions.add_parser(
        "predict", help="predicted latency of a network from a table, with its breakdown",
        description="Predict the batch-1 latency of MODEL (its full-size spec) from a latency table, and "
                    "optionally measure it on this machine for comparison (fastest call, as the table).")
    q.add_argument("model", metavar="MODEL", help="a model.pt, a preset, a spec JSON file (or b0.json) or block "
                                                  "strings")
    q.add_argument("--table", dest="latency_table", required=True, help="the latency table file")
    q.add_argument("--measure", action="store_true", help="also time the whole network here")
    q.set_defaults(func=run_predict)


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total, completed=done)
            progress.update(tasks[phase], completed=done, total=total)

        yield update


def run_build(args: argparse.Namespace) -> int:
    # torch: the library loads when the command runs, not for --help
    from nas.deploy.latency_table import NETWORK_POLICY, PIECE_POLICY, BuildConfig, build_latency_table

    for name in ("piece_seconds", "network_seconds"):
        if not getattr(args, name) >= 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(args, name)}", field=name)
    config = BuildConfig(space=args.space, resolution=args.resolution, runtime=args.runtime, threads=args.threads,
                         in_chans=args.in_chans, num_classes=args.classes,
                         calibration_networks=args.calibration_networks,
                         piece_policy=replace(PIECE_POLICY, min_seconds=args.piece_seconds),
                         network_policy=replace(NETWORK_POLICY, min_seconds=args.network_seconds))
    console = Console()
    with _progress_bar(sys.stderr.isatty() or sys.stdout.isatty()) as update:
        table = build_latency_table(config, args.out, progress=update)
    cal = table.calibration
    console.print(f"wrote {table.path}: space {table.space}, {table.resolution} px, {table.runtime} with "
                  f"{table.threads} thread(s), {len(table.entries)} entries on {table.header['machine']['cpu']}",
                  soft_wrap=True)
    console.print(f"calibration on {len(cal['networks'])} whole networks: {table.fitted.describe()}", soft_wrap=True)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    # torch: the library loads when the command runs, not for --help
    from nas.deploy.latency_table import measure_network, read_table

    table = read_table(args.latency_table)
    spec = load_spec(args.model)
    predicted = table.predict_ms(spec)
    total, parts = table.sum_ms(spec)
    console = Console()
    view = Table(title=f"{spec.name or 'network'} from {table.path} ({table.runtime}, {table.threads} thread(s))")
    for name in ("part", "entry", "ms"):
        view.add_column(name, justify="right" if name == "ms" else "left")
    for where, key, ms in parts:
        view.add_row(where, key, f"{ms:.3f}")
    console.print(view)
    console.print(f"sum of entries {total:.3f} ms; predicted {predicted:.3f} ms", soft_wrap=True)
    if args.measure:
        latency = measure_network(spec, table.runtime, table.threads)
        measured = latency.min_ms  # the table's statistic: the fastest call
        console.print(f"measured here {measured:.3f} ms, fastest call (median {latency.p50_ms:.3f} ms); error "
                      f"{100 * (predicted - measured) / measured:+.1f}%", soft_wrap=True)
    return 0
