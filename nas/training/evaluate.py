"""Top-1 accuracy and loss of a model over a whole split, in inference mode."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nas.data.augment import Augmenter
from nas.data.sources import ImageSource, ordered_batches
from nas.training.loop import EpochSummary, Hook, TrainState


class Evaluation(NamedTuple):
    """``correct`` is the per-image correctness (bool, on the CPU, in split order)."""

    accuracy: float
    loss: float
    correct: torch.Tensor


def evaluate(model: nn.Module, source: ImageSource, resolution: int, augmenter: Augmenter, batch_size: int,
             autocast: bool = False) -> Evaluation:
    """Accuracy, mean cross-entropy (no label smoothing) and per-image correctness at ``resolution``.

    Runs in eval mode and restores every module's own mode afterwards (a partly frozen model keeps
    its partial training mode).
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    hits = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=source.device)
    try:
        with torch.inference_mode(), torch.autocast(source.device.type, dtype=torch.bfloat16, enabled=autocast):
            for images, labels in ordered_batches(source, batch_size, resolution):
                logits = model(augmenter.to_float(images)).float()
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
                hits.append(logits.argmax(1) == labels)
    finally:
        for module, mode in modes:
            module.training = mode
    correct = torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool)
    n = max(len(source), 1)
    return Evaluation(int(correct.sum().item()) / n, float(loss_sum.item()) / n, correct)



class EvaluateEachEpoch(Hook):
    """After each epoch, evaluate a model on a split and put ``<name>_accuracy`` / ``<name>_loss`` into
    the epoch's summary; keeps the last :class:`Evaluation` and the accuracy history.

    ``model`` is a callable returning the module to evaluate (the trained one, or its average).
    """

    def __init__(self, name: str, model: Callable[[], nn.Module], source: ImageSource, resolution: int,
                 augmenter: Augmenter, batch_size: int, autocast: bool = False) -> None:
        self.name, self.model, self.source, self.resolution = name, model, source, resolution
        self.augmenter, self.batch_size, self.autocast = augmenter, batch_size, autocast
        self.last: Evaluation | None = None
        self.history: list[float] = []

    def epoch_end(self, state: TrainState, summary: EpochSummary) -> None:
        self.last = evaluate(self.model(), self.source, self.resolution, self.augmenter, self.batch_size,
                             self.autocast)
        self.history.append(self.last.accuracy)
        summary.values[f"{self.name}_accuracy"] = self.last.accuracy
        summary.values[f"{self.name}_loss"] = self.last.loss


__all__ = ["EvaluateEachEpoch", "Evaluation", "evaluate"]
