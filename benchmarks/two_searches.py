"""Two `nas search` processes started together on one machine against one alone: do they fight over cores?

Issue 22's target: with two searches started at the same moment on this 2-core machine, each trial's
median time is at most 2.2x its median when one search runs alone (two processes that share two cores
fairly take 2x; the rest is what they cost each other). Each search is a real ``nas search`` on digits
with the local runner and its own ``--out``, with no ``OMP_NUM_THREADS``: each takes the thread plan the
toolkit chooses (its first line says which). Phases, all in one run so that the ratios compare:

1. *alone*: one search;
2. *together*: two searches with different seeds, started at once.

``--policies`` says how OpenMP's idle threads wait in the searches (``POLICIES`` below): ``shipped`` is
the toolkit's own choice, ``before`` what torch did before it chose, ``passive``, ``active`` and
``spin=N`` (``GOMP_SPINCOUNT``) are the alternatives measured. Printed per phase
and policy: each search's median trial time (``wall_time_s`` of its trials), the ratio to alone, and the
1-minute load average before (other work on a shared machine takes cores from the searches).

    .venv/bin/python benchmarks/two_searches.py                          # 6 trials, shipped and before
    .venv/bin/python benchmarks/two_searches.py --trials 4 --policies passive,spin=10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


# How OpenMP's idle threads wait (GNU OpenMP: spin GOMP_SPINCOUNT times, then sleep). "before" is what
# torch did before the toolkit chose (libgomp's default when nothing is set: 300,000 spins, about 3 ms);
# "shipped" sets nothing, so the toolkit's own choice applies; "spin=N" sets GOMP_SPINCOUNT=N.
POLICIES = {"shipped": {}, "before": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "active": {"OMP_WAIT_POLICY": "ACTIVE"}}


def start_search(out: Path, seed: int, policy: str, args: argparse.Namespace) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(REPO)
    env.update(POLICIES[policy] if policy in POLICIES else {"GOMP_SPINCOUNT": policy.removeprefix("spin=")})
    command = [sys.executable, "-m", "nas", "search", "--out", str(out), "--trials", str(args.trials),
               "--controller", "random", "--seed", str(seed), *args.extra]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_phase(folder: Path, searches: int, policy: str, args: argparse.Namespace) -> dict:
    """``searches`` searches started at once; each one's median trial time and its first line."""
    load = os.getloadavg()[0]
    outs = [folder / f"{policy}-{searches}-{i}" for i in range(searches)]
    running = [start_search(out, args.seed + i, policy, args) for i, out in enumerate(outs)]
    first_lines = []
    for proc in running:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"nas search failed ({proc.returncode}): {stderr.strip()[-2000:]}")
        first_lines.append(stdout.splitlines()[0] if stdout else "")
    medians = [statistics.median(pd.read_csv(out / "trials.csv")["wall_time_s"]) for out in outs]
    return {"searches": searches, "policy": policy, "medians": medians, "load": load, "first": first_lines[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--policies", default="shipped,before", help="comma-separated: shipped, before, passive, "
                   "active, spin=N")
    p.add_argument("extra", nargs="*", help="more nas search flags (after --)")
    args = p.parse_args()
    policies = args.policies.split(",")
    print(f"{os.cpu_count()} CPUs; {args.trials} trials per search on digits; policies {policies}; "
          f"extra {args.extra}", flush=True)
    phases = []
    with tempfile.TemporaryDirectory(prefix="nas-two-") as tmp:
        for r in range(args.rounds):
            for policy in policies:
                for searches in (1, 2):
                    phase = run_phase(Path(tmp) / f"r{r}", searches, policy, args)
                    phases.append(phase)
                    print(f"round {r}, {policy}, {searches} search(es): medians "
                          f"{', '.join(f'{m:.2f}' for m in phase['medians'])} s; {phase['first']}", flush=True)
    print("\n| round | OMP wait | searches | median trial (s) per search | ratio to alone | load avg before |")
    print("|---|---|---|---|---|---|")
    for r in range(args.rounds):
        for policy in policies:
            pair = [ph for ph in phases[r * 2 * len(policies):(r + 1) * 2 * len(policies)] if ph["policy"] == policy]
            alone = pair[0]["medians"][0]
            for ph in pair:
                ratios = " / ".join(f"{m / alone:.2f}" for m in ph["medians"])
                print(f"| {r} | {policy} | {ph['searches']} | {' / '.join(f'{m:.2f}' for m in ph['medians'])} | "
                      f"{ratios} | {ph['load']:.1f} |")
    print("\ntarget: each search's ratio <= 2.2 when two run together")


if __name__ == "__main__":
    main()
