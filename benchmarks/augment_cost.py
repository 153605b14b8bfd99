"""What on-device augmentation costs the search's proxy: images/s with RandAugment on and off, in one run.

The search's proxy (B0 at width 0.5, depth 0.5, 32 px, batch 128) trains ``--steps`` steps with
``train_candidate`` for each setting; settings alternate over ``--repeats`` rounds and the median
train-step time of each is compared (a step: batch read, augmentation, forward, backward, update).
The augmentation alone (``Augmenter.train_batch`` on one batch) is timed as well. Target: RandAugment
costs at most 15% of the step time.

    .venv/bin/python benchmarks/augment_cost.py --threads 1 [--dataset fashion-mnist] [--repeats 5 --steps 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nas.data import load_dataset
from nas.data.augment import AugmentConfig, Augmenter, resize_images
from nas.data.shared import shared_dataset_dir
from nas.presets import preset
from nas.scaling import scale_spec
from nas.training import TrainBudget, train_candidate

SETTINGS = {"off": {}, "RandAugment m10 x2": {"magnitude": 10.0},
            "RandAugment m10 x2 + mixup/cutmix 0.2": {"magnitude": 10.0, "mixup_alpha": 0.2, "cutmix_alpha": 0.2}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = shared_dataset_dir(args.dataset) if args.dataset != "digits" else None
    data = load_dataset(args.dataset, folder)
    spec = scale_spec(preset("efficientnet-b0"), width=0.5, depth=0.5, resolution=32)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {data!r}; {args.steps} steps x "
          f"{args.repeats} rounds, batch {args.batch_size}", flush=True)
    steps: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, options in SETTINGS.items():
            budget = TrainBudget(steps=args.steps, batch_size=args.batch_size, **options)
            steps[name].append(train_candidate(spec, data, budget, "cpu").step_time_ms)
    augment = _augment_only(data, args.batch_size, args.repeats)
    base = statistics.median(steps["off"])
    print("\n| setting | step ms (median of rounds) | images/s | step time vs off | augmentation alone, ms/batch |")
    print("|---|---|---|---|---|")
    for name in SETTINGS:
        ms = statistics.median(steps[name])
        print(f"| {name} | {ms:.1f} | {args.batch_size / ms * 1000:,.0f} | {ms / base - 1:+.1%} | "
              f"{augment[name]:.2f} |")
    on = statistics.median(steps["RandAugment m10 x2"])
    print(f"\nRandAugment share of the step time: {(on - base) / on:.1%} by step times, "
          f"{(augment['RandAugment m10 x2'] - augment['off']) / on:.1%} by the augmentation alone (target <= 15%)")


def _augment_only(data, batch: int, repeats: int) -> dict[str, float]:
    """Median ms of Augmenter.train_batch on one uint8 batch at 32 px, per setting."""
    augmenter = Augmenter(data.mean, data.std, "cpu", num_classes=data.num_classes)
    images = resize_images(data.train_x[:batch], 32)
    labels = data.train_y[:batch]
    out = {}
    for name, options in SETTINGS.items():
        config = AugmentConfig(**options)
        generator = torch.Generator().manual_seed(0)
        times = []
        for _ in range(10 * repeats):
            start = time.perf_counter()
            augmenter.train_batch(images, labels, config, generator)
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) * 1000
    return out


if __name__ == "__main__":
    main()
