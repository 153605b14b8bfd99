"""Warm-up and BatchNorm momentum against the budget: the search's proxy on digits at 1, 2, 4, 20 epochs.

For each budget and seed it trains the B0-like proxy (width 0.5, depth 0.5, 32 px) with
``train_candidate`` and reports minival accuracy for:

- ``before``: the rules before issue 11 (warm-up capped at half the steps, BatchNorm momentum at
  most 0.1 whatever the number of steps);
- ``bn only``: the budget-aware BatchNorm momentum, warm-up still capped at half;
- ``frac F``: the budget-aware momentum and the warm-up capped at F of the steps (F from --fractions).

    .venv/bin/python benchmarks/warmup.py --threads 1 [--epochs 1,2,4,20] [--seeds 0,1,2] [--fractions 0.1,0.25,0.5]
"""

from __future__ import annotations

import statistics
import time

import torch
from training_common import comma_list, digits_proxy, setup, sweep_parser

from nas.training import TrainBudget, bn_momentum_for, train_candidate, warmup_steps_for


def main() -> None:
    parser = sweep_parser(__doc__, epochs="1,2,4,20", seeds="0,1,2")
    parser.add_argument("--fractions", default="0.1,0.25,0.5")
    args = parser.parse_args()
    setup(args)
    data, spec = digits_proxy()
    seeds = comma_list(args.seeds, int)
    spe = len(data.train_y) // TrainBudget().batch_size
    print(f"digits: {len(data.train_y)} train / {len(data.minival_y)} minival images, {spe} steps per epoch; "
          f"torch threads {torch.get_num_threads()}; chance 0.10")
    print(f"{'epochs':>6} {'steps':>5} {'variant':>10} {'warm-up':>7} {'bn mom.':>7}  minival per seed -> mean")
    for epochs in comma_list(args.epochs):
        total = round(epochs * spe)
        old_momentum = bn_momentum_for(min(spe, total))
        variants = [("before", 0.5, old_momentum), ("bn only", 0.5, None)]
        variants += [(f"frac {f:g}", f, None) for f in comma_list(args.fractions)]
        for name, fraction, momentum in variants:
            accuracies, start = [], time.perf_counter()
            for seed in seeds:
                budget = TrainBudget(epochs=epochs, seed=seed, max_warmup_fraction=fraction, bn_momentum=momentum)
                accuracies.append(train_candidate(spec, data, budget, "cpu").accuracy)
            warmup = warmup_steps_for(1.0, spe, total, fraction)
            shown = momentum if momentum is not None else bn_momentum_for(min(spe, total), total_steps=total)
            print(f"{epochs:6g} {total:5d} {name:>10} {warmup:7d} {shown:7.3f}  "
                  f"{' '.join(f'{a:.3f}' for a in accuracies)} -> {statistics.mean(accuracies):.3f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
