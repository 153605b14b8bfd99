"""Everything one training needs, built from (spec, data, budget, device): :func:`prepare`.

The search's :func:`~nas.training.candidate.train_candidate` and the full
:func:`~nas.training.run.train_model` both start here, so a candidate and a trained model see the
same network, initialization, data pipeline, optimizer and step plan.

Randomness: the weights come from a ``torch.Generator`` seeded with ``budget.seed``; batch order
and augmentation from a second one seeded with ``seed + 1`` (it lives in the
:class:`~nas.training.loop.TrainState`, and a resume restores it). Dropout and drop-connect use
torch's global generator: callers run inside ``torch.random.fork_rng`` seeded with ``budget.seed``
(:func:`seeded_global_rng`), so the caller's global state is untouched.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from nas.builder import build_model
from nas.data.augment import AugmentConfig, Augmenter, default_crop_padding
from nas.data.base import Dataset
from nas.data.sources import ImageSource
from nas.spec import ArchSpec
from nas.training.budget import TrainBudget, peak_learning_rate
from nas.training.loop import LoopPlan, TrainState, default_train_mode
from nas.training.optim import make_optimizer
from nas.training.schedules import SettingsAt, StepSettings, bn_momentum_for, fixed_settings, warmup_steps_for

# settings_at for a plan: given the base settings and the step counts, returns step -> settings
SettingsFactory = Callable[[StepSettings, int, int], SettingsAt]  # (base, steps_per_epoch, total_steps)


@dataclass
class Session:
    """A model ready to train: its state, its step plan, its data and its augmenter."""

    spec: ArchSpec  # with the dataset's classes and channels
    budget: TrainBudget
    device: torch.device
    resolution: int  # the (final) training and evaluation resolution
    state: TrainState
    plan: LoopPlan
    train: ImageSource
    minival: ImageSource
    augmenter: Augmenter
    base: StepSettings  # the budget's own settings at the training resolution

    @property
    def model(self) -> nn.Module:
        return self.state.model


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global generator(s) seeded (dropout, drop-connect) and restore the
    caller's state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


def base_settings(data: Dataset, budget: TrainBudget, resolution: int) -> StepSettings:
    """The budget's augmentation at ``resolution``, with the dataset's defaults filled in."""
    padding = (default_crop_padding(resolution, data.crop_fraction) if budget.crop_padding is None
               else budget.crop_padding)
    return StepSettings(resolution, AugmentConfig(
        crop_padding=padding, hflip=data.hflip if budget.hflip is None else budget.hflip,
        magnitude=float(budget.magnitude), mixup_alpha=float(budget.mixup_alpha),
        cutmix_alpha=float(budget.cutmix_alpha), ra_layers=budget.ra_layers, scale_min=float(budget.scale_min)))


def step_counts(n_train: int, batch_size: int, epochs: float, steps: int | None = None) -> tuple[int, int, int]:
    """(batch, steps_per_epoch, total_steps) for ``epochs`` (or ``steps``) over ``n_train`` images;
    the last partial batch of an epoch is dropped."""
    batch = min(batch_size, n_train)
    steps_per_epoch = max(n_train // batch, 1)
    total = steps if steps is not None else max(1, round(epochs * steps_per_epoch))
    return batch, steps_per_epoch, total


def set_bn_momentum(model: nn.Module, budget: TrainBudget, steps_per_epoch: int, total_steps: int) -> None:
    """The budget's BatchNorm momentum, or one adapted to the budget's length (never below the builder's)."""
    adaptive = budget.bn_momentum is None
    momentum = budget.bn_momentum or bn_momentum_for(min(steps_per_epoch, total_steps), total_steps=total_steps)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = max(module.momentum or 0.0, momentum) if adaptive else momentum


def prepare(spec: ArchSpec, data: Dataset, budget: TrainBudget, device: torch.device,
            settings: SettingsFactory | None = None,
            init: Callable[[nn.Module], None] | None = None,
            train_mode: Callable[[nn.Module], None] = default_train_mode) -> Session:
    """Build the model, its optimizer, the data sources and the step plan.

    ``spec`` gets the dataset's classes and channels. ``settings(base, steps_per_epoch, total_steps)``
    gives the per-step schedule (default: the budget's settings at every step). ``init(model)`` runs
    after building and before the optimizer is made (load pretrained weights, freeze a backbone);
    ``train_mode`` is the model's training mode (see :class:`~nas.training.loop.TrainState`).
    """
    spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
    resolution = budget.resolution or spec.resolution
    fmt = torch.channels_last if budget.channels_last else torch.contiguous_format
    model = build_model(spec, generator=torch.Generator().manual_seed(budget.seed))
    train = data.source("train", device)
    batch, steps_per_epoch, stop = step_counts(len(train), budget.batch_size, budget.epochs, budget.steps)
    total = stop if budget.schedule_epochs is None or budget.steps is not None else \
        step_counts(len(train), budget.batch_size, budget.schedule_epochs)[2]
    set_bn_momentum(model, budget, steps_per_epoch, total)
    if init is not None:
        init(model)
    model = model.to(device=device, memory_format=fmt)
    base = base_settings(data, budget, resolution)
    plan = LoopPlan(steps_per_epoch=steps_per_epoch, total_steps=total,
                    warmup_steps=warmup_steps_for(budget.warmup_epochs, steps_per_epoch, total,
                                                  budget.max_warmup_fraction),
                    batch_size=batch, label_smoothing=budget.label_smoothing,
                    settings_at=(settings or (lambda b, s, t: fixed_settings(b)))(base, steps_per_epoch, total),
                    autocast=device.type == "cuda" and budget.amp,
                    check_every=8 if device.type == "cuda" else 1, stop_step=stop if stop < total else None)
    state = TrainState(model=model, optimizer=make_optimizer(model, budget, peak_learning_rate(budget, spec.norm)),
                       generator=torch.Generator(device=device).manual_seed(budget.seed + 1),
                       forward=torch.compile(model) if budget.compile else model, train_mode=train_mode)
    augmenter = Augmenter(data.mean, data.std, device, budget.channels_last, num_classes=data.num_classes)
    return Session(spec=spec, budget=budget, device=device, resolution=resolution, state=state, plan=plan,
                   train=train, minival=data.source("minival", device), augmenter=augmenter, base=base)


__all__ = ["Session", "SettingsFactory", "base_settings", "prepare", "seeded_global_rng", "set_bn_momentum",
           "step_counts"]
