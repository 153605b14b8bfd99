"""Benchmark: what does the rungs' promotion rule cost in ranking? A first rung cut from a longer schedule
against a short training of its own, on the candidates of benchmarks/proxy_fidelity.py.

Rungs plan every training for the last rung (warm-up, then cosine over its epochs) and evaluate the
first rung where that training stops (nas/jobs/rungs.py), so a promotion continues the same training
instead of starting again. The price: the first rung is ranked on a network whose learning rate has
not decayed. This script measures that price on the finished measurement of proxy_fidelity.py (the
same candidates, data, proxy and reference):

* ``fresh``: the 1-epoch proxy with its own schedule (read from the run's ``fidelity.json``);
* ``cut``: 1 epoch of a schedule planned for ``--schedule-epochs`` epochs (trained here, seed as the
  search's; cached in OUT/rung_rule.json, so a second call continues).

Both ranked against the reference's mean accuracy (Kendall tau, Spearman rho, 95% bootstrap
intervals), with the accuracy score and the training-loss score. One torch thread; the accuracies do
not depend on the machine's load.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rung_rule.py --run runs/proxy-fidelity/run --schedule-epochs 9
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.metrics import score_quality  # noqa: E402
from nas.stats import rank_agreement  # noqa: E402

SCORES = ("accuracy", "train_loss")


def cut_scores(run: Path, candidates: list[dict], schedule_epochs: float, cache_path: Path) -> list[dict | None]:
    """Each candidate's scores after 1 epoch of a schedule planned for ``schedule_epochs`` (cached)."""
    import torch

    from nas.data import load_dataset
    from nas.training import TrainBudget, train_candidate
    from search_spaces import ProxyConfig, make_space

    config = json.loads((run / "run.json").read_text())
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    torch.set_num_threads(1)
    data = load_dataset(config["dataset"], config["data_dir"], seed=config["seed"],
                        train_subset=config["train_subset"])
    space = make_space(config["space"])
    proxy = ProxyConfig(config["proxy_width"], config["proxy_depth"], config["proxy_resolution"])
    budget = TrainBudget(seed=config["seed"], epochs=1.0, schedule_epochs=schedule_epochs)
    found: list[dict | None] = []
    for candidate in candidates:
        key = f"{schedule_epochs:g}:{','.join(map(str, candidate['indices']))}"
        if key not in cache:
            full = space.full_size(tuple(candidate["indices"]), proxy, data.num_classes, data.in_chans)
            metrics = train_candidate(space.proxy(full, proxy, data.num_classes, data.in_chans), data, budget)
            cache[key] = metrics.scores if metrics.ok else None
            cache_path.write_text(json.dumps(cache))
        found.append(cache[key])
    return found


def cells(x: list[float], y: list[float]) -> str:
    agreement = rank_agreement(x, y)
    tau, rho = agreement["kendall_tau"], agreement["spearman_rho"]
    return f"{tau.value:.2f} [{tau.low:.2f}, {tau.high:.2f}] | {rho.value:.2f} [{rho.low:.2f}, {rho.high:.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/proxy-fidelity/run", help="the run of benchmarks/proxy_fidelity.py")
    parser.add_argument("--schedule-epochs", type=float, default=9)
    parser.add_argument("--out", default=None, help="folder for the cache (default: the run's parent)")
    args = parser.parse_args()
    run = Path(args.run)
    measured = json.loads((run / "fidelity.json").read_text())
    if not measured.get("complete"):
        print(f"error: {run}/fidelity.json is not a finished measurement: run benchmarks/proxy_fidelity.py first",
              file=sys.stderr)
        return 2
    usable = [c for c in measured["candidates"] if None not in c["reference_accuracy"] and "1" in c["proxy_scores"]]
    out = Path(args.out) if args.out else run.parent
    cut = cut_scores(run, usable, args.schedule_epochs, out / "rung_rule.json")
    pairs = [(c, s) for c, s in zip(usable, cut) if s is not None]
    target = [float(np.mean(c["reference_accuracy"])) for c, _ in pairs]
    print(f"Rung rule on Fashion-MNIST ({dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
          f"`{' '.join(sys.argv)}`): {len(pairs)} candidates of the proxy-fidelity measurement; 1 epoch with its own "
          f"schedule (fresh) against 1 epoch of a {args.schedule_epochs:g}-epoch schedule (cut: the first rung of "
          f"rungs ending at {args.schedule_epochs:g}), each against the reference.\n")
    print("| score | 1 epoch | Kendall tau [95%] | Spearman rho [95%] |")
    print("|---|---|---|---|")
    for name in SCORES:
        fresh = [c["proxy_scores"]["1"][name] for c, _ in pairs]
        print(f"| {name} | fresh schedule | {cells(fresh, target)} |")
        print(f"| {name} | cut from {args.schedule_epochs:g} | "
              f"{cells([score_quality(name, s[name]) for _, s in pairs], target)} |")
    accuracy_gap = np.mean([c["proxy_scores"]["1"]["accuracy"] - s["accuracy"] for c, s in pairs])
    print(f"\nMean minival accuracy, fresh minus cut: {accuracy_gap:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
