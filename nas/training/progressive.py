"""Progressive learning with adaptive regularization (EfficientNetV2), as the released code does it.

Facts from google/automl ``efficientnetv2/main.py`` (the ``config.train.stages`` branch) and
``effnetv2_configs.py`` (``stages=4, sched=True`` for every V2 model):

- training is split into M stages over the step count: stage k (0-based) ends at step
  ``int((k + 1) / M * total_steps)``;
- stage k trains at image size ``int(ibase + (size - ibase) * (k + 1) / M)``, so the last stage is
  at the full training size; ``ibase`` defaults to half the size (the code's fallback; its ImageNet
  hparams use 128 px for final sizes of 300-384);
- RandAugment magnitude ``linspace(5, magnitude, M)[k]``, mixup and cutmix alpha
  ``linspace(0, alpha, M)[k]``: weak regularization with small images, strong with large ones;
- dropout and stochastic depth stay fixed: the code computes a dropout schedule and discards it;
- the learning-rate schedule runs over the whole training, not per stage.

Here it is a per-step :data:`~nas.training.schedules.SettingsAt` schedule that the unchanged
training loop asks; evaluation stays at the full size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np

from nas.errors import ConfigError
from nas.training.schedules import SettingsAt, StepSettings

RELEASED_MIN_MAGNITUDE = 5.0


@dataclass(frozen=True)
class Progressive:
    """``stages`` (M), ``ibase`` (the first stage's base size; None: half the final size) and the
    RandAugment magnitude the first stage starts from. The final size and the largest magnitude,
    mixup and cutmix alphas are the budget's ``resolution``, ``magnitude``, ``mixup_alpha``,
    ``cutmix_alpha`` (a magnitude of 0 keeps RandAugment off in every stage)."""

    stages: int
    ibase: int | None = None
    min_magnitude: float = RELEASED_MIN_MAGNITUDE

    def __post_init__(self) -> None:
        if not (isinstance(self.stages, int) and not isinstance(self.stages, bool) and 1 <= self.stages <= 1000):
            raise ConfigError(f"progressive must be an integer number of stages between 1 and 1000, got {self.stages!r}",
                              field="progressive")
        if self.ibase is not None and not (isinstance(self.ibase, int) and self.ibase >= 8):
            raise ConfigError(f"ibase must be an integer >= 8 (pixels), got {self.ibase!r}", field="ibase")
        if not (isinstance(self.min_magnitude, (int, float)) and math.isfinite(self.min_magnitude)
                and 0 <= self.min_magnitude <= 30):
            raise ConfigError(f"min_magnitude must be in [0, 30], got {self.min_magnitude!r}", field="min_magnitude")

    def base_size(self, size: int) -> int:
        return self.ibase if self.ibase is not None else max(8, size // 2)

    def check(self, size: int, magnitude: float) -> None:
        """Errors that need the final size and magnitude (known once the spec and budget are)."""
        if self.base_size(size) > size:
            raise ConfigError(f"ibase {self.base_size(size)} is larger than the final training size {size}",
                              field="ibase")
        if 0 < magnitude < self.min_magnitude:
            raise ConfigError(f"min_magnitude {self.min_magnitude:g} is above the final magnitude {magnitude:g}",
                              field="min_magnitude")

    def image_size(self, stage: int, size: int) -> int:
        base = self.base_size(size)
        return int(base + (size - base) * (stage + 1) / self.stages)

    def stage_of(self, step: int, total_steps: int) -> int:
        for stage in range(self.stages):
            if step < int((stage + 1) / self.stages * total_steps):
                return stage
        return self.stages - 1

    def stage_settings(self, stage: int, final: StepSettings) -> StepSettings:
        """Stage ``stage``'s image size and regularization, given the final stage's settings."""
        aug = final.augment
        magnitude = 0.0
        if aug.magnitude > 0:
            magnitude = float(np.linspace(self.min_magnitude, aug.magnitude, self.stages)[stage])
        mixup = float(np.linspace(0.0, aug.mixup_alpha, self.stages)[stage])
        cutmix = float(np.linspace(0.0, aug.cutmix_alpha, self.stages)[stage])
        sized = final.at_resolution(self.image_size(stage, final.resolution))
        return StepSettings(sized.resolution, replace(sized.augment, magnitude=magnitude, mixup_alpha=mixup,
                                                      cutmix_alpha=cutmix))

    def settings(self, final: StepSettings, total_steps: int) -> SettingsAt:
        """The loop's ``step -> settings`` for a training of ``total_steps`` steps."""
        self.check(final.resolution, final.augment.magnitude)
        table = [self.stage_settings(k, final) for k in range(self.stages)]
        return lambda step: table[self.stage_of(step, total_steps)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Progressive":
        return cls(**dict(data))


__all__ = ["Progressive", "RELEASED_MIN_MAGNITUDE"]
