"""Scores that rank a briefly trained candidate, measured from the training already paid for.

Which signal ranks candidates best after a short training is an empirical question (the fidelity
measurement of ``nas fidelity --sample`` answers it on the user's data); the trainer reports all of
them so the question can be asked without training again (names in :data:`nas.metrics.SCORES`):

* ``accuracy`` and ``minival_loss``: the final minival evaluation;
* ``train_loss``: the mean training loss over the last half of the steps, the training-speed
  estimate (a network that learns fast now tends to end better; Ru et al. report it ranking at
  Spearman 0.95 within a quarter of the budget on NAS-Bench-201);
* ``bn_accuracy``: minival accuracy after the BatchNorm running statistics are re-estimated on
  training images with the final weights (a brief training leaves them lagging behind the weights;
  weight-sharing NAS re-estimates them before ranking). Networks without BatchNorm report their
  accuracy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas.data.augment import Augmenter
from nas.data.sources import ImageSource
from nas.training.evaluate import evaluate
from nas.training.loop import Hook, TrainState

TAIL_FRACTION = 0.5  # train_loss averages the last half of the steps
BN_IMAGES = 2048  # training images the BatchNorm statistics are re-estimated on


class TrainLossTail(Hook):
    """The mean training loss over the last :data:`TAIL_FRACTION` of the ``end_step`` steps a training
    runs to. ``earlier``: the (step, loss) pairs of the steps a continued training ran before (kept in
    its checkpoint), so a promotion reports what one training to ``end_step`` would."""

    def __init__(self, end_step: int, earlier: list[tuple[int, float]] | None = None) -> None:
        self.first = int(end_step * (1 - TAIL_FRACTION))
        self.earlier = [(int(step), float(loss)) for step, loss in (earlier or [])]
        self.steps: list[int] = []
        self.losses: list[torch.Tensor] = []

    def step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        self.steps.append(state.step)
        self.losses.append(loss.detach().float())  # read once at the end: no sync per step

    def pairs(self) -> list[tuple[int, float]]:
        """Every (step, loss) so far, the earlier ones included (what a checkpoint keeps)."""
        values = torch.stack(self.losses).tolist() if self.losses else []
        return self.earlier + list(zip(self.steps, values))

    def value(self) -> float | None:
        tail = [loss for step, loss in self.pairs() if step > self.first]
        return sum(tail) / len(tail) if tail else None


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_reestimated(model: nn.Module, train: ImageSource, resolution: int, augmenter: Augmenter, batch_size: int,
                   images: int = BN_IMAGES, autocast: bool = False) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are the exact averages over ``images`` training
    images (a fixed random draw, no augmentation, the weights untouched); ``model`` is not changed."""
    again = copy.deepcopy(model)
    norms = batch_norms(again)
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    again.eval()
    for norm in norms:
        norm.train()  # only the statistics move: dropout and drop-connect stay off, no random draws
    draw = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:images].sort().values
    with torch.no_grad(), torch.autocast(train.device.type, dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, len(draw), batch_size):
            batch, _ = train.batch(draw[start:start + batch_size].to(train.device), resolution)
            again(augmenter.to_float(batch))
    return again.eval()


def bn_accuracy(model: nn.Module, train: ImageSource, minival: ImageSource, resolution: int, augmenter: Augmenter,
                batch_size: int, autocast: bool = False) -> float | None:
    """Minival accuracy after :func:`bn_reestimated`; None for a network without BatchNorm."""
    if not batch_norms(model):
        return None
    again = bn_reestimated(model, train, resolution, augmenter, batch_size, autocast=autocast)
    return evaluate(again, minival, resolution, augmenter, batch_size, autocast).accuracy


__all__ = ["BN_IMAGES", "TAIL_FRACTION", "TrainLossTail", "batch_norms", "bn_accuracy", "bn_reestimated"]
