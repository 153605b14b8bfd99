"""Training: the search's proxy trainer and the full ``nas train``, on one loop.

The package keeps training one model apart from measuring it, and recipes apart from the loop:

=====================  =========================================================================
``budget.py``          :class:`TrainBudget` (how long and how): plain data, no torch
``optim.py``           :func:`make_optimizer`: the optimizer a budget names
``schedules.py``       learning-rate warm-up and cosine, BatchNorm momentum, per-step settings
``loop.py``            :func:`fit`: the training steps of one model, with :class:`Hook` s
``setup.py``           :func:`prepare`: model, optimizer, data sources and step plan from a spec
``evaluate.py``        :func:`evaluate` over a split; the per-epoch evaluation hook
``measure.py``         step time, memory (hooks) and inference latency
``ema.py``             the exponential moving average of the weights (a hook)
``candidate.py``       :func:`train_candidate`: the search's entry point, returns Metrics
``progressive.py``     progressive learning (EfficientNetV2) as a per-step schedule
``fixres.py``          evaluation at several resolutions, classifier + BatchNorm fine-tuning
``transfer.py``        initialization from a trained model.pt (new head, adapted stem, freezing)
``resume.py``          the resumable training state (last.pt), RNG states included
``outputs.py``         the output folder of ``nas train`` and what protects it
``history.py``         history.csv and curves.png
``config.py``          :class:`TrainConfig`: the budget plus data, recipes and test settings
``parts.py``           the classifier, stem and BatchNorm layers of a built network
``progress.py``        the progress bar and epoch lines
``run.py``             :func:`train_model`: ``nas train`` (checkpoints, resume, recipes, outputs)
``trained.py``         :func:`read_trained`: a finished ``nas train`` folder (one seed or seed-K folders)
``seeds.py``           :func:`train_seeds`: ``nas train --seeds N`` and its ``summary.json``
=====================  =========================================================================

The package imports its modules when a name is first asked for (``from nas.training import
train_model``), so ``from nas.training.budget import TrainBudget`` stays free of torch: budgets
travel in jobs, run files and the engine's plans, none of which needs torch to be read. (The
function :func:`~nas.training.evaluate.evaluate` is imported from its module: the package's name
``evaluate`` is that module.)
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module of this package that defines it
_EXPORTS = {
    "DEFAULT_LR": "budget", "DEFAULT_WEIGHT_DECAY": "budget", "OPTIMIZERS": "budget", "TrainBudget": "budget",
    "make_optimizer": "optim", "EVALUATE_ON": "candidate", "train_candidate": "candidate",
    "TrainConfig": "config", "Evaluation": "evaluate", "Progressive": "progressive",
    "TrainResult": "run", "train_model": "run", "bn_momentum_for": "schedules", "lr_factor": "schedules",
    "warmup_steps_for": "schedules", "read_trained": "trained", "train_seeds": "seeds",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nas.training.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
