"""`nas train --seeds N` one after another in the process against all at once on a local Ray (issue 23).

Three phases, one after another in one run so that their times compare (run it alone: nothing else of
ours on the machine):

1. *here*: ``nas train SPEC --seeds N`` with torch's default threads (every core for each seed in turn);
2. *here, 1 thread*: the same with ``--threads 1``, the thread count of a Ray worker with one CPU;
3. *ray*: ``nas train SPEC --seeds N --runner ray --workers W`` (W seeds at once, one CPU each).

Printed: each phase's wall time (Ray's start-up included), its ratio to phase 1, each seed's test
accuracy, and whether the Ray seeds equal phase 2's to the last bit (same seeds, same thread count: the
training is deterministic on the CPU, so where it runs must not matter).

    .venv/bin/python benchmarks/seeds_runner.py                     # 4 seeds of a B0 proxy on digits, 2 workers
    .venv/bin/python benchmarks/seeds_runner.py --seeds 2 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runners.ray_support import temp_root  # noqa: E402 - the local Ray's session folder of the Ray phase


def train(out: Path, args: argparse.Namespace, *extra: str) -> tuple[float, list[float]]:
    """One ``nas train --seeds`` command: its wall time and each seed's raw test accuracy."""
    command = [sys.executable, "-m", "nas", "train", args.spec, "--width", str(args.width), "--depth", str(args.depth),
               "--resolution", str(args.resolution), "--epochs", str(args.epochs), "--test", "--device", "cpu",
               "--seeds", str(args.seeds), "--out", str(out), "--json", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    return wall, [row["raw_test_accuracy"] for row in summary["per_seed"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="efficientnet-b0")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--depth", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="seeds-runner-"))
    try:
        print(f"{args.seeds} seeds of {args.spec} x{args.width:g}/{args.depth:g} at {args.resolution} px, "
              f"{args.epochs:g} epochs on digits; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
        phases = [("here", ()), ("here, 1 thread", ("--threads", "1")),
                  (f"ray, {args.workers} workers", ("--runner", "ray", "--workers", str(args.workers)))]
        results = {}
        for i, (name, extra) in enumerate(phases):
            results[name] = train(folder / f"phase-{i}", args, *extra)
        base = results["here"][0]
        for name, (wall, accuracies) in results.items():
            print(f"{name:18s} {wall:7.1f} s  x{wall / base:.2f}  test " + " ".join(f"{a:.4f}" for a in accuracies))
        same = results["here, 1 thread"][1] == results[phases[2][0]][1]
        print(f"ray seeds equal the 1-thread seeds trained here to the last bit: {same}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(temp_root(folder / "phase-2"), ignore_errors=True)


if __name__ == "__main__":
    main()
