"""Two `nas search` processes on one study against one process alone: does a shared study divide the work?

Issue 22's target: two processes on one study finish ``--trials`` (8) in at most 0.65x the wall time
of one process running all of them, on the same machine, measured in one run. Each phase is real
``nas search`` processes on digits, one torch thread each (``OMP_NUM_THREADS=1``), on a named study in
a SQLite file (``--storage sqlite:///... --study NAME``, each process its own ``--out``), so the only
difference between the phases is the number of processes:

1. *alone*: one process, all the trials;
2. *together*: two processes started at the same moment on one new study, the same settings.

The wall time of a phase runs from starting its processes to the last one's exit (start-up included).
Printed per phase: the wall time, the CPU time of its processes (user + system), the time to the
first trial's start (start-up: imports, data, the study), the trials each process trained, distinct networks trained, trials
trained twice (must be 0), the median trial's own time (``wall_time_s`` of its metrics) and the
1-minute load average before and after (other work on a shared machine takes cores from the processes).
With ``--rounds R`` the two phases alternate R times and the ratio of the median walls is reported too.

    .venv/bin/python benchmarks/shared_study.py                        # 8 trials, the search's default proxy
    .venv/bin/python benchmarks/shared_study.py --epochs 2 --rounds 2  # quicker trials, two rounds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def search_command(storage: str, out: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "nas", "search", "--storage", storage, "--study", "bench", "--out", str(out),
               "--trials", str(args.trials), "--controller", args.controller, "--seed", str(args.seed), "--quiet"]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    return command + args.extra


def run_phase(folder: Path, processes: int, args: argparse.Namespace) -> dict:
    """``processes`` searches started at once on one new study in ``folder``; their wall time and trials."""
    import optuna

    folder.mkdir(parents=True)
    storage = f"sqlite:///{folder / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    outs = [folder / f"p{i}" for i in range(processes)]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_s()
    started = datetime.now()  # Optuna stamps trials with the local naive time
    start = time.perf_counter()
    running = [subprocess.Popen(search_command(storage, out, args), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for out in outs]
    for proc in running:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"nas search failed ({proc.returncode}): {err.strip()[-2000:]}")
    wall = time.perf_counter() - start
    cpu = _children_cpu_s() - cpu_before
    load_after = os.getloadavg()[0]
    trials = [t for t in optuna.load_study(study_name="bench", storage=storage).trials if "metrics" in t.user_attrs]
    trained = [t for t in trials if t.user_attrs.get("reused_from") is None]
    keys = Counter(t.user_attrs["train_key"] for t in trained)
    names = {json.loads((out / "run.json").read_text())["owner"]: out.name for out in outs}
    per_process = Counter(names[t.user_attrs["owner"]] for t in trained)
    first_trial = min(t.datetime_start for t in trials)
    return {"processes": processes, "wall_s": wall, "cpu_s": cpu, "trials": len(trials),
            "startup_s": (first_trial - started).total_seconds(),
            "trained": [per_process[out.name] for out in outs], "distinct": len(keys),
            "twice": sum(1 for n in keys.values() if n > 1),
            "median_trial_s": statistics.median(t.user_attrs["metrics"]["wall_time_s"] for t in trained),
            "load": (load_before, load_after)}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=float, default=None, help="proxy epochs (default: the search's)")
    p.add_argument("--controller", default="random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1, help="alternate the two phases this many times")
    p.add_argument("extra", nargs="*", help="more nas search flags (after --)")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.trials} trials, controller {args.controller}, epochs "
          f"{args.epochs or 'default'}, extra {args.extra}; one torch thread per process", flush=True)
    phases: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nas-shared-") as tmp:
        for r in range(args.rounds):
            for processes in (1, 2):
                phase = run_phase(Path(tmp) / f"round{r}-{processes}", processes, args)
                phases.append(phase)
                print(f"round {r}: {processes} process(es): {phase['wall_s']:.1f} s", flush=True)
    print("\n| round | processes | wall (s) | CPU (s) | to the first trial (s) | trials | trained per process "
          "| distinct networks | trained twice | median trial (s) | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, ph in enumerate(phases):
        print(f"| {i // 2} | {ph['processes']} | {ph['wall_s']:.1f} | {ph['cpu_s']:.1f} | {ph['startup_s']:.1f} | "
              f"{ph['trials']} | "
              f"{' + '.join(map(str, ph['trained']))} | {ph['distinct']} | {ph['twice']} | "
              f"{ph['median_trial_s']:.1f} | {ph['load'][0]:.1f} / {ph['load'][1]:.1f} |")
    ratios = [phases[i + 1]["wall_s"] / phases[i]["wall_s"] for i in range(0, len(phases), 2)]
    print(f"\nwall(2 processes) / wall(1 process): {', '.join(f'{x:.2f}' for x in ratios)} (target <= 0.65)")
    if args.rounds > 1:
        alone = statistics.median(ph["wall_s"] for ph in phases if ph["processes"] == 1)
        together = statistics.median(ph["wall_s"] for ph in phases if ph["processes"] == 2)
        print(f"ratio of the median walls: {together / alone:.2f}")


if __name__ == "__main__":
    main()
