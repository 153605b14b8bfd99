"""Training: the search's proxy trainer and the full ``nas train``, on one loop.

The package keeps training one model apart from measuring it, and recipes apart from the loop:

=====================  =========================================================================
``budget.py``          :class:`TrainBudget` (how long and how), :func:`make_optimizer`
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
=====================  =========================================================================
"""

from nas.training.budget import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, TrainBudget, make_optimizer
from nas.training.candidate import EVALUATE_ON, train_candidate
from nas.training.config import TrainConfig
from nas.training.evaluate import Evaluation, evaluate
from nas.training.progressive import Progressive
from nas.training.run import TrainResult, train_model
from nas.training.schedules import bn_momentum_for, lr_factor, warmup_steps_for

__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "EVALUATE_ON", "Evaluation", "OPTIMIZERS", "Progressive",
           "TrainBudget", "TrainConfig", "TrainResult", "bn_momentum_for", "evaluate", "lr_factor", "make_optimizer",
           "train_candidate", "train_model", "warmup_steps_for"]
