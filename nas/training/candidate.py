"""The search's proxy trainer: brief, fast, reproducible training of one candidate, then its measurements.

:func:`train_candidate` is the one place where a search's spec meets data. Everything a search ranks
on comes out of it as :class:`~nas.metrics.Metrics`: minival accuracy and loss after a short budget,
counted cost (params, multiply-adds at the proxy and at the spec's own resolution), median train
step time, inference latency at batch 1 and at the training batch size, peak memory.

It composes the pieces of this package: :func:`~nas.training.setup.prepare` builds the model and
plan, :func:`~nas.training.loop.fit` trains it with hooks that time the steps, sample memory and
evaluate minival after each epoch, and :mod:`~nas.training.measure` times inference at the end.

Why it is fast on a CPU: the images live on the device as uint8, resized once to the proxy
resolution; a batch is one index into that tensor plus a few fused tensor ops (no DataLoader, no
per-sample Python); the model runs channels_last; evaluation runs under ``torch.inference_mode``;
the optimizer uses its fused/foreach kernels. On CUDA it adds bf16 autocast. ``budget.compile``
wraps the training forward in ``torch.compile``.

Why it is reproducible: see :mod:`nas.training.setup`; two runs on the CPU give bit-identical
metrics (timings aside). Thread counts are the caller's business (``torch.set_num_threads`` is global).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import torch

from nas.counting import count
from nas.data.base import Dataset
from nas.device import resolve_device
from nas.errors import ConfigError
from nas.metrics import Metrics, pack_correct
from nas.spec import ArchSpec
from nas.training.budget import TrainBudget
from nas.training.evaluate import EvaluateEachEpoch, evaluate
from nas.training.loop import EpochSummary, Hook, StopTraining, TrainState, fit
from nas.training.measure import MemoryPeak, StepTimer, extra_step_times, inference_latency
from nas.training.schedules import EpochSchedule, epoch_settings
from nas.training.resume import captured, restore_train_state, state_from_bytes, state_to_bytes
from nas.training.scores import TrainLossTail, bn_accuracy
from nas.training.setup import prepare, seeded_global_rng

EVALUATE_ON = ("minival", "test")
EpochCallback = Callable[[int, float], Any]
Schedule = EpochSchedule  # the name train_candidate's callers know


class EpochCallbackHook(Hook):
    """Calls ``on_epoch(epoch, minival accuracy)`` after each whole epoch; a truthy answer prunes."""

    def __init__(self, on_epoch: EpochCallback) -> None:
        self.on_epoch = on_epoch

    def epoch_end(self, state: TrainState, summary: EpochSummary) -> None:
        if summary.complete and self.on_epoch(summary.epoch, summary.values["minival_accuracy"]):
            raise StopTraining("pruned", f"stopped by the scheduler after epoch {summary.epoch}")


def _check_args(spec: Any, data: Any, budget: Any, evaluate_on: str) -> None:
    if not isinstance(spec, ArchSpec):
        raise ConfigError(f"train_candidate: spec must be an ArchSpec, got {type(spec).__name__}")
    if not isinstance(data, Dataset):
        raise ConfigError(f"train_candidate: data must be a nas.data.Dataset, got {type(data).__name__}")
    if not isinstance(budget, TrainBudget):
        raise ConfigError(f"train_candidate: budget must be a TrainBudget, got {type(budget).__name__}")
    if evaluate_on not in EVALUATE_ON:
        raise ConfigError(f"train_candidate: evaluate_on must be one of {', '.join(EVALUATE_ON)}, got {evaluate_on!r}",
                          field="evaluate_on")


def train_candidate(spec: ArchSpec, data: Dataset, budget: TrainBudget | None = None,
                    device: torch.device | str = "cpu", on_epoch: EpochCallback | None = None, *,
                    evaluate_on: str = "minival", schedule: Schedule | None = None,
                    resume_state: bytes | None = None, keep_state: bool = False) -> Metrics:
    """Train ``spec`` briefly on ``data`` and measure it; never raises for a model or training failure.

    ``spec`` is trained with the dataset's classes and channels (``spec.with_(num_classes=...,
    in_chans=...)``) at ``budget.resolution`` (default: ``spec.resolution``); ``macs`` counts that
    network at ``spec.resolution`` and ``proxy_macs`` at the training resolution.

    ``on_epoch(epoch, accuracy)`` is called after each completed epoch (1, 2, ...) with that epoch's
    minival top-1 accuracy; if it returns a truthy value the candidate stops at once with status
    ``pruned``, keeping what was measured so far (accuracy and loss of that epoch, history, step
    time; no latency). An exception raised by the callback ends the candidate as ``failed``.

    Status ``diverged``: the training loss became NaN or inf (checked every step on the CPU, every
    8 steps on CUDA); ``failed``: any exception during building or training, with its message.
    Both keep ``params`` / ``macs`` and the history so far; ``accuracy`` is None for them.

    ``evaluate_on="test"`` reports the final ``accuracy`` / ``loss`` on the dataset's test split
    (read on request; ``history`` and ``on_epoch`` stay on minival). A search never asks for it.

    ``schedule(epoch) -> {"magnitude": m, "mixup_alpha": a, "cutmix_alpha": c, "resolution": r}`` (any
    subset) is a per-epoch recipe hook: called at the start of each epoch (0-based), it overrides the
    budget's augmentation strength and training resolution for that epoch; evaluation stays at the
    budget's resolution.

    Timings: ``step_time_ms`` is the median of the training steps after the first
    :data:`~nas.training.measure.WARMUP_STEPS_TIMED` (at least ``MIN_TIMED_STEPS`` steps; a budget
    too short for that gets extra steps timed on a throwaway copy of the model); ``latency_ms`` /
    ``latency_batch_ms`` are medians of inference passes at batch 1 / ``batch_size``.
    ``peak_memory_mb``: see :class:`~nas.training.measure.MemoryPeak`.

    Rungs (successive halving): ``keep_state`` returns the training state at the end in
    ``Metrics.checkpoint`` (bytes; when the training stopped at an epoch boundary), and
    ``resume_state`` continues such a state to this budget's stop: the same budget with a later
    ``epochs`` and the same ``schedule_epochs``. The result is the one an uninterrupted training to
    that stop gives, bit for bit on the CPU (the generators are part of the state); ``history`` and
    the ``train_loss`` score include the steps before, timings are this job's own. A state of
    another network is a failed candidate.

    Bad arguments (not an ArchSpec / Dataset / TrainBudget, unknown ``evaluate_on``, bad device
    name) raise :class:`~nas.errors.ConfigError`.
    """
    budget = TrainBudget() if budget is None else budget
    _check_args(spec, data, budget, evaluate_on)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    start = time.perf_counter()
    known: dict[str, Any] = {}
    timer, memory, minival, session = StepTimer(device), MemoryPeak(device), None, None
    try:
        spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
        resolution = budget.resolution or spec.resolution
        known = {"params": count(spec).params, "macs": count(spec).macs, "proxy_macs": count(spec, resolution).macs}
        settings = None if schedule is None else (lambda base, spe, total: epoch_settings(schedule, base, spe))
        with seeded_global_rng(budget.seed, device):
            session = prepare(spec, data, budget, device, settings)
            earlier: dict[str, Any] = {}
            if resume_state is not None:
                earlier = state_from_bytes(resume_state)
                restore_train_state(earlier, session.state, None, device, path="the rung checkpoint")
            minival = EvaluateEachEpoch("minival", lambda: session.model, session.minival, session.resolution,
                                        session.augmenter, budget.eval_batch_size, session.plan.autocast)
            minival.history = [float(a) for a in earlier.get("history", [])]
            tail = TrainLossTail(session.plan.end_step, earlier.get("losses"))
            hooks: list[Hook] = [timer, memory, minival, tail]
            if on_epoch is not None:
                hooks.append(EpochCallbackHook(on_epoch))
            fit(session.state, session.train, session.plan, session.augmenter, hooks)
            kept = None  # captured before anything else runs, so that the generators are the training's
            if keep_state and session.state.step % session.plan.steps_per_epoch == 0:
                kept = state_to_bytes({**captured(session.state, None, device), "history": list(minival.history),
                                       "losses": tail.pairs()})
            metrics = _measured(session, data, evaluate_on, timer, memory, minival, tail, known, start)
            return metrics if kept is None else replace(metrics, checkpoint=kept)
    except StopTraining as stop:
        return _partial(stop.status, stop.error, known, session, timer, memory, minival, start)
    except Exception as exc:  # noqa: BLE001 - a broken candidate must never stop a search
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return _partial("failed", message[:2000], known, session, timer, memory, minival, start)


def _measured(session: Any, data: Dataset, evaluate_on: str, timer: StepTimer, memory: MemoryPeak,
              minival: EvaluateEachEpoch, tail: TrainLossTail, known: dict[str, Any], start: float) -> Metrics:
    budget, device, model = session.budget, session.device, session.model
    if timer.needed:
        timer.times += extra_step_times(model, session.train, session.base, session.augmenter, budget, device,
                                        session.plan.autocast, timer.needed)
    final = minival.last
    scores = _scores(session, final, tail)
    if evaluate_on == "test":
        final = evaluate(model, data.source("test", device), session.resolution, session.augmenter,
                         budget.eval_batch_size, session.plan.autocast)
    latency, latency_batch = inference_latency(model, session.resolution, session.spec.in_chans,
                                               session.plan.batch_size, device, budget.channels_last,
                                               session.plan.autocast)
    return Metrics(status="ok", accuracy=final.accuracy, loss=final.loss, step_time_ms=timer.median_ms(),
                   latency_ms=latency, latency_batch_ms=latency_batch, wall_time_s=time.perf_counter() - start,
                   train_time_s=timer.total_s, epochs=round(session.plan.epochs_done(session.state.step), 4),
                   peak_memory_mb=memory.peak_mb(), history=tuple(minival.history),
                   minival_size=int(final.correct.numel()), correct=pack_correct(final.correct), scores=scores,
                   **known)


def _scores(session: Any, final: Any, tail: TrainLossTail) -> dict[str, float]:
    """Every score of :data:`nas.metrics.SCORES` the finished training gives (see nas.training.scores)."""
    scores = {"accuracy": final.accuracy, "minival_loss": final.loss}
    train_loss = tail.value()
    if train_loss is not None:
        scores["train_loss"] = train_loss
    again = bn_accuracy(session.model, session.train, session.minival, session.resolution, session.augmenter,
                        session.budget.eval_batch_size, session.plan.autocast)
    scores["bn_accuracy"] = final.accuracy if again is None else again
    return scores


def _partial(status: str, error: str, known: dict[str, Any], session: Any, timer: StepTimer, memory: MemoryPeak,
             minival: EvaluateEachEpoch | None, start: float) -> Metrics:
    """A candidate that did not finish: what was measured so far (accuracy only when pruned)."""
    last = minival.last if minival is not None and status == "pruned" else None
    if last is not None:
        known = {**known, "minival_size": int(last.correct.numel()), "correct": pack_correct(last.correct)}
    epochs = session.plan.epochs_done(session.state.step) if session is not None else 0.0
    return Metrics(status=status, error=error, accuracy=last.accuracy if last else None,
                   loss=last.loss if last else None, step_time_ms=timer.median_ms(),
                   wall_time_s=time.perf_counter() - start, train_time_s=timer.total_s, epochs=round(epochs, 4),
                   peak_memory_mb=memory.peak_mb(), history=tuple(minival.history) if minival else (), **known)


__all__ = ["EVALUATE_ON", "EpochCallback", "EpochCallbackHook", "Schedule", "train_candidate"]
