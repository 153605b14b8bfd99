"""FixRes (Touvron et al.), as "Making EfficientNet More Efficient" uses it: train at a reduced
resolution, then test, or briefly fine-tune, at a higher one.

Training crops make objects look larger than test images do; testing at a somewhat higher
resolution than the training one compensates (:func:`evaluate_at`). Fine-tuning at the test
resolution (:func:`finetune_at`) then adapts what depends on the apparent object size and is cheap
to retrain: the BatchNorm statistics and the classifier. Here the backbone's weights stay frozen,
the BatchNorm running statistics are recomputed at the new resolution as an exact average over the
fine-tuning batches (momentum None, statistics reset first), the classifier trains with the
budget's optimizer at a tenth of its peak learning rate (cosine, no warm-up), and the images are not
augmented (test-time preprocessing, as FixRes fine-tunes). Dropout and drop-connect stay off.
The fine-tuning is one more :func:`~nas.training.loop.fit` with its own plan and training mode.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nas.data.augment import AugmentConfig, Augmenter
from nas.data.sources import ImageSource
from nas.training.budget import TrainBudget
from nas.training.evaluate import Evaluation, evaluate
from nas.training.loop import Hook, LoopPlan, TrainState, fit
from nas.training.optim import make_optimizer
from nas.training.parts import batch_norms, classifier
from nas.training.schedules import StepSettings, fixed_settings
from nas.training.setup import step_counts

FINETUNE_LR_SCALE = 0.1


def evaluate_at(model: nn.Module, source: ImageSource, resolutions: Sequence[int], augmenter: Augmenter,
                batch_size: int, autocast: bool = False) -> dict[int, Evaluation]:
    """The model evaluated at each resolution (the source resizes its images to each)."""
    return {r: evaluate(model, source, r, augmenter, batch_size, autocast) for r in resolutions}


def _bn_only_train_mode(model: nn.Module) -> None:
    model.eval()
    for bn in batch_norms(model):
        bn.train()


def finetune_plan(n_train: int, epochs: float, budget: TrainBudget, resolution: int = 8,
                  autocast: bool = False) -> LoopPlan:
    """The step plan of a fine-tuning: ``epochs`` over the training split, no warm-up, no augmentation."""
    batch, steps_per_epoch, total = step_counts(n_train, budget.batch_size, epochs)
    return LoopPlan(steps_per_epoch=steps_per_epoch, total_steps=total, warmup_steps=0, batch_size=batch,
                    settings_at=fixed_settings(StepSettings(resolution, AugmentConfig())),
                    label_smoothing=budget.label_smoothing, autocast=autocast)


def finetune_at(model: nn.Module, source: ImageSource, resolution: int, epochs: float, budget: TrainBudget,
                augmenter: Augmenter, hooks: Sequence[Hook] = ()) -> None:
    """Fine-tune ``model`` in place at ``resolution``: its classifier and BatchNorm statistics.

    Reproducible on its own: batch order comes from a generator seeded with ``budget.seed + 3`` and
    nothing draws from torch's global generator (dropout is off).
    """
    device = next(model.parameters()).device
    trainable = {id(p): p.requires_grad for p in model.parameters()}
    momenta = [(bn, bn.momentum) for bn in batch_norms(model)]
    for param in model.parameters():
        param.requires_grad_(False)
    for param in classifier(model)[1].parameters():
        param.requires_grad_(True)
    for bn, _ in momenta:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: the exact statistics over the fine-tuning batches
    try:
        plan = finetune_plan(len(source), epochs, budget, resolution, device.type == "cuda" and budget.amp)
        state = TrainState(model=model, optimizer=make_optimizer(model, budget, budget.learning_rate * FINETUNE_LR_SCALE),
                           generator=torch.Generator(device=device).manual_seed(budget.seed + 3),
                           train_mode=_bn_only_train_mode)
        fit(state, source, plan, augmenter, hooks)
    finally:
        for param in model.parameters():
            param.requires_grad_(trainable[id(param)])
        for bn, momentum in momenta:
            bn.momentum = momentum
    model.eval()


__all__ = ["FINETUNE_LR_SCALE", "evaluate_at", "finetune_at", "finetune_plan"]
