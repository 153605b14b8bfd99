"""Measuring a candidate, apart from training it: step time, memory, inference latency.

Step time and memory are :class:`~nas.training.loop.Hook` s that watch the training loop; latency
is measured on the trained model afterwards (:func:`inference_latency`). A budget too short to time
enough steps gets extra steps timed on a throwaway copy (:func:`extra_step_times`), so the trained
model and its accuracy are never touched by a measurement.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from nas.data.augment import Augmenter
from nas.data.sources import ImageSource
from nas.device import synchronize
from nas.timing import median_ms, rss_bytes, time_forward
from nas.training.budget import TrainBudget
from nas.training.loop import Hook, TrainState
from nas.training.optim import make_optimizer
from nas.training.schedules import StepSettings

WARMUP_STEPS_TIMED = 3  # train steps excluded from the step-time median (allocation, oneDNN, compile)
MIN_TIMED_STEPS = 5
CUDA_TIMED_STEPS = 20  # on CUDA only this window is synchronized and timed (a sync per step costs throughput)


class StepTimer(Hook):
    """Wall time of every training step (batch read, augmentation, forward, backward, update).

    Put it first in the hook list so that other hooks' work is not counted. On CUDA, steps are
    synchronized and timed only inside a window after the warm-up steps.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.window = range(WARMUP_STEPS_TIMED, WARMUP_STEPS_TIMED + CUDA_TIMED_STEPS)
        self.times: list[float] = []
        self.total_s = 0.0
        self._t0 = 0.0
        self._steps = 0

    def _in_window(self) -> bool:
        return self.cuda and self._steps in self.window

    def step_start(self, state: TrainState) -> None:
        if self._in_window():
            synchronize(self.device)
        self._t0 = time.perf_counter()

    def step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if self._in_window():
            synchronize(self.device)
        elapsed = time.perf_counter() - self._t0
        self.total_s += elapsed
        if not self.cuda or self._steps in self.window:
            self.times.append(elapsed)
        self._steps += 1

    @property
    def needed(self) -> int:
        """How many more timed steps the median needs."""
        return max(0, WARMUP_STEPS_TIMED + MIN_TIMED_STEPS - len(self.times))

    def median_ms(self) -> float | None:
        timed = self.times[WARMUP_STEPS_TIMED:]
        return median_ms(timed) if timed else None


class MemoryPeak(Hook):
    """Peak memory of training: CUDA's ``max_memory_allocated``; on the CPU the growth of the process's
    resident set size, sampled after every forward pass (an approximation; None where /proc is missing)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.rss0 = rss_bytes()
        self.rss_peak = self.rss0 or 0

    def after_forward(self, state: TrainState) -> None:
        if self.rss0 is not None and self.device.type != "cuda":
            self.rss_peak = max(self.rss_peak, rss_bytes() or 0)

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.rss0 is None:
            return None
        return max(self.rss_peak - self.rss0, 0) / 2**20


def inference_latency(model: nn.Module, resolution: int, in_chans: int, batch: int, device: torch.device,
                      channels_last: bool = True, autocast: bool = False) -> tuple[float, float]:
    """Median milliseconds of one inference pass at batch 1 and at batch ``batch``."""
    single = time_forward(model, 1, resolution, in_chans, device, channels_last=channels_last, autocast=autocast)
    batched = time_forward(model, batch, resolution, in_chans, device, warmup=1, repeats=5,
                           channels_last=channels_last, autocast=autocast)
    return single, batched


def extra_step_times(model: nn.Module, source: ImageSource, settings: StepSettings, augmenter: Augmenter,
                     budget: TrainBudget, device: torch.device, autocast: bool, count: int) -> list[float]:
    """Time ``count`` more train steps on a copy of the model, for budgets shorter than the timing needs.

    The copy and its throwaway optimizer and generator leave the trained model (and its reported
    accuracy) alone.
    """
    clone = copy.deepcopy(model).train()
    optimizer = make_optimizer(clone, budget)
    generator = torch.Generator(device=device).manual_seed(budget.seed + 2)
    batch = min(budget.batch_size, len(source))
    times = []
    for _ in range(count):
        index = torch.randint(0, len(source), (batch,), generator=generator, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        images, labels = source.batch(index, settings.resolution)
        x, targets = augmenter.train_batch(images, labels, settings.augment, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(clone(x).float(), targets, label_smoothing=budget.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


__all__ = ["CUDA_TIMED_STEPS", "MIN_TIMED_STEPS", "MemoryPeak", "StepTimer", "WARMUP_STEPS_TIMED",
           "extra_step_times", "inference_latency"]
