"""Timing of the Pareto maths on large random populations.

Run: ``.venv/bin/python benchmarks/pareto.py`` (add ``--n 1000000`` for a bigger 2D case).

Reports the best of several repeats for: the 2-objective frontier of 100,000 points (the sort-based
O(n log n) path; the acceptance target is under 1 s), 2-objective front ranks, the 3-objective
frontier (the vectorised general-k filter), exact hypervolume in 2 and 3 objectives, and
``nas.pareto.analyze`` on a 100,000-row trials frame. It also checks the 2D frontier against the
general-k filter on the same points, so a fast but wrong answer cannot pass unnoticed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nas.pareto import _mask_general, analyze, front_ranks, hypervolume, non_dominated_mask, to_minimization


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def trade_off(rng: np.random.Generator, n: int) -> np.ndarray:
    """Accuracy rising with log cost plus noise: a realistic frontier of a few dozen points."""
    macs = np.exp(rng.uniform(np.log(2e7), np.log(2e9), n))
    accuracy = np.clip(0.5 + 0.06 * np.log(macs / 2e7) + rng.normal(0, 0.04, n), 0, 1)
    return np.c_[accuracy, macs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.n
    rows = []

    values = trade_off(rng, n)
    t, mask = best_of(args.repeats, lambda: non_dominated_mask(values, ["max", "min"]))
    reference = _mask_general(to_minimization(values, ["max", "min"]))
    assert np.array_equal(mask, reference), "2D sort-based frontier disagrees with the general filter"
    rows.append((f"frontier, 2 objectives (accuracy/MACs), n={n:,}", t, f"{int(mask.sum())} on the frontier"))

    uniform = rng.random((n, 2))
    t, mask = best_of(args.repeats, lambda: non_dominated_mask(uniform))
    rows.append((f"frontier, 2 objectives (uniform square), n={n:,}", t, f"{int(mask.sum())} on the frontier"))

    ties = rng.integers(0, 1000, size=(n, 2)).astype(float)
    t, mask = best_of(args.repeats, lambda: non_dominated_mask(ties))
    rows.append((f"frontier, 2 objectives (integer grid, many ties), n={n:,}", t, f"{int(mask.sum())} on it"))

    t, ranks = best_of(max(1, args.repeats // 2), lambda: front_ranks(values, ["max", "min"]))
    rows.append((f"front ranks, 2 objectives, n={n:,}", t, f"{int(ranks.max()) + 1} fronts"))

    three = np.c_[values, values[:, 1] / 4e7 * rng.lognormal(0, 0.3, n)]  # + latency-like column
    t, mask = best_of(args.repeats, lambda: non_dominated_mask(three, ["max", "min", "min"]))
    rows.append((f"frontier, 3 objectives, n={n:,}", t, f"{int(mask.sum())} on the frontier"))

    t, hv = best_of(args.repeats, lambda: hypervolume(values, None, ["max", "min"]))
    rows.append((f"hypervolume, 2 objectives, n={n:,}", t, f"{hv:.6g}"))

    t, hv = best_of(args.repeats, lambda: hypervolume(three, None, ["max", "min", "min"]))
    rows.append((f"hypervolume, 3 objectives, n={n:,}", t, f"{hv:.6g}"))

    frame = pd.DataFrame({"trial": np.arange(n), "status": "ok", "accuracy": values[:, 0], "macs": values[:, 1],
                          "key": [f"k{i}" for i in range(n)], "reward": values[:, 0]})
    t, result = best_of(max(1, args.repeats // 2), lambda: analyze(frame, "accuracy:max,macs:min"))
    rows.append((f"analyze(frame), 2 objectives incl. ranks + crowding, n={n:,}", t,
                 f"{len(result.frontier)} on the frontier"))

    width = max(len(r[0]) for r in rows)
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds * 1000:9.1f} ms  {note}")


if __name__ == "__main__":
    main()
