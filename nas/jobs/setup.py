"""The one set-up every job stands on: its settings, their checks, the run folder, the engine.

A job (a search, a compound-scaling grid) is one or more stages of :class:`nas.engine.Engine` on one
run store. What they share is written here once:

* :class:`JobSettings`, the settings every job has (the reward, the data, the proxy training, where
  it runs), which each job's config extends; ``run.json`` holds them by name;
* :func:`build_parts`: every name and number checked, and the objective, data, budget and runner
  built, *before* anything is written, so a bad setting leaves no run folder behind;
* :class:`Job`: opening a new run or resuming one (which settings a resume may change), measuring the
  objective's references where the candidates train, and making the engine;
* the higher-fidelity rule (:func:`higher_fidelity`) and the points a stage still has to train
  (:func:`points_not_held`).
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from nas.controllers.sequence import SequenceController
from nas.data.ref import DatasetRef, cached_dataset, dataset_ref
from nas.decisions import Decision
from nas.device import resolve_device
from nas.engine import Engine, Plan, Stage
from nas.errors import ConfigError, StorageError
from nas.limits import MAX_EPOCHS, check_at_most, check_seed
from nas.metrics import DEFAULT_SCORE, SCORES, STORED_WITHOUT_SCORE
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord
from nas.training.budget import TrainBudget
from objectives import Objective, objective_from_settings
from runners import runner_factory
from search_spaces import ProxyConfig

REFERENCE_STAGE = "reference"
REFERENCE_STEPS = 12  # steps the reference network trains for its step time (the v2 reward's S_ref)
HIGHER_FIDELITY_EPOCHS = 2  # a higher fidelity trains this many times the search's epochs unless told


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class JobSettings:
    """What every job is set with; each job's config adds its own fields (``run.json`` stores them all).

    The reward (``objective``, ``cost``, ``target``, ``w``, ``v``, the v2 references, measured when
    None, and ``score``, its quality term), the data (``dataset``, ``data_dir``, ``data_cache``, ``rebuild_cache``), the proxy training
    (``epochs``, ``batch_size``, ``proxy_width`` / ``proxy_depth`` / ``proxy_resolution``, ``seed``) and
    where it runs (``runner``, ``runner_options``, ``device``).
    """

    objective: str = "mnas"
    cost: str = "macs"
    target: str | None = None
    w: float | None = None
    v: float | None = None
    step_time_ref_ms: float | None = None
    params_ref: float | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    train_subset: int | None = None  # train on this many training images (seeded, stratified; minival unchanged)
    epochs: float | None = None  # None = the trainer's default budget
    batch_size: int | None = None
    proxy_width: float = 0.5
    proxy_depth: float = 0.5
    proxy_resolution: int = 32
    runner: str = "local"
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    data_cache: str | None = None  # folder of the data cache (memory-mapped files at the proxy resolution)
    rebuild_cache: bool = False  # rebuild a data cache of another dataset, resolution or source
    score: str = DEFAULT_SCORE  # the reward's quality term: a name of nas.metrics.SCORES

    def __post_init__(self) -> None:
        if self.epochs is not None and not (_finite(self.epochs) and self.epochs > 0):
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}", field="epochs")
        check_at_most(self.epochs, MAX_EPOCHS, "epochs")
        if self.batch_size is not None and not (is_int(self.batch_size) and self.batch_size > 0):
            raise ConfigError(f"batch_size must be an integer > 0, got {self.batch_size!r}", field="batch_size")
        check_seed(self.seed)
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; valid: {', '.join(SCORES)}", field="score")
        self.proxy  # noqa: B018 - checks the proxy's width, depth and resolution now, naming the setting

    @property
    def reward_constraint(self) -> str:
        """The mnas reward's constraint (soft, unless a job lets the user choose)."""
        return "soft"

    @property
    def proxy(self) -> ProxyConfig:
        """How candidates shrink to train (the target resolution, where a job has one, counts their cost)."""
        return ProxyConfig(width=self.proxy_width, depth=self.proxy_depth, resolution=self.proxy_resolution,
                           target_resolution=getattr(self, "target_resolution", None))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, value in data.items():
            if isinstance(getattr(self, name), Mapping):
                data[name] = dict(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """From a stored ``run.json``, ignoring keys the settings do not know (kind, storage, owner...)."""
        known = {f.name for f in fields(cls)}
        return cls(**{"score": STORED_WITHOUT_SCORE, **{k: v for k, v in data.items() if k in known}})


def _plain(value: Any) -> Any:
    """A setting as run.json stores it (tuples as lists, mappings as dicts), to compare given with stored."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_device(device: str, runner: str) -> None:
    """Refuse a device that cannot work before anything is written.

    With the local runner the device must exist here. With Ray it must exist on the workers, which
    may have GPUs the driver lacks, so only its spelling is checked here.
    """
    if runner == "local":
        resolve_device(device)
    elif not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(device).strip().lower()):
        raise ConfigError(f"device {device!r}: expected auto, cpu, cuda or cuda:<index>", field="device")


def training_budget(settings: JobSettings) -> TrainBudget:
    """The proxy budget: the trainer's defaults with the job's seed, epochs and batch size."""
    args: dict[str, Any] = {"seed": settings.seed}
    if settings.epochs is not None:
        args["epochs"] = settings.epochs
    if settings.batch_size is not None:
        args["batch_size"] = settings.batch_size
    return TrainBudget(**args)


def higher_fidelity(settings: JobSettings, budget: TrainBudget, *, epochs: float | None, seed: int,
                    width: float | None = None, depth: float | None = None, resolution: int | None = None,
                    role: str = "") -> tuple[ProxyConfig, TrainBudget]:
    """The rule for training candidates again at a higher fidelity (re-ranking, fidelity checks).

    Each of ``width``, ``depth``, ``resolution`` None keeps the search's proxy value; ``epochs`` None
    trains :data:`HIGHER_FIDELITY_EPOCHS` times the search's epochs. The training is a fresh one
    (``seed``), never the search's own. ``role`` names the settings in errors.
    """
    proxy = ProxyConfig(width=settings.proxy_width if width is None else width,
                        depth=settings.proxy_depth if depth is None else depth,
                        resolution=settings.proxy_resolution if resolution is None else resolution,
                        target_resolution=getattr(settings, "target_resolution", None), role=role)
    if epochs is not None and not (_finite(epochs) and epochs > 0):
        raise ConfigError(f"{role + '_' if role else ''}epochs must be > 0, got {epochs!r}",
                          field=f"{role}_epochs" if role else "epochs")
    check_at_most(epochs, MAX_EPOCHS, f"{role}_epochs" if role else "epochs")
    return proxy, replace(budget, epochs=HIGHER_FIDELITY_EPOCHS * budget.epochs if epochs is None else epochs,
                          steps=None, seed=seed)


def points_held(store: RunStore, stage: str) -> set[tuple[int, ...]]:
    """The points (choice indices) of a stage that some process has finished or reserved."""
    return {tuple(r.indices) for r in store.records(stage)} | {tuple(r.indices) for r in store.reservations(stage)}


def points_not_held(store: RunStore, stage: str, points: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The points (choice indices) a stage of fixed points still has to propose: neither finished nor reserved."""
    held = points_held(store, stage)
    return [tuple(p) for p in points if tuple(p) not in held]


def fixed_points_stage(name: str, decisions: tuple[Decision, ...], points: Sequence[tuple[int, ...]], total: int,
                       plan: Callable[[tuple[int, ...]], Plan], store: RunStore, rewarded: bool = True) -> Stage:
    """A stage that proposes ``points`` in order (those not yet held), ``total`` trials in all; a point
    another process of a shared study takes meanwhile is passed over when its turn comes."""
    todo = points_not_held(store, name, points)
    controller = SequenceController(decisions, points=todo, held=lambda: points_held(store, name))
    return Stage(name, decisions, controller, total, plan, rewarded=rewarded)


@dataclass
class Parts:
    """What a job is built from, every name resolved and checked before a file is written."""

    objective: Objective
    data_ref: DatasetRef
    dataset: Any
    budget: TrainBudget
    runner: Callable[[], Any]  # builds the runner when the engine first trains


def build_parts(settings: JobSettings, out: Path) -> Parts:
    """The objective, data, budget and runner of a job; a bad name, number or cluster address raises here."""
    check_device(settings.device, settings.runner)
    objective = objective_from_settings(settings)
    data_ref = dataset_ref(settings)
    dataset = cached_dataset(data_ref)
    runner = runner_factory(settings.runner, settings.runner_options, device=settings.device, dataset=dataset,
                            data_ref=data_ref, run_dir=out)
    return Parts(objective, data_ref, dataset, training_budget(settings), runner)


class Job:
    """A job on one run folder: set up (new or resumed), its engine, its stages and its outputs.

    Subclasses set ``kind`` (``run.json``'s ``kind``), ``config_class``, ``resumable`` (settings a
    resume may change) and implement :meth:`prepare` (their own parts, checked before any file is
    written), :meth:`reference_plan` (the network an objective's references are measured on) and
    :meth:`write_outputs`.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type] = JobSettings
    resumable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_trial: Callable[[TrialRecord, int, int], None] | None = None, study: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.on_trial = on_trial
        self.process = 0  # this process's number in its study: 0 until a shared study numbers it
        if resume:
            self.store = RunStore.open(self.out, storage, write=True)  # holds the folder's lock until close()
            self.process = self.store.process  # a resumed folder keeps its number, and so its proposals
            try:
                self._resume(config, overrides)
            except BaseException:
                self.close()
                raise
        else:
            self.config = config
            self.parts = build_parts(config, self.out)  # every name the user gave is checked before any file
            self.prepare()
            self.store = RunStore.create(self.out, self.config.to_dict(), storage, kind=self.kind, study_name=study,
                                         metrics=self.study_metrics())  # refused while another process holds it
            if self.store.config.get("trials", None) != getattr(self.config, "trials", None):  # joined a shared study
                self.config = replace(self.config, trials=int(self.store.config["trials"]))
            if self.store.process != self.process:  # joined a shared study: proposals of its own
                self.process = self.store.process
                self.prepare_proposals()

    def _resume(self, config: Any, overrides: Mapping[str, Any] | None) -> None:
        """Open the stored run: its kind and configuration, changed only in :attr:`resumable`."""
        stored_kind = self.store.config.get("kind", "search")
        if stored_kind != self.kind:
            raise StorageError(f"{self.out} holds a {stored_kind} run, not a {self.kind} run; resume it with "
                               "its own command")
        stored = self.config_class.from_dict(self.store.config)
        changes = self.resume_changes(config, stored, overrides)
        # A setting given again with its stored value changes nothing; any other is refused, not ignored.
        changes = {k: v for k, v in changes.items() if k in self.resumable or _plain(v) != _plain(getattr(stored, k))}
        bad = sorted(set(changes) - set(self.resumable))
        if bad:
            raise ConfigError(f"{bad[0]} cannot change when a run resumes: the run keeps its stored value "
                              f"{_plain(getattr(stored, bad[0]))!r} (start a new run to change it)", field=bad[0])
        self.config = replace(stored, **changes)
        self.parts = build_parts(self.config, self.out)
        self.prepare()
        if changes:  # what this resume changed is what the run is now (a later fidelity check reads it)
            self.store.update_config(**self.config_changes(changes))

    def close(self) -> None:
        """The job is over: let go of its run folder's lock (its store can still be read)."""
        self.store.close()

    # ------------------------------------------------------------------------ for subclasses
    def resume_changes(self, given: Any, stored: Any, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """The settings a resume changes (``overrides``: those the user gave again)."""
        return dict(overrides or {})

    def config_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``changes`` as stored in run.json (plain JSON values)."""
        stored = self.config.to_dict()
        return {name: stored[name] for name in changes}

    def prepare(self) -> None:
        """Build the job's own parts from ``self.config`` and ``self.parts``; raise on anything bad."""

    def prepare_proposals(self) -> None:
        """Build again what draws the job's proposals, now that :attr:`process` is known (a job whose
        proposals depend on the seed draws from ``proposal_seed(config.seed, self.process)``)."""

    def study_metrics(self) -> list[tuple[str, str]]:
        """The study's (name, direction) pairs."""
        return [("reward", "maximize")]

    def reference_plan(self) -> Plan:
        raise NotImplementedError

    def write_outputs(self) -> None:
        """The job's files, complete (after each stage and at the end)."""
        self.store.write_trials_csv()

    def trial_outputs(self) -> None:
        """The job's files after each trial (default: :meth:`write_outputs`; a job whose outputs cost
        more as the run grows keeps them current more cheaply, as :class:`nas.jobs.search.Search` does)."""
        self.write_outputs()

    @classmethod
    def objective_of(cls, stored: Mapping[str, Any]) -> Objective:
        """The objective a stored run (its ``run.json``) was rewarded with."""
        return objective_from_settings(cls.config_class.from_dict(stored))

    # ------------------------------------------------------------------------------- engine
    def make_engine(self, latency: Callable[[ArchSpec], float] | None = None) -> Engine:
        """The job's engine, its objective's missing references measured first (see :meth:`measure_references`)."""
        engine = Engine(self.store, self.parts.objective, self.parts.runner, self.parts.data_ref, self.config.device,
                        latency=latency, on_trial=self.on_trial, outputs=self.trial_outputs)
        if self.parts.objective.missing_references():
            try:
                self.measure_references(engine)
            except BaseException:
                engine.close()
                raise
        return engine

    @contextlib.contextmanager
    def running(self, latency: Callable[[ArchSpec], float] | None = None) -> Iterator[Engine]:
        """The job's engine for one run, closed however the run ends (reservations it still holds
        released, workers stopped); on Ctrl-C or SIGTERM the job's outputs are written before the
        interrupt goes on, so they hold everything that finished."""
        engine = self.make_engine(latency=latency)
        try:
            yield engine
        except KeyboardInterrupt:
            engine.close()
            self.write_outputs()
            raise
        finally:
            engine.close()

    def measure_references(self, engine: Engine) -> None:
        """Train the reference network where candidates train (its own stage: once per study, reused on
        resume and by every process sharing the study) and take the objective's references from it."""
        plan = self.reference_plan()
        plan = replace(plan, budget=replace(plan.budget, steps=REFERENCE_STEPS))
        decisions = (Decision(REFERENCE_STAGE, ("reference network",)),)
        engine.run(fixed_points_stage(REFERENCE_STAGE, decisions, [(0,)], 1, lambda _: plan, self.store,
                                      rewarded=False))
        record = next((r for r in self.store.records(REFERENCE_STAGE)), None)
        if record is None or not record.metrics.ok:
            reason = "no result" if record is None else (record.metrics.error or record.metrics.status)
            raise ConfigError(f"could not measure the {self.parts.objective.name} reward's references on the "
                              f"reference network ({reason}); give them ({', '.join(self.parts.objective.references)}) "
                              "or start a new run", field="objective")
        references = self.parts.objective.references_from(record.values)
        self.config = replace(self.config, **references)
        self.store.update_config(**references)
        self.parts.objective = objective_from_settings(self.config)
        engine.objective = self.parts.objective


__all__ = ["HIGHER_FIDELITY_EPOCHS", "Job", "JobSettings", "Parts", "REFERENCE_STAGE", "build_parts", "check_device",
           "fixed_points_stage", "higher_fidelity", "is_int", "points_held", "points_not_held", "training_budget"]
