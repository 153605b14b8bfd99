"""SGD's default learning rate: the search's proxy on digits trained with SGD at several rates per 256 images.

For each rate (per 256 images, scaled to the budget's batch like ``DEFAULT_LR``), epoch count and seed,
``train_candidate`` trains the B0-like proxy (width 0.5, depth 0.5, 32 px; Nesterov momentum 0.9, the
toolkit's SGD) and prints the minival accuracy, so that the default in ``nas/training/budget.py`` rests
on a measurement:

    .venv/bin/python benchmarks/sgd_rate.py --threads 1 [--rates 0.4,0.1] [--epochs 6,12] [--seeds 0,1,2,3]
"""

from __future__ import annotations

import statistics

from training_common import comma_list, digits_proxy, setup, sweep_parser

from nas.training import TrainBudget, train_candidate


def main() -> None:
    parser = sweep_parser(__doc__, epochs="6,12", seeds="0,1,2,3")
    parser.add_argument("--rates", default="0.4,0.1", help="SGD learning rates per 256 images")
    args = parser.parse_args()
    setup(args)
    data, spec = digits_proxy()
    batch = TrainBudget().batch_size
    print("| rate per 256 | epochs | minival accuracy per seed | mean |")
    print("|---|---|---|---|")
    for rate in comma_list(args.rates):
        for epochs in comma_list(args.epochs, int):
            accuracies = [train_candidate(spec, data, TrainBudget(optimizer="sgd", epochs=epochs, seed=int(seed),
                                                                  lr=rate * batch / 256), "cpu").accuracy
                          for seed in comma_list(args.seeds, int)]
            print(f"| {rate:g} | {epochs} | {', '.join(f'{a:.3f}' for a in accuracies)} | "
                  f"{statistics.mean(accuracies):.3f} |", flush=True)


if __name__ == "__main__":
    main()
