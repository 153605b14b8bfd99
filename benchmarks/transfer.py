"""Transfer learning: MNIST -> Fashion-MNIST against training from scratch, with the same short budget.

1. trains the search's B0 proxy (width 0.5, depth 0.5, 32 px) on MNIST for ``--pretrain-epochs``;
2. trains it on Fashion-MNIST for ``--epochs``, three ways, same seed and budget: from scratch,
   initialized from the MNIST model.pt (new head, whole network trained), and initialized with the
   backbone frozen (only the new head trains);
3. reports minival and test accuracy of each (raw and EMA weights).

    .venv/bin/python benchmarks/transfer.py --threads 2                                        # the real run
    .venv/bin/python benchmarks/transfer.py --threads 1 --subset 1000 --pretrain-epochs 1 --epochs 1
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_common import parser, proxy_spec, setup, shared, test_accuracy, timed_train

from nas.training import TrainBudget, TrainConfig


def main() -> None:
    p = parser(__doc__, epochs=2)
    p.add_argument("--pretrain-epochs", type=float, default=5)
    args = p.parse_args()
    setup(args)
    spec = proxy_spec(args.width, args.depth, 32)
    budget = TrainBudget(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, ema_decay=0.999)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mnist = shared("mnist", args.subset, args.seed)
        source = Path(tmp) / "mnist"
        pretrained, wall = timed_train(spec, TrainConfig(budget=TrainBudget(
            epochs=args.pretrain_epochs, batch_size=args.batch_size, seed=args.seed, ema_decay=0.999)), mnist, source)
        print(f"MNIST after {args.pretrain_epochs:g} epochs: minival {pretrained.metrics.accuracy:.4f} ({wall:.0f} s)")
        fashion = shared("fashion-mnist", args.subset, args.seed)
        init = str(source / "model.pt")
        variants = {"scratch": TrainConfig(budget=budget),
                    "from MNIST, all layers": TrainConfig(budget=budget, init=init),
                    "from MNIST, frozen backbone": TrainConfig(budget=budget, init=init, freeze="backbone")}
        for i, (name, config) in enumerate(variants.items()):
            print(f"--- {name}", flush=True)
            result, wall = timed_train(spec, config, fashion, Path(tmp) / str(i))
            rows.append((name, result, wall, test_accuracy(Path(tmp) / str(i) / "model.pt", fashion)))
    print(f"\nFashion-MNIST, {args.epochs:g} epochs:\n")
    print("| start | minival | test | EMA minival | EMA test | wall (s) |")
    print("|---|---|---|---|---|---|")
    for name, result, wall, test in rows:
        print(f"| {name} | {result.results['raw']['minival_accuracy']:.4f} | {test['raw']:.4f} | "
              f"{result.results['ema']['minival_accuracy']:.4f} | {test['ema']:.4f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
