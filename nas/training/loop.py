"""The training loop: steps of one model, and nothing else.

:func:`fit` runs the steps ``state.step .. plan.total_steps`` of one model. It draws a permutation
at the start of each epoch, asks the plan what the step trains on (:class:`StepSettings`: image
size and augmentation), reads the batch from an :class:`~nas.data.sources.ImageSource`, augments
it, sets the scheduled learning rate, steps the optimizer and checks the loss for divergence.
Everything else a training run wants is a :class:`Hook` it is handed:

- measuring: step time and memory (:mod:`nas.training.measure`);
- evaluating after each epoch, pruning (a hook raises :class:`StopTraining`);
- the exponential moving average of the weights (:mod:`nas.training.ema`);
- checkpoints for resume, history rows, progress bars (:mod:`nas.training.run`).

Recipes change what the loop is given, not the loop: progressive learning is a ``settings_at``
schedule, FixRes fine-tuning is another :func:`fit` with a different ``train_mode`` and a frozen
backbone, transfer learning changes the initial weights.

Resuming: the loop keeps no state outside :class:`TrainState` (the model, the optimizer, the
generator of batch order and augmentation, the step counter). Restore those at an epoch boundary and
the following steps are the ones an uninterrupted run takes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.data.augment import Augmenter
from nas.data.sources import ImageSource
from nas.training.schedules import SettingsAt, StepSettings, lr_factor


class StopTraining(Exception):
    """Raised (by the loop or a hook) to end training with a status other than ``ok``."""

    def __init__(self, status: str, error: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def default_train_mode(model: nn.Module) -> None:
    model.train()


@dataclass
class TrainState:
    """Everything the loop changes: restore these and the next steps repeat exactly.

    ``forward`` is the callable that runs the model (the model itself or its ``torch.compile``).
    ``train_mode`` puts the model in its training mode: ``model.train()``, or a partial one (a
    frozen backbone keeps its BatchNorm statistics; FixRes fine-tuning trains only BatchNorm's).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None
    train_mode: Callable[[nn.Module], None] = default_train_mode

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.model


@dataclass(frozen=True)
class LoopPlan:
    """The shape of one training: how many steps, the warm-up, the batch, what each step trains on.

    ``total_steps`` is the length the learning-rate schedule runs over; ``stop_step`` (default the same)
    is where this training stops: a rung of successive halving trains the first part of a longer
    schedule, and a promotion continues it to a later stop.
    """

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    batch_size: int
    settings_at: SettingsAt
    label_smoothing: float = 0.0
    autocast: bool = False
    check_every: int = 1  # steps between divergence checks (each check synchronizes a GPU)
    stop_step: int | None = None

    @property
    def end_step(self) -> int:
        return self.total_steps if self.stop_step is None else min(self.stop_step, self.total_steps)

    def epochs_done(self, step: int) -> float:
        return step / self.steps_per_epoch


@dataclass
class EpochSummary:
    """What the loop knows at the end of an epoch (or of the last, partial one).

    ``values`` is filled by the epoch-end hooks in order (an evaluator adds its accuracies, a history
    writer then reads them).
    """

    epoch: int  # 1-based index of the epoch that ended
    step: int  # steps done
    complete: bool  # a whole epoch (the last one may be partial)
    train_loss: float
    lr: float
    settings: StepSettings
    seconds: float  # training time of this epoch, without the epoch-end hooks
    values: dict[str, Any] = field(default_factory=dict)


class Hook:
    """Optional callbacks of :func:`fit`; each default does nothing. Hooks run in list order."""

    def epoch_start(self, state: TrainState, epoch: int, settings: StepSettings) -> None:
        """Before the first step of ``epoch`` (0-based)."""

    def step_start(self, state: TrainState) -> None:
        """Before the batch of the step is read."""

    def after_forward(self, state: TrainState) -> None:
        """After the forward pass and loss, before backward (activation memory is at its peak)."""

    def step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        """After the optimizer step; ``state.step`` already counts it."""

    def epoch_end(self, state: TrainState, summary: EpochSummary) -> None:
        """After the last step of an epoch (and after the last step of all)."""


def fit(state: TrainState, source: ImageSource, plan: LoopPlan, augmenter: Augmenter,
        hooks: Sequence[Hook] = ()) -> TrainState:
    """Train from ``state.step`` to ``plan.end_step``; raises :class:`StopTraining` on divergence
    (status ``diverged``) or when a hook stops it."""
    spe, batch = plan.steps_per_epoch, plan.batch_size
    if state.step % spe and state.step < plan.end_step:
        raise ValueError(f"fit: can start only at an epoch boundary, not at step {state.step}")
    model, optimizer = state.model, state.optimizer
    device_type = next(iter(model.parameters())).device.type
    state.train_mode(model)
    perm = None
    loss_sum = torch.zeros((), dtype=torch.float64)
    epoch_steps = 0
    epoch_start = time.perf_counter()
    for step in range(state.step, plan.end_step):
        epoch, position = divmod(step, spe)
        settings = plan.settings_at(step)
        if position == 0:
            perm = torch.randperm(len(source), generator=state.generator, device=source.device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=source.device)
            epoch_steps, epoch_start = 0, time.perf_counter()
            for hook in hooks:
                hook.epoch_start(state, epoch, settings)
        for hook in hooks:
            hook.step_start(state)
        images, labels = source.batch(perm[position * batch:(position + 1) * batch], settings.resolution)
        images, targets = augmenter.train_batch(images, labels, settings.augment, state.generator)
        lr = 0.0
        for group in optimizer.param_groups:
            group["lr"] = lr = group["peak_lr"] * lr_factor(step, plan.warmup_steps, plan.total_steps)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=plan.autocast):
            logits = state.forward(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=plan.label_smoothing)
        for hook in hooks:
            hook.after_forward(state)
        last_of_epoch = position + 1 == spe or step + 1 == plan.end_step
        if (step + 1) % plan.check_every == 0 or last_of_epoch:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise StopTraining("diverged", f"training loss became {value} at step {step + 1} "
                                               f"(epoch {epoch + 1}); lr {lr:.3g}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step = step + 1
        loss_sum += loss.detach().double()
        epoch_steps += 1
        for hook in hooks:
            hook.step_end(state, loss)
        if last_of_epoch:
            summary = EpochSummary(epoch=epoch + 1, step=state.step, complete=position + 1 == spe,
                                   train_loss=float(loss_sum) / epoch_steps, lr=lr, settings=settings,
                                   seconds=time.perf_counter() - epoch_start)
            for hook in hooks:
                hook.epoch_end(state, summary)
            state.train_mode(model)
    return state


__all__ = ["EpochSummary", "Hook", "LoopPlan", "StopTraining", "TrainState", "default_train_mode", "fit"]
