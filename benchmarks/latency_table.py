"""Latency tables: predicted vs measured latency of random full-size candidates (issue 13, item 5).

Run: ``.venv/bin/python benchmarks/latency_table.py`` (defaults: space efficientnet, 224 px, batch 1,
runtimes torch and onnxruntime, 1 thread, 50 candidates, tables kept in ``--tables benchmarks/tables``).

For each runtime it builds the space's table with ``nas.deploy.latency_table.build_latency_table``
(or finishes / reuses the one in ``--tables``: a build takes minutes for torch, about half an hour
for onnxruntime, which exports every block), loads it with ``load_latency_table`` (exactly what the
search calls), then samples ``--candidates`` full-size candidates with ``--seed`` (never the
calibration networks' seed), predicts each with ``LatencyTable.predict_ms`` and measures the whole
network on the same runtime and thread count (the fastest of its timed calls, as the table's
entries are: see nas/deploy/latency_table.py). It prints, per runtime, the mean absolute percentage
error (MAPE), the share of candidates within +-10 % (goal: at least 90 %), the same two figures for
the raw sum of entries without calibration, and the worst candidates. ``--json FILE`` keeps every
figure. Run it on an otherwise idle machine: the table and the networks must see the same load.
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
             tables: Path, piece_seconds: float | None) -> dict:
    from dataclasses import replace

    from nas.deploy.latency_table import PIECE_POLICY

    tables.mkdir(parents=True, exist_ok=True)
    space = make_space(space_name)
    path = tables / f"{space.name}_{runtime}_t{threads}_r{resolution}.json"
    policy = PIECE_POLICY if piece_seconds is None else replace(PIECE_POLICY, min_seconds=piece_seconds)
    started = time.perf_counter()
    build_latency_table(BuildConfig(space=space_name, resolution=resolution, runtime=runtime, threads=threads,
                                    piece_policy=policy), path,
                        progress=lambda phase, done, total: print(f"\r{runtime}: {phase} {done}/{total}", end="",
                                                                  flush=True))
    print()
    build_s = time.perf_counter() - started
    table = load_latency_table(path, space_name, resolution)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(candidates):
        spec = space.decode(space.sample(rng)).with_(resolution=resolution)
        raw, _ = table.sum_ms(spec)
        predicted = table.predict_ms(spec)
        latency = measure_network(spec, runtime, threads)
        measured = latency.min_ms  # the table's statistic: the fastest call
        rows.append({"key": spec.key(), "predicted_ms": predicted, "sum_ms": raw, "measured_ms": measured,
                     "measured_p50_ms": latency.p50_ms})
        print(f"{runtime} {i + 1}/{candidates}: predicted {predicted:.2f} ms, measured {measured:.2f} ms "
              f"({100 * (predicted - measured) / measured:+.1f}%)", flush=True)
    measured = [r["measured_ms"] for r in rows]
    result = {"runtime": runtime, "threads": threads, "table": str(path), "entries": len(table.entries),
              "table_build_s": build_s, "calibration": {k: v for k, v in table.calibration.items() if k != "networks"},
              "calibrated": errors([r["predicted_ms"] for r in rows], measured),
              "raw_sum": errors([r["sum_ms"] for r in rows], measured),
              "measured_ms": {"min": min(measured), "median": statistics.median(measured), "max": max(measured)},
              "candidates": rows}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="efficientnet")
    parser.add_argument("--runtimes", default="torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", type=Path, default=Path(__file__).resolve().parent / "tables")
    parser.add_argument("--piece-seconds", type=float, default=None, help="timed seconds per table entry")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    results = [validate(args.space, runtime, args.threads, args.resolution, args.candidates, args.seed, args.tables,
                        args.piece_seconds)
               for runtime in args.runtimes.split(",")]
    print(f"\n{args.candidates} random {args.space} candidates at {args.resolution} px, batch 1, "
          f"{args.threads} thread(s), on {machine_info()['cpu']}")
    print("| runtime | entries | build (s) | MAPE | within +-10% | raw sum MAPE | raw sum within +-10% | "
          "measured ms (min / median / max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        c, s, m = r["calibrated"], r["raw_sum"], r["measured_ms"]
        print(f"| {r['runtime']} | {r['entries']} | {r['table_build_s']:.0f} | {c['mape_pct']:.1f}% | "
              f"{c['within_10pct']:.0%} | {s['mape_pct']:.1f}% | {s['within_10pct']:.0%} | "
              f"{m['min']:.1f} / {m['median']:.1f} / {m['max']:.1f} |")
        cal = r["calibration"]
        print(f"  calibration: measured = {cal['scale']:.3f} x sum {cal['offset_ms']:+.2f} ms")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
