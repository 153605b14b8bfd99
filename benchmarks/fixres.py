"""FixRes on Fashion-MNIST: train at a reduced resolution, then test, or briefly fine-tune, at higher ones.

Trains the search's B0 proxy (width 0.5, depth 0.5) at ``--train-resolution`` px with an
Inception-style random-resized crop (area ``--scale-min``..1: objects look larger in training than
at test, the discrepancy FixRes corrects), then for the raw and the EMA weights:

- evaluates at every ``--test-resolutions`` size (minival picks the best, test reports it);
- fine-tunes the classifier and BatchNorm statistics for ``--finetune-epochs`` at every test size
  above the training one, and evaluates again.

Fashion-MNIST's 28-px images are upsampled to 64 px and more: B0's total stride is 32, and at 24-32 px
its last stages see 1 x 1 maps, where only the centre taps of their depthwise kernels ever get a
gradient. At a larger test size the other, untrained taps come into play and accuracy collapses
(24 px training, 6 epochs on 10,000 images: 0.76 at 24 px, 0.53 at 28, 0.08 at 36), which no
fine-tuning of the classifier and BatchNorm can repair. From 64 px on the last maps are 2 x 2 or more.

    .venv/bin/python benchmarks/fixres.py --threads 2                                   # the real run
    .venv/bin/python benchmarks/fixres.py --threads 1 --subset 1000 --epochs 1 --train-resolution 24 --test-resolutions 24,32
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_common import parser, proxy_spec, setup, shared, timed_train

from nas.checkpoint import build_trained_model, load_model_checkpoint
from nas.data.augment import Augmenter
from nas.training import TrainBudget, TrainConfig
from nas.training.evaluate import evaluate
from nas.training.fixres import finetune_at


def main() -> None:
    p = parser(__doc__, epochs=8, subset=20000)
    p.add_argument("--train-resolution", type=int, default=64)
    p.add_argument("--test-resolutions", default="64,72,80,88,96")
    p.add_argument("--scale-min", type=float, default=0.35)
    p.add_argument("--finetune-epochs", type=float, default=1.0)
    args = p.parse_args()
    setup(args)
    data = shared("fashion-mnist", args.subset, args.seed)
    sizes = [int(r) for r in args.test_resolutions.split(",")]
    budget = TrainBudget(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, scale_min=args.scale_min,
                         ema_decay=0.999)
    augmenter = Augmenter(data.mean, data.std, "cpu", num_classes=data.num_classes)
    minival, test = data.source("minival"), data.source("test")
    with tempfile.TemporaryDirectory() as tmp:
        result, wall = timed_train(proxy_spec(args.width, args.depth, args.train_resolution),
                                   TrainConfig(budget=budget), data, Path(tmp) / "model")
        checkpoint = load_model_checkpoint(Path(tmp) / "model" / "model.pt")
    print(f"trained at {args.train_resolution} px in {wall:.0f} s ({result.metrics.train_time_s:.0f} s of steps)")
    print("\n| weights | resolution | minival | test | minival after fine-tune | test after fine-tune |")
    print("|---|---|---|---|---|---|")
    for name, ema in (("raw", False), ("ema", True)):
        rows = []
        for r in sizes:
            model = build_trained_model(checkpoint, ema=ema)
            row = [evaluate(model, minival, r, augmenter, 512).accuracy, evaluate(model, test, r, augmenter, 512).accuracy]
            if r > args.train_resolution:
                finetune_at(model, data.source("train"), r, args.finetune_epochs, budget, augmenter)
                row += [evaluate(model, minival, r, augmenter, 512).accuracy,
                        evaluate(model, test, r, augmenter, 512).accuracy]
            rows.append((r, row))
            cells = " | ".join(f"{v:.4f}" for v in row) + (" | - | -" if len(row) == 2 else "")
            print(f"| {name} | {r} | {cells} |", flush=True)
        train_row = dict(rows)[args.train_resolution] if args.train_resolution in dict(rows) else None
        best_test = max(rows, key=lambda item: item[1][0])
        tuned = [item for item in rows if len(item[1]) == 4]
        best_tuned = max(tuned, key=lambda item: item[1][2]) if tuned else None
        summary = f"{name}: "
        if train_row:
            summary += f"at the training resolution {args.train_resolution} px test {train_row[1]:.4f}; "
        summary += f"best test resolution (by minival) {best_test[0]} px test {best_test[1][1]:.4f}"
        if best_tuned:
            summary += f"; fine-tuned, best {best_tuned[0]} px test {best_tuned[1][3]:.4f}"
        print(summary)


if __name__ == "__main__":
    main()
