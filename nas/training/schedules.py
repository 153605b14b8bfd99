"""Schedules: functions of the step that the training loop asks, never state it keeps.

- the learning rate: linear warm-up, then a cosine to zero over the whole training (:func:`lr_factor`);
- how long the warm-up lasts for a given budget (:func:`warmup_steps_for`);
- BatchNorm's running-average momentum for a given budget (:func:`bn_momentum_for`);
- what a step trains on: its image size and augmentation (:class:`StepSettings`). A recipe such as
  progressive learning (:mod:`nas.training.progressive`) is nothing but a ``step -> StepSettings``
  function; :func:`fixed_settings` and :func:`epoch_settings` are the two simple ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from nas.data.augment import AugmentConfig
from nas.errors import ConfigError

EpochSchedule = Callable[[int], Mapping[str, Any]]
SCHEDULE_KEYS = ("magnitude", "mixup_alpha", "cutmix_alpha", "resolution")


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from ~0 to 1, then cosine from 1 to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def warmup_steps_for(warmup_epochs: float, steps_per_epoch: int, total_steps: int, max_fraction: float) -> int:
    """``warmup_epochs`` of steps, but never more than ``max_fraction`` of ``total_steps``.

    Scaling the warm-up to the budget keeps a 1-epoch proxy from spending its whole training at a
    fraction of the learning rate; benchmarks/warmup.py measured the fraction (BENCHMARKS.md).
    """
    return min(round(warmup_epochs * steps_per_epoch), math.floor(max_fraction * total_steps))


def bn_momentum_for(steps_per_epoch: int, floor: float = 0.01, total_steps: int | None = None) -> float:
    """BatchNorm running-average momentum for epochs of ``steps_per_epoch`` steps and a training of
    ``total_steps`` steps (the trainer passes ``min(steps_per_epoch, total_steps)`` first).

    The builder uses TF's 0.99 decay (momentum 0.01): the running statistics average the last ~100
    steps, fine for ImageNet's thousands of steps per epoch but stale for a proxy, whose network
    changes fast and is evaluated after every short epoch (an early-stopping scheduler ranks on
    those numbers). Momentum 20 / steps_per_epoch (between 0.01 and 0.1) makes them average the last
    twentieth of an epoch; long epochs keep the official value. On Fashion-MNIST's proxy this lifts
    epoch-1 minival accuracy from 0.49 to 0.83 (BENCHMARKS.md).

    A training of very few steps needs more: at momentum 0.1, 8 steps leave 43% of the initial
    statistics (mean 0, variance 1) in the running averages, and the proxy evaluates at chance level
    whatever it learnt. With ``total_steps`` the momentum is raised so that at most 0.1% of the
    initial statistics survive the run: ``1 - 0.001 ** (1 / total_steps)`` (0.58 for 8 steps, 0.19
    for 32, below 0.1 from 66 steps on, where it no longer binds).
    """
    momentum = min(0.1, max(floor, 20.0 / max(steps_per_epoch, 1)))
    if total_steps is not None:
        momentum = max(momentum, 1.0 - 0.001 ** (1.0 / max(total_steps, 1)))
    return min(momentum, 1.0)


@dataclass(frozen=True)
class StepSettings:
    """What one training step trains on: the image size and the augmentation."""

    resolution: int
    augment: AugmentConfig

    def at_resolution(self, resolution: int) -> "StepSettings":
        """The same settings at another size; the crop padding keeps its share of the image."""
        if resolution == self.resolution:
            return self
        padding = round(self.augment.crop_padding * resolution / self.resolution)
        return StepSettings(resolution, replace(self.augment, crop_padding=padding))


SettingsAt = Callable[[int], StepSettings]


def fixed_settings(settings: StepSettings) -> SettingsAt:
    """The same settings at every step (the search's proxy training)."""
    return lambda step: settings


def epoch_settings(schedule: EpochSchedule, base: StepSettings, steps_per_epoch: int) -> SettingsAt:
    """Adapt ``schedule(epoch) -> {"resolution": r, "magnitude": m, "mixup_alpha": a, "cutmix_alpha": c}``
    (any subset; called once at the start of each epoch, 0-based) to the loop's per-step question."""
    cache: dict[int, StepSettings] = {}

    def at(step: int) -> StepSettings:
        epoch = step // steps_per_epoch
        if epoch not in cache:
            cache.clear()
            cache[epoch] = _apply(schedule(epoch), base)
        return cache[epoch]

    return at


def _apply(values: Mapping[str, Any], base: StepSettings) -> StepSettings:
    unknown = sorted(set(values) - set(SCHEDULE_KEYS))
    if unknown:
        raise ConfigError(f"schedule: unknown key(s) {', '.join(unknown)}; valid: {', '.join(SCHEDULE_KEYS)}")
    settings = base.at_resolution(int(values.get("resolution", base.resolution)))
    augment = replace(settings.augment, **{k: float(values[k]) for k in SCHEDULE_KEYS[:3] if k in values})
    return StepSettings(settings.resolution, augment)


__all__ = ["EpochSchedule", "SCHEDULE_KEYS", "SettingsAt", "StepSettings", "bn_momentum_for", "epoch_settings",
           "fixed_settings", "lr_factor", "warmup_steps_for"]
