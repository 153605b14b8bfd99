"""Benchmark: do the controllers find a hidden target architecture, and how fast?

The problem is :class:`nas.controllers.synthetic.HiddenTarget` on a space shaped like the
EfficientNet one (7 stages x 6 decisions with 2-4 options: 42 decisions, about 2.4e17 points);
the reward is the fraction of decisions equal to the hidden target's, optimum 1.0. Each controller
runs for 5 seeds (seed s also picks target 100 + s, so all controllers face the same targets) and
the script prints a markdown section: mean best-so-far at 50 ... 2000 samples, how many seeds reach
0.95, and the controller's own time per sample (no training involved).

Run with one OpenMP/MKL thread, as recorded in BENCHMARKS.md: the PPO update is a chain of tiny
matrix products that threads only slow down on a busy 2-core machine::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/controllers.py > /tmp/controllers.md
    cat /tmp/controllers.md >> BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from nas.controllers.synthetic import best_so_far, run_experiment

CHECKPOINTS = (50, 100, 200, 500, 1000, 2000)


def curve(runs: list[list[float]], samples: int) -> list[float | None]:
    """Mean best-so-far over seeds at each checkpoint within the budget."""
    bests = np.array([best_so_far(r) for r in runs])
    return [float(bests[:, n - 1].mean()) if n <= samples else None for n in CHECKPOINTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--tpe-samples", type=int, default=1000,
                        help="TPE's budget (each ask costs time linear in the trials so far)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stages", type=int, default=7)
    parser.add_argument("--controllers", default="random,rl,rl4,tpe,nsga2",
                        help="comma-separated rows to run (rl4: rl with 4 proposals in flight)")
    args = parser.parse_args()
    wanted = set(args.controllers.split(","))
    seeds = list(range(args.seeds))
    plans = [("random", {}, 1, args.samples), ("rl", {}, 1, args.samples), ("rl", {}, 4, args.samples),
             ("tpe", {}, 1, min(args.tpe_samples, args.samples)), ("nsga2", {}, 1, args.samples)]
    rows = []
    for name, options, in_flight, samples in plans:
        if (name if in_flight == 1 else f"{name}{in_flight}") not in wanted:
            continue
        start = time.perf_counter()
        result = run_experiment(name, stages=args.stages, samples=samples, seeds=seeds, in_flight=in_flight,
                                options=options)
        seconds = time.perf_counter() - start
        runs = result["rewards"]
        reach = [next((i + 1 for i, b in enumerate(best_so_far(r)) if b >= 0.95), None) for r in runs]
        rows.append((name if in_flight == 1 else f"{name}, 4 in flight (shuffled tells)", samples,
                     curve(runs, samples), reach, 1e3 * seconds / (samples * len(seeds))))

    lines = [f"\n## Controllers on the hidden-target problem ({dt.date.today().isoformat()})\n",
             f"Machine: 2-core CPU container, no GPU. Command: `OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "
             f".venv/bin/python benchmarks/controllers.py --controllers {args.controllers}` (samples {args.samples}, TPE capped at "
             f"{min(args.tpe_samples, args.samples)}, {args.seeds} seeds, {args.stages} stages x 6 decisions "
             f"with 2-4 options). Reward = fraction of decisions equal to a hidden target (optimum 1.0; "
             f"a uniform sample scores 0.40 on average). Mean best-so-far over seeds:\n",
             "| controller | " + " | ".join(f"@{n}" for n in CHECKPOINTS) + " | seeds >= 0.95 (samples needed) "
             "| ms / sample |",
             "|---" * (len(CHECKPOINTS) + 3) + "|"]
    for label, samples, values, reach, ms in rows:
        cells = " | ".join("-" if v is None else f"{v:.3f}" for v in values)
        hit = [n for n in reach if n is not None]
        needed = ", ".join(str(n) for n in hit) if hit else "none"
        lines.append(f"| {label} | {cells} | {len(hit)}/{len(reach)} ({needed}) | {ms:.2f} |")
    lines.append("\nms / sample is the controller's own ask + tell time (PPO updates included), no training.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
