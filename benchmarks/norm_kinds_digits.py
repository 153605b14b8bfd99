"""Minival accuracy of the B0 digits proxy under each norm kind, with the search's default budget.

The proxy is the one a search trains: EfficientNet-B0 with ``norm`` replaced, shrunk by the
``efficientnet`` space's proxy rule (width 0.5, depth 0.5, 32 px; ``scale_spec``), trained by
``train_candidate`` with ``TrainBudget()`` (AdamW, 20 epochs of batch 128) on the embedded digits.
Prints one Markdown row per (norm, seed): accuracy, params, MACs, train time and step time.

    .venv/bin/python benchmarks/norm_kinds_digits.py [--norms layernorm_pn groupnorm_pn] [--seeds 0 1 2]
    .venv/bin/python benchmarks/norm_kinds_digits.py --lr 0.004   # the budget's peak lr / 4
    .venv/bin/python benchmarks/norm_kinds_digits.py --epochs 1   # a quick check of the script only
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from nas.data import load_dataset
from nas.kinds import NORMS
from nas.presets import preset
from nas.training import TrainBudget, train_candidate
from search_spaces import ProxyConfig, make_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=list(NORMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=float, default=None, help="override the default budget's epochs")
    parser.add_argument("--lr", type=float, default=None, help="override the default budget's peak learning rate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    space = make_space("efficientnet")
    budget = TrainBudget()
    if args.epochs is not None:
        budget = replace(budget, epochs=args.epochs)
    if args.lr is not None:
        budget = replace(budget, lr=args.lr)
    print(f"budget: {budget.epochs:g} epochs, batch {budget.batch_size}, {budget.optimizer} at peak lr "
          f"{budget.learning_rate:g}; "
          f"{torch.get_num_threads()} torch thread(s)")
    print("| norm | seed | minival top-1 | params | MACs (32 px) | train s | step ms (median) |")
    print("|---|---|---|---|---|---|---|")
    for norm in args.norms:
        spec = space.proxy(preset("efficientnet-b0").with_(norm=norm), ProxyConfig(), data.num_classes, data.in_chans)
        for seed in args.seeds:
            m = train_candidate(spec, data, replace(budget, seed=seed), "cpu")
            accuracy = f"{m.accuracy:.4f}" if m.accuracy is not None else f"{m.status}: {m.error[:60]}"
            print(f"| {norm} | {seed} | {accuracy} | {m.params:,} | {m.macs:,} | {m.train_time_s:.1f} | "
                  f"{m.step_time_ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
