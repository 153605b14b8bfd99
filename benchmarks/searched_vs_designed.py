"""Benchmark: does the searched B0 beat the hand-designed networks at equal cost, on full Fashion-MNIST?

The whole pipeline as a user would run it (issue 23), every step a ``nas`` command:

1. **Search**, ``--search-seeds`` times (default 3): the efficientnet space on Fashion-MNIST from
   ``../shared/data``, the mnas reward with T = EfficientNet-B0's multiply-adds (386M), rungs
   (successive halving) and re-ranking of the leaders, on a stratified subset of 10,000 training
   images (``--search-subset``: the setting of the rungs benchmark; all 54,000 would cost each search
   about an hour of one core). One more search of the same budget with the
   ``random`` controller.
2. **Contestants**, under one recipe (``nas train --test --seeds N``, the same epochs and the same
   proxy transform ``--width --depth --resolution`` for every model): each search's B0,
   EfficientNet-B0, MnasNet-A1, the random search's B0.
3. **Scaling**: ``nas scale grid`` on the first search's B0 (its own alpha, beta, gamma; a 0.1 step,
   29 points on B0, each trained 3 epochs on the search's subset: the default 0.05 step keeps 170
   points, a day of one core), ``nas scale apply --phi 1`` gives its B1; it is trained against EfficientNet-B1 under the same proxy transform.
   Both B1s train at their own resolution times ``--resolution``/224 (``nas train --resolution-scale``:
   EfficientNet-B1's 240 px at 34, a searched B1 of 292 px at 42), so the proxy keeps what each
   family spends on resolution; ``nas compare`` then asks for the same factor, not the same size.
4. **Output**: ``nas compare`` of the B0s and of the B1s (tables, JSON, PNG) in OUT, and
   ``OUT/steps.json`` with the CPU time of every step. Copy the tables into BENCHMARKS.md with the
   commands and a plain reading: did a searched B0 beat EfficientNet-B0 at equal or lower MACs, with
   the paired 95% interval of the difference above 0?

Keep what the searches found: copy each B0, the grid's ``scaling.json`` and the B1 into
``benchmarks/results/searched_vs_designed/`` (its README says how). ``OUT`` does not outlive the machine,
and a search is not reproducible on another CPU (the same seed found a 351M B0 on one machine and a
423M B0 on the next).

Resumable: a step recorded as done in ``OUT/steps.json`` is skipped; a step whose folder exists is
continued with ``--resume`` (searches, the scaling grid, the seeds of ``nas train``). Kill it and
call it again with the same arguments. ``--dry-run`` prints the commands and runs nothing.

Run it alone, with one torch thread (its accuracies then do not depend on the machine's load):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/searched_vs_designed.py --out runs/searched-vs-designed
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.data.shared import require_shared_dataset  # noqa: E402

B0_MACS = "386M"  # EfficientNet-B0: 385,814,752 multiply-adds at 224 px (nas show efficientnet-b0)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Steps:
    """The steps done so far (``OUT/steps.json``): name -> command, CPU seconds, wall seconds."""

    def __init__(self, out: Path, dry_run: bool) -> None:
        self.path, self.dry_run = out / "steps.json", dry_run
        self.done = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, name: str, args: list[str]) -> None:
        if name in self.done:
            return
        command = [sys.executable, "-m", "nas", *args]
        print(f"[{name}] nas {shlex.join(args)}", flush=True)
        if self.dry_run:
            return
        cpu, wall = children_cpu_s(), time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True)
        self.done[name] = {"command": f"nas {shlex.join(args)}", "cpu_s": round(children_cpu_s() - cpu, 1),
                           "wall_s": round(time.perf_counter() - wall, 1)}
        self.path.write_text(json.dumps(self.done, indent=2) + "\n")


def resume_flag(started: bool) -> list[str]:
    return ["--resume"] if started else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/searched-vs-designed", help="folder of every run and result")
    parser.add_argument("--search-seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=27, help="candidates of each search (rungs: 27 = 3^3)")
    parser.add_argument("--rungs", default="1,3,9", help="epochs per rung of each search (--rungs of nas search)")
    parser.add_argument("--rerank", type=int, default=3, help="leaders trained again before B0 is chosen")
    parser.add_argument("--search-subset", type=int, default=10000,
                        help="training images each search trains on (--train-subset; 0: all 54,000); the "
                             "contestants always train on all of them")
    parser.add_argument("--grid-step", type=float, default=0.1,
                        help="step of the scaling grid (nas scale grid --step; its default 0.05 keeps 170 points)")
    parser.add_argument("--grid-epochs", type=float, default=3, help="proxy epochs of each grid point")
    parser.add_argument("--epochs", type=float, default=15, help="epochs of every contestant (>= 15)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of every contestant (>= 3)")
    parser.add_argument("--width", type=float, default=0.5, help="proxy transform: width multiplier (all models)")
    parser.add_argument("--depth", type=float, default=0.5, help="proxy transform: depth multiplier (all models)")
    parser.add_argument("--resolution", type=int, default=32, help="proxy transform: B0 training size (all B0s)")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: ../shared/data)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()

    data_dir = require_shared_dataset("fashion-mnist", args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(out, args.dry_run)
    data = ["--dataset", "fashion-mnist", "--data-dir", str(data_dir)]
    search = [*data, "--target", B0_MACS, "--trials", str(args.trials), "--rungs", args.rungs, "--eta", "3",
              "--rerank", str(args.rerank), "--quiet"]
    search += ["--train-subset", str(args.search_subset)] if args.search_subset else []

    # 1. searches: the project's settings, and a random search of the same budget
    runs = {f"search-{s}": ["--seed", str(s)] for s in range(args.search_seeds)}
    runs["random"] = ["--seed", "0", "--controller", "random"]
    for name, extra in runs.items():
        run = out / name
        steps.run(name, ["search", *search, *extra, "--out", str(run),
                         *resume_flag((run / "run.json").exists())])

    # 2. contestants under one recipe
    def train(name: str, spec: str, size: list[str]) -> Path:
        folder = out / "train" / name
        started = any(folder.glob("seed-*/last.pt"))
        steps.run(f"train {name}", ["train", spec, *data, "--width", str(args.width), "--depth", str(args.depth),
                                    *size, "--epochs", str(args.epochs), "--test",
                                    "--seeds", str(args.seeds), "--out", str(folder), *resume_flag(started)])
        return folder

    b0_size = ["--resolution", str(args.resolution)]  # every B0 is a 224-px network
    b0s = [train(f"searched-b0-{s}", str(out / f"search-{s}" / "b0.json"), b0_size)
           for s in range(args.search_seeds)]
    b0s += [train("efficientnet-b0", "efficientnet-b0", b0_size),
            train("mnasnet-a1", "mnasnet-a1", b0_size),
            train("random-search-b0", str(out / "random" / "b0.json"), b0_size)]

    # 3. scaling: the first search's B0 to B1 by the grid's own coefficients, against EfficientNet-B1
    grid = out / "grid"
    subset = ["--train-subset", str(args.search_subset)] if args.search_subset else []
    steps.run("scale grid", ["scale", "grid", "--base", str(out / "search-0" / "b0.json"), *data, *subset,
                             "--step", str(args.grid_step), "--epochs", str(args.grid_epochs),
                             "--out", str(grid), *resume_flag((grid / "run.json").exists())])
    steps.run("scale apply", ["scale", "apply", "--from", str(grid / "scaling.json"), "--phi", "1",
                              "--out", str(out / "family")])
    b1_size = ["--resolution-scale", f"{args.resolution}/224"]  # each B1 at its own resolution, scaled as the B0s
    b1s = [train("searched-b1", str(out / "family" / "b1.json"), b1_size),
           train("efficientnet-b1", "efficientnet-b1", b1_size)]

    # 4. the tables
    for name, folders in (("b0", b0s), ("b1", b1s)):
        paths = [str(f) for f in folders]
        print(f"[compare {name}] nas compare {shlex.join(paths)} --png {out / f'compare-{name}.png'}", flush=True)
        if args.dry_run:
            continue
        table = subprocess.run([sys.executable, "-m", "nas", "compare", *paths, "--png",
                                str(out / f"compare-{name}.png")], cwd=REPO, check=True, capture_output=True,
                               text=True).stdout
        (out / f"compare-{name}.txt").write_text(table)
        as_json = subprocess.run([sys.executable, "-m", "nas", "compare", *paths, "--json"], cwd=REPO, check=True,
                                 capture_output=True, text=True).stdout
        (out / f"compare-{name}.json").write_text(as_json)
        print(table)
    if not args.dry_run:
        total = sum(step["cpu_s"] for step in steps.done.values())
        print(f"CPU time of every step: {out / 'steps.json'} (total {total / 3600:.1f} h)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
