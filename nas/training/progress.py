"""What a person watching ``nas train`` sees: a progress bar per epoch and one line per finished epoch.

The bar (rich) is drawn only on a terminal; the epoch lines are always printed, so a log file gets
one line per epoch and no control characters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nas.training.loop import EpochSummary, Hook, LoopPlan, TrainState
from nas.training.schedules import StepSettings

LOSS_EVERY = 10  # steps between loss updates of the bar (reading the loss synchronizes a GPU)


class ProgressBar(Hook):
    """Progress of one :func:`~nas.training.loop.fit`; ``label`` names the phase (train, fine-tune)."""

    def __init__(self, plan: LoopPlan, console: Console | None = None, label: str = "epoch") -> None:
        self.plan = plan
        self.console = console or Console(stderr=True)
        self.label = label
        self.epochs = math.ceil(plan.total_steps / plan.steps_per_epoch)
        self.progress: Progress | None = None
        self.task: Any = None

    def epoch_start(self, state: TrainState, epoch: int, settings: StepSettings) -> None:
        steps = min(self.plan.steps_per_epoch, self.plan.total_steps - state.step)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True, disable=not self.console.is_terminal)
        self.progress.start()
        self.task = self.progress.add_task(f"{self.label} {epoch + 1}/{self.epochs} at {settings.resolution} px",
                                           total=steps, loss="-")

    def step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if self.progress is None:
            return
        fields = {"loss": f"{float(loss.detach()):.4f}"} if state.step % LOSS_EVERY == 0 else {}
        self.progress.update(self.task, advance=1, **fields)

    def epoch_end(self, state: TrainState, summary: EpochSummary) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        parts = [f"{self.label} {summary.epoch}/{self.epochs}", f"loss {summary.train_loss:.4f}"]
        for key, value in summary.values.items():
            if key.endswith("accuracy"):
                parts.append(f"{key.replace('_accuracy', '')} {value:.4f}")
        aug = summary.settings.augment
        parts.append(f"{summary.settings.resolution} px")
        if aug.magnitude or aug.mixup_alpha or aug.cutmix_alpha:
            parts.append(f"magnitude {aug.magnitude:g} mixup {aug.mixup_alpha:g} cutmix {aug.cutmix_alpha:g}")
        parts.append(f"lr {summary.lr:.3g}")
        parts.append(f"{summary.seconds:.1f} s")
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)


__all__ = ["ProgressBar"]
