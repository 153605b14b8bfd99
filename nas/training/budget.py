"""How long and how a network trains: :class:`TrainBudget`, validated plain data (no torch: it travels in
jobs and run files; the optimizer it names is built by :func:`nas.training.optim.make_optimizer`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from nas.errors import ConfigError
from nas.kinds import NORMS
from nas.limits import MAX_EPOCHS, MAX_STEPS, check_at_most, check_seed

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
# Learning rates per 256 images of batch (scaled linearly with the batch size) and weight decay. SGD
# (Nesterov, momentum 0.9) takes the linear-scaling rule's 0.1 per 256: at 0.4 the 6-epoch digits proxy
# ended at 0.22-0.37 over seeds 0-3, at 0.1 at 0.84-0.88 (BENCHMARKS.md, "SGD's default rate").
DEFAULT_LR = {"sgd": 0.1, "rmsprop": 0.016, "adamw": 0.032}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-5, "rmsprop": 1e-5, "adamw": 0.05}
# The warm-up never takes more than this share of the steps (see schedules.warmup_steps_for and
# benchmarks/warmup.py): a 1-epoch budget keeps most of its steps at a useful learning rate.
MAX_WARMUP_FRACTION = 0.25


@dataclass(frozen=True)
class TrainBudget:
    """How long and how a candidate trains. The defaults are the search's proxy budget.

    ``epochs`` may be fractional; ``steps``, when given, overrides it. ``schedule_epochs`` (>= epochs)
    makes the learning-rate schedule (warm-up, cosine) run over that many epochs while the training
    stops after ``epochs``: the first part of a longer training, which a later rung continues. ``lr`` / ``weight_decay`` of
    None take the optimizer's default (:data:`DEFAULT_LR` per 256 images, scaled by the batch size;
    :data:`DEFAULT_WEIGHT_DECAY`). The learning rate warms up linearly for ``warmup_epochs``, but
    for at most ``max_warmup_fraction`` of the steps, then follows a cosine to zero.
    ``resolution`` is the (final) training image size (None: the spec's own).
    ``hflip`` None takes the dataset's default; ``crop_padding`` None takes the dataset's default
    (``Dataset.crop_fraction`` of the resolution: 0 for digits and (Fashion-)MNIST, 1/8 else).
    ``scale_min`` < 1 adds an Inception-style random-resized crop of area ``scale_min``..1.
    ``magnitude`` (RandAugment's level, 0 = off, ``ra_layers`` operations per image),
    ``mixup_alpha`` and ``cutmix_alpha`` (0 = off) are the regularization knobs that progressive
    learning schedules (there they are the final stage's values). ``ema_decay`` > 0 keeps an
    exponential moving average of the weights (see :mod:`nas.training.ema`). ``amp`` is bf16
    autocast, used on CUDA only. ``bn_momentum`` None adapts BatchNorm's running-average momentum to
    the budget (see :func:`~nas.training.schedules.bn_momentum_for`).

    The defaults (AdamW at 0.016, 20 epochs of batch 128, label smoothing 0.1) bring the B0-like proxy
    (width 0.5, depth 0.5, 32 px) above 95% minival accuracy on ``digits`` in about 10 s on two
    CPU cores (see BENCHMARKS.md).
    """

    epochs: float = 20
    steps: int | None = None
    schedule_epochs: float | None = None  # the schedule's length when training stops earlier (rungs)
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    max_warmup_fraction: float = MAX_WARMUP_FRACTION
    label_smoothing: float = 0.1
    seed: int = 0
    compile: bool = False
    resolution: int | None = None
    eval_batch_size: int = 512
    hflip: bool | None = None
    crop_padding: int | None = None
    scale_min: float = 1.0
    magnitude: float = 0.0
    ra_layers: int = 2
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    ema_decay: float = 0.0
    channels_last: bool = True
    amp: bool = True
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        def bad(name: str, message: str) -> ConfigError:
            return ConfigError(f"{name} {message}, got {getattr(self, name)!r}", field=name)

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not (number(self.epochs) and self.epochs > 0):
            raise bad("epochs", "must be a number > 0")
        check_at_most(self.epochs, MAX_EPOCHS, "epochs")
        if self.steps is not None and not (integer(self.steps) and self.steps >= 1):
            raise bad("steps", "must be an integer >= 1 or None")
        check_at_most(self.steps, MAX_STEPS, "steps")
        if self.schedule_epochs is not None and not (number(self.schedule_epochs)
                                                     and self.schedule_epochs >= self.epochs):
            raise bad("schedule_epochs", "must be a number >= epochs or None")
        if not (integer(self.batch_size) and self.batch_size >= 1):
            raise bad("batch_size", "must be an integer >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}",
                              field="optimizer")
        if self.lr is not None and not (number(self.lr) and self.lr > 0):
            raise bad("lr", "must be a number > 0")
        if self.weight_decay is not None and not (number(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "must be a number >= 0")
        if not (number(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise bad("warmup_epochs", "must be a number >= 0")
        if not (number(self.max_warmup_fraction) and 0 <= self.max_warmup_fraction <= 1):
            raise bad("max_warmup_fraction", "must be in [0, 1]")
        if not (number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise bad("label_smoothing", "must be in [0, 1)")
        check_seed(self.seed)
        if self.resolution is not None and not (integer(self.resolution) and 8 <= self.resolution <= 4096):
            raise bad("resolution", "must be an integer between 8 and 4096")
        if not (integer(self.eval_batch_size) and self.eval_batch_size >= 1):
            raise bad("eval_batch_size", "must be an integer >= 1")
        if self.crop_padding is not None and not (integer(self.crop_padding) and self.crop_padding >= 0):
            raise bad("crop_padding", "must be an integer >= 0")
        if not (number(self.scale_min) and 0 < self.scale_min <= 1):
            raise bad("scale_min", "must be in (0, 1] (1 turns the random-resized crop off)")
        if not (number(self.magnitude) and 0 <= self.magnitude <= 30):
            raise bad("magnitude", "must be in [0, 30]")
        if not (integer(self.ra_layers) and 1 <= self.ra_layers <= 8):
            raise bad("ra_layers", "must be an integer between 1 and 8")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if not (number(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "must be a number >= 0")
        if not (number(self.ema_decay) and 0 <= self.ema_decay < 1):
            raise bad("ema_decay", "must be in [0, 1) (0 turns the average off)")
        if self.bn_momentum is not None and not (number(self.bn_momentum) and 0 < self.bn_momentum <= 1):
            raise bad("bn_momentum", "must be in (0, 1]")
        for flag in ("compile", "channels_last", "amp"):
            if not isinstance(getattr(self, flag), bool):
                raise bad(flag, "must be true or false")
        if self.hflip is not None and not isinstance(self.hflip, bool):
            raise bad("hflip", "must be true, false or None")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate actually used."""
        if self.lr is not None:
            return float(self.lr)
        return DEFAULT_LR[self.optimizer] * self.batch_size / 256

    @property
    def decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else float(self.weight_decay)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainBudget":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"budget: unknown field(s) {', '.join(unknown)}")
        return cls(**dict(data))


def peak_learning_rate(budget: TrainBudget, norm: str) -> float:
    """The peak learning rate a network with ``norm`` trains at: the budget's ``lr`` when given, else the
    optimizer's default for the batch size times the norm kind's ``lr_scale``.

    The defaults are tuned with BatchNorm. Measured on the B0 digits proxy (BENCHMARKS.md, "Norm kinds"),
    every batch-independent kind (groupnorm, layernorm and their Proxy Norm variants) diverges to a
    constant output at that rate and trains to 91-95% at a quarter of it, which those kinds declare.
    """
    if budget.lr is not None:
        return float(budget.lr)

    return budget.learning_rate * float(getattr(NORMS[norm], "lr_scale", 1.0))


__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "MAX_WARMUP_FRACTION", "OPTIMIZERS", "TrainBudget",
           "peak_learning_rate"]
