"""Benchmark: which proxy score ranks candidates like a longer training, on real data (Fashion-MNIST)?

The measurement of ``nas fidelity --sample`` (nas/jobs/proxy_measurement.py), run as a user would:

1. ``nas search`` sets up a run on Fashion-MNIST from ``../shared/data`` (a documented subset of the
   training images, ``--train-subset``, seeded and stratified; minival is the full held-out tenth,
   6,000 images) with the search's default proxy (efficientnet space, width 0.5, depth 0.5, 32 px).
   It trains only a few candidates: the run is the settings the measurement reads.
2. ``nas fidelity RUN --sample N --seeds 2 --proxy-epochs ... --epochs E`` draws N candidates
   uniformly from the space, scores each at every proxy budget and trains each twice at the
   reference fidelity.

It prints a markdown table for BENCHMARKS.md: every score at every budget, the parameter and
multiply-add baselines and the noise ceiling, each with its Kendall tau, Spearman rho and 95%
bootstrap intervals, and the verdict; then, at each budget, how far the best score is ahead of each
other score (a paired bootstrap: the default ``--score`` is the best one, nas.metrics.DEFAULT_SCORE). Resumable: a second call continues what is missing (the run is
an ordinary run folder). Run it alone, with one torch thread (``OMP_NUM_THREADS=1``): it then uses one
core, and its accuracies do not depend on the machine's load (only its times do).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/proxy_fidelity.py --out runs/proxy-fidelity > /tmp/pf.md
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.data.shared import require_shared_dataset  # noqa: E402


def nas(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nas", *args], cwd=REPO, check=True)


def cells(found: dict | None) -> str:
    if not found:
        return "- | -"
    tau, rho = found["kendall_tau"], found["spearman_rho"]
    return (f"{tau['value']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}] | "
            f"{rho['value']:.2f} [{rho['low']:.2f}, {rho['high']:.2f}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/proxy-fidelity")
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=20000)
    parser.add_argument("--proxy-epochs", default="0.25,0.5,1")
    parser.add_argument("--epochs", type=float, default=10, help="the reference fidelity's epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = require_shared_dataset("fashion-mnist")
    out = Path(args.out)
    run = out / "run"
    start = time.perf_counter()
    if not (run / "run.json").exists():
        nas("search", "--dataset", "fashion-mnist", "--data-dir", str(data), "--train-subset", str(args.train_subset),
            "--trials", "3", "--controller", "random", "--epochs", "1", "--seed", str(args.seed), "--out", str(run),
            "--quiet")
    nas("fidelity", str(run), "--sample", str(args.sample), "--seeds", str(args.seeds), "--proxy-epochs",
        args.proxy_epochs, "--epochs", str(args.epochs), "--quiet")
    wall = time.perf_counter() - start
    measured = json.loads((run / "fidelity.json").read_text())
    print(f"Proxy fidelity on Fashion-MNIST ({dt.date.today().isoformat()}, {platform.processor() or platform.machine()},"
          f" `{' '.join(sys.argv)}`): {measured['usable']} of {args.sample} sampled efficientnet-space candidates, "
          f"proxy width 0.5, depth 0.5, 32 px, {args.train_subset} training images (seeded, stratified subset), "
          f"6,000 minival images; reference {args.epochs:g} epochs, {args.seeds} seeds, ranked by their mean "
          f"minival accuracy. This call: {wall / 60:.0f} min.\n")
    print("| what | proxy epochs | Kendall tau [95%] | Spearman rho [95%] |")
    print("|---|---|---|---|")
    for budget, scores in measured["scores"].items():
        for name, found in scores.items():
            print(f"| {name} | {budget} | {cells(found)} |")
    for name, found in measured["baselines"].items():
        print(f"| {name} (count) | - | {cells(found)} |")
    if "noise_ceiling" in measured:
        print(f"| reference seed 1 vs seed 2 (noise ceiling) | - | {cells(measured['noise_ceiling'])} |")
    print(f"\n{measured['verdict']}")
    print_paired_differences(measured)
    return 0


def print_paired_differences(measured: dict) -> None:
    """At each budget, the best score's tau minus each other score's, resampling the candidates once for
    both (their separate intervals overlap even where one is reliably ahead)."""
    import numpy as np

    from nas.stats import tau_difference

    usable = [c for c in measured["candidates"] if c.get("reference_accuracy") and c.get("proxy_scores")]
    reference = [float(np.mean(c["reference_accuracy"])) for c in usable]
    print("\n| proxy epochs | best score | minus | tau difference [95%, paired bootstrap] | share of resamples not ahead |")
    print("|---|---|---|---|---|")
    for budget, scores in measured["scores"].items():
        best = max(scores, key=lambda name: scores[name]["kendall_tau"]["value"])
        for other in scores:
            if other == best:
                continue
            diff = tau_difference([c["proxy_scores"][budget][best] for c in usable],
                                  [c["proxy_scores"][budget][other] for c in usable], reference)
            print(f"| {budget} | {best} | {other} | {diff.value:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}] | "
                  f"{diff.p_value:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
