"""How long enumerating the compound-scaling grid takes, and how far the formula's cost ratio is from
the counted one on EfficientNet-B0 (rounding of repeats, channels and resolution).

Run: .venv/bin/python benchmarks/compound_grid.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from nas.compound import enumerate_grid
from nas.presets import preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    b0 = preset("efficientnet-b0")
    print("| constraint | grid | points kept | median time (s) | actual/predicted min | median | max |")
    print("|---|---|---|---|---|---|---|")
    for constraint in ("formula", "actual"):
        for step, high in ((0.05, 1.5), (0.1, 1.3)):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                points = enumerate_grid(b0, phi=1, step=step, high=high, tol=0.1, constraint=constraint)
                times.append(time.perf_counter() - start)
            gaps = [p.actual / p.predicted for p in points]
            print(f"| {constraint} | step {step:g}, max {high:g} | {len(points) - 1} (+ reference) | "
                  f"{statistics.median(times):.3f} | {min(gaps):.3f} | {statistics.median(gaps):.3f} | "
                  f"{max(gaps):.3f} |")


if __name__ == "__main__":
    main()
