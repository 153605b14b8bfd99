"""Progressive learning (EfficientNetV2) against fixed-size training on Fashion-MNIST.

Same spec (the search's B0 proxy: width 0.5, depth 0.5, 32 px), same epochs, same optimizer and seed:

- ``fixed``: every step at 32 px with the final regularization (RandAugment ``--magnitude``, mixup
  and cutmix ``--alpha``), the V2 paper's baseline;
- ``progressive``: ``--stages`` stages from ``--ibase`` px to 32 px, magnitude 5 -> ``--magnitude``,
  alphas 0 -> ``--alpha``, one learning-rate schedule over the whole training.

The V2 claim to check: equal or better final accuracy in 0.8x the training time or less. Reports
minival and test accuracy (raw and EMA weights), the time spent in training steps (the claim's
measure) and the wall time, which adds the minival evaluation of both weight sets after each epoch.

    .venv/bin/python benchmarks/progressive.py --threads 2                              # the real run
    .venv/bin/python benchmarks/progressive.py --threads 1 --subset 1000 --epochs 2     # a quick check
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_common import parser, proxy_spec, setup, shared, test_accuracy, timed_train

from nas.training import Progressive, TrainBudget, TrainConfig


def main() -> None:
    p = parser(__doc__, epochs=12)
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--ibase", type=int, default=16)
    p.add_argument("--magnitude", type=float, default=10.0)
    p.add_argument("--alpha", type=float, default=0.2, help="final mixup and cutmix alpha")
    args = p.parse_args()
    setup(args)
    data = shared("fashion-mnist", args.subset, args.seed)
    spec = proxy_spec(args.width, args.depth, 32)
    budget = TrainBudget(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, magnitude=args.magnitude,
                         mixup_alpha=args.alpha, cutmix_alpha=args.alpha, ema_decay=0.999)
    variants = {"fixed": TrainConfig(budget=budget),
                "progressive": TrainConfig(budget=budget, progressive=Progressive(args.stages, ibase=args.ibase))}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in variants.items():
            print(f"--- {name}", flush=True)
            result, wall = timed_train(spec, config, data, Path(tmp) / name)
            rows[name] = (result, wall, test_accuracy(Path(tmp) / name / "model.pt", data))
    print("\n| variant | image sizes | minival | test | EMA minival | EMA test | training steps (s) | wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (result, wall, test) in rows.items():
        sizes = sorted({int(row["image_size"]) for row in result.history})
        print(f"| {name} | {', '.join(map(str, sizes))} | {result.results['raw']['minival_accuracy']:.4f} | "
              f"{test['raw']:.4f} | {result.results['ema']['minival_accuracy']:.4f} | {test['ema']:.4f} | "
              f"{result.metrics.train_time_s:.1f} | {wall:.1f} |")
    (fixed, fixed_wall, fixed_test), (prog, prog_wall, prog_test) = rows["fixed"], rows["progressive"]
    print(f"\nprogressive / fixed: training steps {prog.metrics.train_time_s / fixed.metrics.train_time_s:.2f}x, "
          f"wall {prog_wall / fixed_wall:.2f}x; test accuracy {prog_test['raw'] - fixed_test['raw']:+.4f} "
          f"(EMA {prog_test['ema'] - fixed_test['ema']:+.4f})")


if __name__ == "__main__":
    main()
