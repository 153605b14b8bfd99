"""``nas train``: a spec trained into a model on disk, resumable, with its recipes and learning curves.

:func:`train_model` is the same loop as the search's proxy trainer (:func:`~nas.training.setup.prepare`,
:func:`~nas.training.loop.fit`) with more hooks and recipes around it:

1. everything that can be wrong is checked before anything is written: the spec, the data, the
   flags, the ``init`` checkpoint and whether it fits, the output folder (a folder that already
   holds a training is never overwritten; ``resume`` needs its ``last.pt``);
2. the training loop runs with hooks that time it, keep the moving average of the weights (EMA),
   evaluate the raw and the averaged weights on minival (and test) after every epoch, append a
   row to ``history.csv`` and write ``last.pt`` atomically (see :mod:`nas.training.resume`);
3. after the last epoch: FixRes evaluation at ``test_resolutions``, the optional fine-tuning at
   ``finetune_at``, the final measurements, then ``model.pt`` (:mod:`nas.checkpoint`),
   ``history.csv`` and ``curves.png``.

Output folder:

=============== ===========================================================================
``model.pt``    weights (raw and EMA), spec (its resolution: the one the weights were last
                trained at, the fine-tuning size after ``finetune_at``), configuration with the
                normalization constants and class names, final metrics (with the per-image
                correctness of each weight set on minival and test)
``last.pt``     the resumable state after the last completed epoch
``history.csv`` one row per epoch (:mod:`nas.training.history`)
``curves.png``  loss, accuracy and schedule against the epoch
=============== ===========================================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from nas.api import load_spec
from nas.checkpoint import load_model_checkpoint, save_model_checkpoint
from nas.counting import count
from nas.data import load_dataset
from nas.data.base import Dataset
from nas.data.sources import ImageSource
from nas.device import resolve_device
from nas.errors import ConfigError, StorageError
from nas.folder_lock import FolderLock
from nas.metrics import Metrics, pack_correct
from nas.spec import ArchSpec
from nas.training.config import TrainConfig
from nas.training.ema import WeightAverage
from nas.training.evaluate import EvaluateEachEpoch, evaluate
from nas.training.fixres import evaluate_at, finetune_at, finetune_plan
from nas.training.history import history_row, plot_curves, write_history
from nas.training.loop import EpochSummary, Hook, TrainState, default_train_mode, fit
from nas.training.measure import MemoryPeak, StepTimer, extra_step_times, inference_latency
from nas.training.outputs import CURVES_FILE, HISTORY_FILE, MODEL_FILE, STATE_FILE, RunFolder, stored_config
from nas.training.progress import ProgressBar
from nas.training.resume import restore_train_state, save_train_state
from nas.training.setup import Session, prepare, seeded_global_rng
from nas.training.transfer import freeze_backbone, frozen_train_mode, load_checkpoint_for_init, load_pretrained

CURVES_EVERY_S = 30.0  # redraw curves.png during training at most this often (and always at the end)


@dataclass
class TrainResult:
    """A finished training. ``metrics`` describe the raw weights at ``spec.resolution`` on minival
    (with step time, latency, memory); ``results`` hold the rest: ``raw`` / ``ema`` accuracies at
    the training resolution (minival and test), ``resolutions`` and ``best_resolution`` (FixRes),
    ``finetune``, ``transfer``."""

    spec: ArchSpec
    metrics: Metrics
    results: dict[str, Any]
    history: list[dict[str, Any]]
    out: Path | None = None
    resumed_at_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "metrics": self.metrics.to_dict(), "results": self.results,
                "out": str(self.out) if self.out else None, "resumed_at_step": self.resumed_at_step}


class _Recorder(Hook):
    """After each epoch: the history row, history.csv, last.pt and (now and then) curves.png."""

    def __init__(self, run: "_Run") -> None:
        self.run = run
        self.last_plot = time.perf_counter()

    def epoch_end(self, state: TrainState, summary: EpochSummary) -> None:
        run = self.run
        run.history.append(history_row(summary))
        if run.folder is None:
            return
        run.save_state("training")  # first: history.csv never shows an epoch that last.pt lacks
        write_history(run.folder.file(HISTORY_FILE), run.history)
        if time.perf_counter() - self.last_plot > CURVES_EVERY_S:
            run.plot()
            self.last_plot = time.perf_counter()


@dataclass
class _Run:
    """The pieces of one train_model call that hooks and the final phase share."""

    spec: ArchSpec
    config: TrainConfig
    data: Dataset
    session: Session
    ema: WeightAverage | None
    folder: RunFolder | None
    timer: StepTimer
    prior_train_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    transfer: dict[str, str] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    _test: ImageSource | None = None

    def test_source(self) -> ImageSource:
        """The test split, read once."""
        if self._test is None:
            self._test = self.data.source("test", self.session.device)
        return self._test

    def models(self) -> dict[str, nn.Module]:
        """The weight sets carried through evaluation, FixRes and saving."""
        return {"raw": self.session.model, **({"ema": self.ema.model} if self.ema is not None else {})}

    def stored_config(self) -> dict[str, Any]:
        data = self.data
        return {"flat": self.config.flat(), "dataset": data.name, "classes": list(data.classes),
                "num_classes": data.num_classes, "in_chans": data.in_chans,
                "normalization": {"mean": list(data.mean), "std": list(data.std)},
                "train_resolution": self.session.resolution, "steps": self.session.plan.total_steps,
                "steps_per_epoch": self.session.plan.steps_per_epoch, "transfer": self.transfer}

    def save_state(self, phase: str) -> None:
        save_train_state(self.folder.file(STATE_FILE), spec=self.spec.to_dict(), config=self.stored_config(),
                         state=self.session.state, ema=self.ema, history=self.history, device=self.session.device,
                         train_time_s=self.prior_train_s + self.timer.total_s, phase=phase)

    def plot(self) -> None:
        if self.history:
            plot_curves(self.folder.file(CURVES_FILE), self.history,
                        title=f"{self.spec.name or 'model'} on {self.data.name}")


def train_model(spec: Any, config: TrainConfig | None = None, out: str | Path | None = None, *, resume: bool = False,
                device: str | torch.device = "auto", data: Dataset | None = None, progress: bool = False,
                console: Console | None = None) -> TrainResult:
    """Train ``spec`` (anything :func:`nas.api.load_spec` takes) as ``config`` says, writing to ``out``.

    ``resume`` continues the training whose ``last.pt`` is in ``out`` (its spec and configuration
    must be those given; a finished training is returned as it is). ``data`` overrides loading
    ``config.dataset``. ``progress`` draws a progress bar per epoch and prints a line per epoch on
    ``console`` (default: stderr). Raises :class:`~nas.errors.NasError` subclasses for bad input.
    ``out`` is written by one process at a time (:mod:`nas.folder_lock`).
    """
    if out is None:
        return _train(spec, config, None, resume, device, data, progress, console)
    folder = RunFolder(Path(out))
    folder.refuse_a_file()
    lock = FolderLock.take(folder.path)  # one process per folder, before anything is read or written
    try:
        return _train(spec, config, folder, resume, device, data, progress, console)
    finally:
        lock.release()


def _train(spec: Any, config: TrainConfig | None, folder: RunFolder | None, resume: bool, device: str | torch.device,
           data: Dataset | None, progress: bool, console: Console | None) -> TrainResult:
    start = time.perf_counter()
    config = config or TrainConfig()
    budget = config.budget
    device = resolve_device(device)
    spec = config.scaled(load_spec(spec))
    if resume and folder is None:
        raise StorageError("resume needs out (the folder holding last.pt)", field="resume")
    stored = folder.check(resume) if folder is not None else None
    data = data if data is not None else load_dataset(config.dataset, config.data_dir, seed=budget.seed)
    spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
    if stored is not None:
        _check_resumable(stored, spec, config, folder.file(STATE_FILE))
        if stored["phase"] == "done":
            return _finished(folder, stored)
    checkpoint = load_checkpoint_for_init(config.init) if config.init and stored is None else None
    if config.progressive is not None:
        config.progressive.check(budget.resolution or spec.resolution, budget.magnitude)
    console = console or Console(stderr=True)
    transfer: dict[str, str] = {}

    def init(model: nn.Module) -> None:
        if checkpoint is not None:
            transfer.update(load_pretrained(model, checkpoint), init=str(config.init))
        if config.freeze == "backbone":
            freeze_backbone(model)

    settings = None
    if config.progressive is not None:
        settings = lambda base, steps_per_epoch, total: config.progressive.settings(base, total)  # noqa: E731
    with seeded_global_rng(budget.seed, device):
        session = prepare(spec, data, budget, device, settings, init=init,
                          train_mode=frozen_train_mode if config.freeze == "backbone" else default_train_mode)
        ema = WeightAverage(session.model, budget.ema_decay) if budget.ema_decay > 0 else None
        run = _Run(spec=session.spec, config=config, data=data, session=session, ema=ema, folder=folder,
                   timer=StepTimer(device), transfer=transfer, start=start)
        if stored is not None:
            restore_train_state(stored, session.state, ema, device, folder.file(STATE_FILE))
            run.history = list(stored["history"])
            run.prior_train_s = float(stored.get("train_time_s", 0.0))
            run.transfer = dict(stored["config"].get("transfer") or {})
        if folder is not None:
            folder.create()
        resumed_at = session.state.step
        memory = MemoryPeak(device)
        fit(session.state, session.train, session.plan, session.augmenter,
            _hooks(run, memory, progress, console))
        return _finish(run, memory, resumed_at, progress, console)


def _check_resumable(stored: dict[str, Any], spec: ArchSpec, config: TrainConfig, path: Path) -> None:
    try:
        stored_spec = ArchSpec.from_dict(stored["spec"])
        stored_config = TrainConfig.from_flat(stored["config"]["flat"])
    except Exception as exc:  # noqa: BLE001 - whatever is wrong inside, the file is unusable
        raise StorageError(f"{path}: unreadable training state ({exc})") from None
    difference = stored_config.first_difference(config)  # first: a setting (resolution_scale) may change the spec
    if difference is not None:
        name, was, now = difference
        raise ConfigError(f"{name} is {now!r} here but {was!r} in {path}; a resumed training keeps its settings",
                          field=name)
    if stored_spec.key() != spec.key():
        raise StorageError(f"{path}: written for another architecture ({stored_spec.name or stored_spec.key()}); "
                           "resume with the spec it was started with", field="spec")


def _hooks(run: _Run, memory: MemoryPeak, progress: bool, console: Console) -> list[Hook]:
    session, budget = run.session, run.config.budget
    evaluators: list[Hook] = []
    sources = [("minival", session.minival)]
    if run.config.test:
        sources.append(("test", run.test_source()))
    for split, source in sources:
        for name, model in run.models().items():
            prefix = split if name == "raw" else f"ema_{split}"
            evaluators.append(EvaluateEachEpoch(prefix, lambda m=model: m, source, session.resolution,
                                                session.augmenter, budget.eval_batch_size, session.plan.autocast))
    hooks: list[Hook] = [run.timer, memory, *([run.ema] if run.ema is not None else []), *evaluators, _Recorder(run)]
    if progress:
        hooks.append(ProgressBar(session.plan, console))
    return hooks


def _evaluations(run: _Run, resolution: int) -> dict[str, Any]:
    """Minival (and test) accuracy, loss and per-image correctness of every weight set at ``resolution``.

    ``<split>_correct`` is :func:`~nas.metrics.pack_correct`'s bitmap of the ``<split>_images``
    images in split order: two models trained on the same data are compared image by image with it
    (``nas compare``: exact McNemar on the test split)."""
    session, budget = run.session, run.config.budget
    splits = {"minival": session.minival}
    if run.config.test:
        splits["test"] = run.test_source()
    out: dict[str, Any] = {}
    for name, model in run.models().items():
        for split, source in splits.items():
            result = evaluate(model, source, resolution, session.augmenter, budget.eval_batch_size,
                              session.plan.autocast)
            out.setdefault(name, {})[f"{split}_accuracy"] = result.accuracy
            out[name][f"{split}_loss"] = result.loss
            out[name][f"{split}_images"] = int(result.correct.numel())
            out[name][f"{split}_correct"] = pack_correct(result.correct)
    return out


def _fixres(run: _Run) -> dict[str, Any]:
    session, budget = run.session, run.config.budget
    rows = []
    for name, model in run.models().items():
        for r, result in evaluate_at(model, session.minival, run.config.test_resolutions, session.augmenter,
                                     budget.eval_batch_size, session.plan.autocast).items():
            rows.append({"weights": name, "resolution": r, "minival_accuracy": result.accuracy,
                         "minival_loss": result.loss})
    if run.config.test:
        test = run.test_source()
        for row in rows:
            model = run.models()[row["weights"]]
            row["test_accuracy"] = evaluate(model, test, row["resolution"], session.augmenter,
                                            budget.eval_batch_size, session.plan.autocast).accuracy
    best = {name: max((r for r in rows if r["weights"] == name), key=lambda r: r["minival_accuracy"])
            for name in run.models()}
    return {"resolutions": rows, "best_resolution": {name: row["resolution"] for name, row in best.items()}}


def _finetune(run: _Run, progress: bool, console: Console) -> dict[str, Any]:
    session, config = run.session, run.config
    resolution, epochs = config.finetune_at, config.finetune_epochs
    before = _evaluations(run, resolution)
    for name, model in run.models().items():
        hooks: list[Hook] = []
        if progress:
            hooks.append(ProgressBar(finetune_plan(len(session.train), epochs, config.budget), console,
                                     label=f"fine-tune {name}"))
        finetune_at(model, session.train, resolution, epochs, config.budget, session.augmenter, hooks)
    return {"resolution": resolution, "epochs": epochs, "before": before, "after": _evaluations(run, resolution)}


def _finish(run: _Run, memory: MemoryPeak, resumed_at: int, progress: bool, console: Console) -> TrainResult:
    session, config, budget = run.session, run.config, run.config.budget
    results: dict[str, Any] = {"train_resolution": session.resolution, **_evaluations(run, session.resolution)}
    if run.transfer:
        results["transfer"] = run.transfer
    if config.test_resolutions:
        results.update(_fixres(run))
    final_resolution = session.resolution
    if config.finetune_at is not None:
        results["finetune"] = _finetune(run, progress, console)
        final_resolution = config.finetune_at
    model = session.model
    if run.timer.needed:
        run.timer.times += extra_step_times(model, session.train, session.base, session.augmenter, budget,
                                            session.device, session.plan.autocast, run.timer.needed)
    final = evaluate(model, session.minival, final_resolution, session.augmenter, budget.eval_batch_size,
                     session.plan.autocast)
    latency, latency_batch = inference_latency(model, final_resolution, run.spec.in_chans, session.plan.batch_size,
                                               session.device, budget.channels_last, session.plan.autocast)

    saved = run.spec.with_(resolution=final_resolution)
    cost = count(saved)
    metrics = Metrics(status="ok", accuracy=final.accuracy, loss=final.loss, params=cost.params, macs=cost.macs,
                      proxy_macs=count(saved, session.resolution).macs, step_time_ms=run.timer.median_ms(),
                      latency_ms=latency, latency_batch_ms=latency_batch, wall_time_s=time.perf_counter() - run.start,
                      train_time_s=run.prior_train_s + run.timer.total_s,
                      epochs=round(session.plan.epochs_done(session.state.step), 4), peak_memory_mb=memory.peak_mb(),
                      history=tuple(row["minival_accuracy"] for row in run.history),
                      minival_size=int(final.correct.numel()), correct=pack_correct(final.correct))
    if run.folder is not None:
        folder = run.folder
        save_model_checkpoint(folder.file(MODEL_FILE), saved, model.state_dict(), config=run.stored_config(),
                              metrics={**metrics.to_dict(), **results},
                              ema_state_dict=run.ema.model.state_dict() if run.ema is not None else None)
        write_history(folder.file(HISTORY_FILE), run.history)
        run.plot()
        run.save_state("done")
    return TrainResult(spec=saved, metrics=metrics, results=results, history=run.history,
                       out=run.folder.path if run.folder else None, resumed_at_step=resumed_at)


def _finished(folder: RunFolder, stored: dict[str, Any]) -> TrainResult:
    """A training that already ended: its results from model.pt, nothing retrained."""
    checkpoint = load_model_checkpoint(folder.file(MODEL_FILE))
    stored_metrics = dict(checkpoint.metrics)
    metrics = Metrics.from_dict(stored_metrics)
    results = {k: v for k, v in stored_metrics.items() if k not in metrics.to_dict()}
    return TrainResult(spec=checkpoint.spec, metrics=metrics, results=results, history=list(stored["history"]),
                       out=folder.path, resumed_at_step=int(stored["step"]))


__all__ = ["TrainResult", "stored_config", "train_model"]
