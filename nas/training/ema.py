"""Exponential moving average of the weights, as the official EfficientNet recipe keeps it.

After every step, every floating-point tensor of the model's state (weights and BatchNorm's
running statistics, as TF's ``get_ema_vars`` does) moves towards the trained one:
``ema = d * ema + (1 - d) * w``. The decay warms up as TF's ``ExponentialMovingAverage(num_updates)``:
``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates. That warm-up is what makes a short budget
work: after ``n`` steps the average spans roughly the last ``n / 9`` of them, so a 200-step proxy
averages its last ~25 steps instead of carrying its random initialization (which a plain 0.9999
would, for ~10,000 steps). The default ``--ema-decay 0.999`` caps the window at ~1,000 steps.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from nas.training.loop import Hook, TrainState


class WeightAverage(Hook):
    """The averaged copy of a model, updated after each training step; ``model`` is it (eval mode)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        averaged, trained, counters = [], [], []
        for (name, avg), live in zip(self.model.state_dict().items(), model.state_dict().values()):
            if avg.is_floating_point():
                averaged.append(avg)
                trained.append(live)
            else:
                counters.append((avg, live))
        if averaged:
            torch._foreach_lerp_(averaged, trained, weight)
        for avg, live in counters:
            avg.copy_(live)

    def step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        self.update(state.model)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["weights"])


__all__ = ["WeightAverage"]
