"""Benchmark: does successive halving find better networks than today's single-fidelity search, at equal compute?

Three ways to spend one training budget on Fashion-MNIST (a documented subset, ``--train-subset``,
seeded and stratified; the full 6,000-image minival), each with ``--seeds`` search seeds:

* ``single``: today's search, rl controller, every candidate one proxy epoch (``--single-trials``);
* ``rungs``: rl controller with ``--rungs 1,3,9 --eta 3`` (``--rung-trials`` candidates at the first
  rung), whose planned epochs (trials + promotions x the epochs they add) equal ``single``'s;
* ``random-rungs``: the same rungs with candidates drawn at random.

Each search's B0 is then trained at the reference fidelity of benchmarks/proxy_fidelity.py (the same
proxy, ``--reference-epochs``, ``--reference-seeds`` seeds, the search's trainer), and the table
gives, per method, the mean reference accuracy and reward of its B0s with a 95% t-interval over the
search seeds, and the CPU time the searches spent (the sum of their trials' training time).

Resumable: searches are ordinary run folders (resumed when present) and reference trainings are
cached in OUT/reference.json. One torch thread; run it alone for the times (the accuracies do not
depend on the load).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rungs_equal_compute.py --out runs/rungs-ec > /tmp/ec.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.data.shared import require_shared_dataset  # noqa: E402
from objectives import make_objective  # noqa: E402

METHODS = ("single", "rungs", "random-rungs")


def search(out: Path, data: Path, args: argparse.Namespace, method: str, seed: int) -> None:
    flags = ["--dataset", "fashion-mnist", "--data-dir", str(data), "--train-subset", str(args.train_subset),
             "--seed", str(seed), "--out", str(out), "--quiet"]
    if method == "single":
        flags += ["--controller", "rl", "--trials", str(args.single_trials), "--epochs", "1"]
    else:
        flags += ["--controller", "rl" if method == "rungs" else "random", "--trials", str(args.rung_trials),
                  "--rungs", args.rungs, "--eta", str(args.eta)]
    if (out / "run.json").exists():
        flags = ["--out", str(out), "--resume", "--quiet"]
    subprocess.run([sys.executable, "-m", "nas", "search", *flags], cwd=REPO, check=True)


def planned_epochs(args: argparse.Namespace) -> tuple[float, float]:
    rungs = [float(r) for r in args.rungs.split(",")]
    n, total, done = args.rung_trials, 0.0, 0.0
    for epochs in rungs:
        total += n * (epochs - done)
        done, n = epochs, n // args.eta
    return float(args.single_trials), total


def reference(spec_path: Path, data: Path, args: argparse.Namespace, cache: dict, key: str) -> list[float]:
    """The B0's minival accuracy after the reference training, once per reference seed (cached)."""
    import torch

    from nas.api import load_spec
    from nas.data import load_dataset
    from nas.training import TrainBudget, train_candidate
    from search_spaces import ProxyConfig, make_space

    if key in cache:
        return cache[key]
    torch.set_num_threads(1)
    dataset = load_dataset("fashion-mnist", data, seed=0, train_subset=args.train_subset)
    spec = load_spec(str(spec_path))
    proxy = make_space("efficientnet").proxy(spec, ProxyConfig(0.5, 0.5, 32), dataset.num_classes, dataset.in_chans)
    accuracies = []
    for r in range(args.reference_seeds):
        metrics = train_candidate(proxy, dataset, TrainBudget(epochs=args.reference_epochs, seed=2000 + r))
        accuracies.append(metrics.accuracy if metrics.ok else float("nan"))
    cache[key] = accuracies
    return accuracies


def interval(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/rungs-equal-compute")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=20000)
    parser.add_argument("--single-trials", type=int, default=45)
    parser.add_argument("--rung-trials", type=int, default=18)
    parser.add_argument("--rungs", default="1,3,9")
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--reference-epochs", type=float, default=10)
    parser.add_argument("--reference-seeds", type=int, default=2)
    args = parser.parse_args()
    data = require_shared_dataset("fashion-mnist")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "reference.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    start = time.perf_counter()
    rows = []
    for method in METHODS:
        for seed in range(args.seeds):
            run = out / f"{method}-s{seed}"
            search(run, data, args, method, seed)
            b0 = json.loads((run / "b0.json").read_text())
            accuracies = reference(run / "b0.json", data, args, cache, f"{method}-s{seed}")
            cache_path.write_text(json.dumps(cache))
            frame = pd.read_csv(run / "trials.csv")
            cpu = float(frame.wall_time_s.sum())
            mean_accuracy = float(np.mean(accuracies))
            reward = make_objective("mnas").reward({"accuracy": mean_accuracy, "macs": b0["values"]["macs"]})
            rows.append({"method": method, "seed": seed, "b0_trial": b0["trial"], "macs": b0["values"]["macs"],
                         "reference_accuracy": mean_accuracy, "reference_reward": reward, "cpu_s": cpu,
                         "trials": len(frame), "arch": b0["arch"]})
    planned_single, planned_rungs = planned_epochs(args)
    print(f"Rungs at equal compute on Fashion-MNIST ({dt.date.today().isoformat()}, "
          f"{platform.processor() or platform.machine()}, `{' '.join(sys.argv)}`): {args.train_subset} training "
          f"images (seeded, stratified subset), proxy width 0.5, depth 0.5, 32 px, mnas reward (T = 400M). Planned "
          f"epochs per search: single {planned_single:g} ({args.single_trials} trials x 1 epoch), rungs "
          f"{planned_rungs:g} ({args.rung_trials} trials, rungs {args.rungs}, eta {args.eta}). Each B0 trained "
          f"{args.reference_seeds} times for {args.reference_epochs:g} epochs (the reference). This call: "
          f"{(time.perf_counter() - start) / 60:.0f} min.\n")
    print("| method | B0 reference accuracy, mean [95% t-interval] | B0 reference reward | B0 MACs (mean) | "
          "search CPU s (mean) | per seed: accuracy (MACs) |")
    print("|---|---|---|---|---|---|")
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        acc = interval([r["reference_accuracy"] for r in mine])
        rew = interval([r["reference_reward"] for r in mine])
        seeds = ", ".join(f"{r['reference_accuracy']:.4f} ({r['macs'] / 1e6:.0f}M)" for r in mine)
        print(f"| {method} | {acc[0]:.4f} [{acc[1]:.4f}, {acc[2]:.4f}] | {rew[0]:.4f} [{rew[1]:.4f}, {rew[2]:.4f}] | "
              f"{np.mean([r['macs'] for r in mine]) / 1e6:.0f}M | {np.mean([r['cpu_s'] for r in mine]):.0f} | "
              f"{seeds} |")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
