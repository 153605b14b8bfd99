"""The optimizer a :class:`~nas.training.budget.TrainBudget` names, over a model's trainable parameters."""

from __future__ import annotations

import torch
from torch import nn

from nas.training.budget import TrainBudget


def make_optimizer(model: nn.Module, budget: TrainBudget, lr: float | None = None) -> torch.optim.Optimizer:
    """The budget's optimizer over the trainable parameters; weight decay applies to conv / linear
    weights, not to norms and biases. Each group remembers its ``peak_lr`` (restored with the
    optimizer's state, so a resumed run follows the same schedule)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() > 1 else no_decay).append(param)
    peak = budget.learning_rate if lr is None else lr
    groups = [{"params": params, "weight_decay": wd, "peak_lr": peak}
              for params, wd in ((decay, budget.decay), (no_decay, 0.0)) if params]
    if budget.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=peak, momentum=0.9, nesterov=True, fused=True)
    if budget.optimizer == "rmsprop":
        # The EfficientNet recipe: decay 0.9, momentum 0.9, epsilon 1e-3 (TF puts epsilon inside the
        # square root, torch outside: close, not identical).
        return torch.optim.RMSprop(groups, lr=peak, alpha=0.9, momentum=0.9, eps=1e-3, foreach=True)
    return torch.optim.AdamW(groups, lr=peak, betas=(0.9, 0.999), fused=True)


__all__ = ["make_optimizer"]
