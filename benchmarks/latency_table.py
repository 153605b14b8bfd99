"""Latency tables: predicted vs measured latency of random full-size candidates (issue 13, item 5).

Run: ``.venv/bin/python benchmarks/latency_table.py`` (defaults: space efficientnet, 224 px, batch 1,
runtimes torch and onnxruntime, 1 thread, 50 candidates, tables kept in ``--tables benchmarks/tables``).

For each runtime it builds the space's table with ``nas.deploy.latency_table.build_latency_table``
(or finishes / reuses the one in ``--tables``: a build takes minutes for torch, about half an hour
for onnxruntime, which exports every block), loads it with ``load_latency_table`` (exactly what the
search calls), then samples ``--candidates`` full-size candidates with ``--seed`` (never the
calibration networks' seed), predicts each with ``LatencyTable.predict_ms`` and measures the whole
network on the same runtime and thread count (the fastest of its timed calls, as the table's
entries are: see nas/deploy/latency_table.py).

Each candidate is measured while the table is built (spread over the build, one after every
entries/(candidates+1) pieces, as the calibration networks are timed) and in ``--passes`` passes
after it (each pass times every candidate once, so a candidate's measurements lie minutes apart).
On a shared host the speed drifts and other tenants only ever slow a call down: the same networks
measured minutes apart differ by a median 2-9%. So besides each measurement it scores the fastest of
a candidate's measurements, the statistic the table's entries already use (the fastest call).
Tables reused from ``--tables`` have no during-build measurement.

It prints, per runtime and measurement, the mean absolute percentage error (MAPE), the share of
candidates within +-10 % (goal: at least 90 %) and the worst error, the raw sum of entries without
calibration, and the fitted calibration. ``--json FILE`` keeps every figure. Run it on an otherwise
idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nas.deploy.latency_table import BuildConfig, build_latency_table, load_latency_table, measure_network
from nas.deploy.machine import machine_info
from search_spaces import make_space


def errors(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """MAPE (%) and the share within +-10 % of the measured latency."""
    relative = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"mape_pct": 100 * statistics.fmean(relative), "within_10pct": sum(r <= 0.10 for r in relative) / len(relative),
            "max_error_pct": 100 * max(relative)}


def validate(space_name: str, runtime: str, threads: int, resolution: int, candidates: int, seed: int,
             tables: Path, piece_seconds: float | None, passes: int) -> dict:
    from dataclasses import replace

    from nas.deploy.latency_table import PIECE_POLICY

    tables.mkdir(parents=True, exist_ok=True)
    space = make_space(space_name)
    path = tables / f"{space.name}_{runtime}_t{threads}_r{resolution}.json"
    policy = PIECE_POLICY if piece_seconds is None else replace(PIECE_POLICY, min_seconds=piece_seconds)
    rng = np.random.default_rng(seed)
    specs = [space.decode(space.sample(rng)).with_(resolution=resolution) for _ in range(candidates)]
    timings: dict[str, list[float]] = {"during build": []}  # measurement -> fastest call (ms) of each candidate

    def progress(phase: str, done: int, total: int) -> None:
        print(f"\r{runtime}: {phase} {done}/{total}", end="", flush=True)
        during = timings["during build"]
        every = total / (candidates + 1)
        if phase == "pieces" and done < total and len(during) < candidates and done >= (len(during) + 1) * every:
            during.append(measure_network(specs[len(during)], runtime, threads).min_ms)

    started = time.perf_counter()
    build_latency_table(BuildConfig(space=space_name, resolution=resolution, runtime=runtime, threads=threads,
                                    piece_policy=policy), path, progress=progress)
    print()
    build_s = time.perf_counter() - started
    if len(timings["during build"]) < candidates:  # a finished table was reused: nothing was timed during a build
        del timings["during build"]
    table = load_latency_table(path, space_name, resolution)
    predicted = [table.predict_ms(spec) for spec in specs]
    for n in range(1, passes + 1):
        name = f"after build, pass {n}"
        timings[name] = []
        for i, spec in enumerate(specs):
            timings[name].append(measure_network(spec, runtime, threads).min_ms)  # the table's statistic
            measured = timings[name][-1]
            print(f"{runtime} {name} {i + 1}/{candidates}: predicted {predicted[i]:.2f} ms, measured {measured:.2f} ms "
                  f"({100 * (predicted[i] - measured) / measured:+.1f}%)", flush=True)
    fastest = [min(column) for column in zip(*timings.values())]
    sums = [table.sum_ms(spec)[0] for spec in specs]
    first = next(iter(timings.values()))
    return {"runtime": runtime, "threads": threads, "table": str(path), "entries": len(table.entries),
            "table_build_s": build_s, "calibration": {k: v for k, v in table.calibration.items() if k != "networks"},
            "fit": table.fitted.describe(), "by_measurement": {name: errors(predicted, ms) for name, ms in timings.items()},
            "fastest": errors(predicted, fastest), "raw_sum": errors(sums, fastest),
            "drift_pct": {name: 100 * (statistics.median(m / f for m, f in zip(ms, first)) - 1)
                          for name, ms in timings.items()},
            "measured_ms": {"min": min(fastest), "median": statistics.median(fastest), "max": max(fastest)},
            "candidates": [{"key": spec.key(), "predicted_ms": p, "sum_ms": raw, "fastest_ms": f,
                            **{name: ms[i] for name, ms in timings.items()}}
                           for i, (spec, p, raw, f) in enumerate(zip(specs, predicted, sums, fastest))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="efficientnet")
    parser.add_argument("--runtimes", default="torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=1, help="measurements of every candidate after the build")
    parser.add_argument("--tables", type=Path, default=Path(__file__).resolve().parent / "tables")
    parser.add_argument("--piece-seconds", type=float, default=None, help="timed seconds per table entry")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.passes < 1:
        parser.error(f"--passes must be >= 1, got {args.passes}")

    results = [validate(args.space, runtime, args.threads, args.resolution, args.candidates, args.seed, args.tables,
                        args.piece_seconds, args.passes)
               for runtime in args.runtimes.split(",")]
    print(f"\n{args.candidates} random {args.space} candidates at {args.resolution} px, batch 1, "
          f"{args.threads} thread(s), on {machine_info()['cpu']}")
    print("| runtime | measured | MAPE | within +-10% | worst | median drift from the first measurement |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for name, e in [*r["by_measurement"].items(), ("fastest of these", r["fastest"]),
                        ("raw sum vs fastest", r["raw_sum"])]:
            drift = r["drift_pct"].get(name)
            print(f"| {r['runtime']} | {name} | {e['mape_pct']:.1f}% | {e['within_10pct']:.0%} | "
                  f"{e['max_error_pct']:.1f}% | {'' if drift is None else f'{drift:+.1f}%'} |")
    for r in results:
        m = r["measured_ms"]
        print(f"{r['runtime']}: {r['entries']} entries, built in {r['table_build_s']:.0f} s; {r['fit']}; candidates "
              f"{m['min']:.1f} / {m['median']:.1f} / {m['max']:.1f} ms (min / median / max)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
