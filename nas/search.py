"""The search loop: ask, decode, dedupe, evaluate, reward, tell, store.

::

    controller.ask() -> choices -> space.decode -> full-size ArchSpec -> key seen in this run?
        yes: reuse its metrics (no retraining)
        no:  runner.submit(proxy spec) ... runner.wait() -> Metrics
    Metrics + counted cost of the full-size candidate -> objective.reward -> controller.tell
    -> store.record (persisted before the next ask) -> trials.csv, b0.json, controller.pt

Several candidates may be in flight at once (the Ray runner); their results come back in any order.
A killed run resumes from the store: finished trials are kept, the controller's checkpoint is
restored, and trials the checkpoint had not seen yet are replayed into it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from nas.errors import ConfigError, StorageError
from nas.fileio import atomic_torch_save
from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord

CHECKPOINT = "controller.pt"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; stored in ``RUN/run.json`` so a resume repeats it exactly."""

    space: str = "efficientnet"
    controller: str = "rl"
    objective: str = "mnas"
    cost: str = "macs"
    target: str | None = None  # unit-aware, e.g. "400M"; None = the objective's default
    constraint: str = "soft"
    w: float | None = None
    v: float | None = None
    step_time_ref_ms: float | None = None
    params_ref: float | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    trials: int = 16
    epochs: float | None = None  # None = the trainer's default budget
    batch_size: int | None = None
    proxy_width: float = 0.5
    proxy_depth: float = 0.5
    proxy_resolution: int = 32
    target_resolution: int | None = None
    runner: str = "local"
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    controller_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trials, int) or self.trials <= 0:
            raise ConfigError(f"--trials must be a positive integer, got {self.trials!r}")
        check_budget_flags(self.epochs, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runner_options"] = dict(self.runner_options)
        data["controller_options"] = dict(self.controller_options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchConfig":
        return from_known_fields(cls, data)


def check_budget_flags(epochs: float | None, batch_size: int | None) -> None:
    """The proxy-training flags shared by ``nas search`` and ``nas scale grid``."""
    if epochs is not None and not epochs > 0:
        raise ConfigError(f"--epochs must be > 0, got {epochs!r}")
    if batch_size is not None and batch_size <= 0:
        raise ConfigError(f"--batch-size must be > 0, got {batch_size!r}")


def from_known_fields(cls: Any, data: Mapping[str, Any]) -> Any:
    """Build a config dataclass from a stored run.json, ignoring keys it does not know (kind, storage...)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class SearchResult:
    run_dir: Path
    store: RunStore
    best: TrialRecord | None
    trained: int  # candidates actually trained in this invocation
    reused: int  # proposals answered from an earlier identical network
    wall_time_s: float


@dataclass
class _Components:
    space: Any
    objective: Any
    controller: Any
    proxy: Any
    dataset: Any
    data_ref: Any
    budget: Any


def build_components(config: SearchConfig, stored: Mapping[str, Any] | None = None) -> _Components:
    """Resolve every name in the config before anything is written, so a bad flag touches nothing."""
    from nas.controllers import make_controller
    from objectives import make_objective
    from runners.base import DatasetRef, cached_dataset
    from search_spaces import ProxyConfig, make_space
    from nas.training import TrainBudget

    space = make_space(config.space)
    proxy = ProxyConfig(width=config.proxy_width, depth=config.proxy_depth, resolution=config.proxy_resolution,
                        target_resolution=config.target_resolution)
    objective = make_objective(config.objective, **objective_options(config, stored))
    controller = make_controller(config.controller, space.decisions, seed=config.seed,
                                 **dict(config.controller_options))
    data_ref = DatasetRef(config.dataset, config.data_dir, config.seed)
    dataset = cached_dataset(data_ref)
    budget_args: dict[str, Any] = {"seed": config.seed}
    if config.epochs is not None:
        budget_args["epochs"] = config.epochs
    if config.batch_size is not None:
        budget_args["batch_size"] = config.batch_size
    budget = TrainBudget(**budget_args)
    return _Components(space, objective, controller, proxy, dataset, data_ref, budget)


def objective_options(config: SearchConfig, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if config.objective == "mnas":
        options: dict[str, Any] = {"cost": config.cost, "constraint": config.constraint}
        if config.target is not None:
            options["target"] = config.target
        if config.w is not None:
            options["w"] = config.w
        return options
    if config.objective == "v2":
        options = {}
        for name in ("w", "v", "step_time_ref_ms", "params_ref"):
            value = getattr(config, name)
            if value is None and stored:
                value = stored.get(name)
            if value is not None:
                options[name] = value
        return options
    return {}


def _reference_values(config: SearchConfig, comps: _Components) -> dict[str, float]:
    """The v2 objective's default references: the backbone's params and its proxy's step time."""
    from nas.counting import count
    from runners.base import TrainJob, run_job

    refs: dict[str, float] = {}
    backbone = comps.space.backbone().with_(num_classes=comps.dataset.num_classes, in_chans=comps.dataset.in_chans,
                                            resolution=comps.proxy.target_resolution or comps.space.resolution)
    if config.params_ref is None:
        refs["params_ref"] = float(count(backbone).params)
    if config.step_time_ref_ms is None:
        proxy_spec = comps.space.proxy(backbone, comps.proxy)
        job = TrainJob(trial=-1, spec=proxy_spec, dataset=comps.data_ref,
                       budget=replace(comps.budget, steps=12), device=config.device)
        metrics = run_job(job, data=comps.dataset)
        if not metrics.ok or not metrics.step_time_ms:
            raise ConfigError(f"could not measure the backbone's step time for the v2 reference: {metrics.error}")
        refs["step_time_ref_ms"] = float(metrics.step_time_ms)
    return refs


def arch_string(spec: ArchSpec) -> str:
    from nas.blockstrings import spec_to_block_strings

    return " ".join(spec_to_block_strings(spec, style="typed"))


class Search:
    """One search run; :meth:`run` drives it to ``config.trials`` recorded trials."""

    def __init__(self, config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_trial: Callable[[TrialRecord, int, int], None] | None = None) -> None:
        self.out = Path(out)
        self.on_trial = on_trial
        self.config = config
        self.comps = build_components(config)  # every name the user gave is checked before any file is touched
        if resume:
            self.store = RunStore.open(self.out, storage)
            stored = SearchConfig.from_dict(self.store.config)
            self.config = replace(stored, trials=config.trials) if config.trials != stored.trials else stored
            self.comps = build_components(self.config, self.store.config)
        else:
            from nas.store import run_exists

            if run_exists(self.out):
                raise StorageError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
            extra = _reference_values(config, self.comps) if config.objective == "v2" else {}
            if extra:
                self.config = replace(config, **extra)
                self.comps = build_components(self.config)
            self.store = RunStore.create(self.out, self.config.to_dict(), storage)
        self.decisions = self.comps.space.decisions
        self._keys: dict[str, int] = {}  # network key -> trial number of its first evaluation
        self._told: set[int] = set()
        self._restore()

    # ------------------------------------------------------------------------------ resume
    def _restore(self) -> None:
        import torch

        from nas.decisions import Proposal

        checkpoint_path = self.out / CHECKPOINT
        if checkpoint_path.exists():
            try:
                checkpoint = torch.load(checkpoint_path, weights_only=True)
            except Exception as exc:  # noqa: BLE001
                raise StorageError(f"{checkpoint_path}: unreadable controller checkpoint ({exc})") from None
            self.comps.controller.load_state_dict(checkpoint["controller"])
            self._told = set(checkpoint.get("told", []))
        for record in self.store.records():
            self._keys.setdefault(record.key, record.number if record.reused_from is None else record.reused_from)
            if record.number not in self._told:
                # Finished after the last checkpoint (or no checkpoint yet): let the controller see it.
                self.comps.controller.tell(Proposal(id=-1 - record.number, choices=record.indices),
                                           self._tell_reward(record), dict(record.values) or None)
                self._told.add(record.number)

    def _save_checkpoint(self) -> None:
        atomic_torch_save({"controller": self.comps.controller.state_dict(), "told": sorted(self._told),
                           "controller_name": self.config.controller}, self.out / CHECKPOINT)

    # --------------------------------------------------------------------------------- loop
    def run(self) -> SearchResult:
        from nas.counting import count
        from runners import make_runner
        from runners.base import TrainJob

        start = time.perf_counter()
        comps, config = self.comps, self.config
        done = len(self.store.records())
        trained = reused = 0
        in_flight: dict[int, tuple[Any, ArchSpec]] = {}  # job id -> (proposal, full spec)
        waiting: dict[str, list[tuple[Any, ArchSpec]]] = {}  # key in flight -> repeat proposals
        next_job = 0
        num_classes, in_chans = comps.dataset.num_classes, comps.dataset.in_chans
        runner = make_runner(config.runner, device=config.device, dataset=comps.dataset, data_ref=comps.data_ref,
                             run_dir=self.out, **dict(config.runner_options))
        try:
            while done < config.trials:
                # Fill the runner with new proposals.
                while done + len(in_flight) + sum(map(len, waiting.values())) < config.trials \
                        and len(in_flight) < runner.capacity:
                    proposal = comps.controller.ask()
                    full = comps.space.full_size(proposal.choices, comps.proxy, num_classes, in_chans)
                    key = full.key()
                    if key in self._keys:
                        self._finish_repeat(proposal, full, self._keys[key])
                        done += 1
                        reused += 1
                        continue
                    if any(key == f.key() for _, f in in_flight.values()):
                        waiting.setdefault(key, []).append((proposal, full))
                        continue
                    proxy_spec = comps.space.proxy(full, comps.proxy, num_classes, in_chans)
                    job = TrainJob(trial=next_job, spec=proxy_spec, dataset=comps.data_ref, budget=comps.budget,
                                   device=config.device, full_spec=full,
                                   measure_full_latency=getattr(comps.objective, "cost", None) == "latency")
                    in_flight[next_job] = (proposal, full)
                    next_job += 1
                    runner.submit(job)
                if not in_flight:
                    continue
                for job, metrics in runner.wait():
                    proposal, full = in_flight.pop(job.trial)
                    record = self._finish(proposal, full, metrics, count(full))
                    trained += 1
                    done += 1
                    for repeat, repeat_full in waiting.pop(record.key, []):
                        self._finish_repeat(repeat, repeat_full, record.number)
                        done += 1
                        reused += 1
        finally:
            runner.close()
        self.store.write_outputs()
        return SearchResult(self.out, self.store, self.store.best(), trained, reused, time.perf_counter() - start)

    # ---------------------------------------------------------------------------- helpers
    def _values(self, metrics: Metrics, full_cost: Any) -> dict[str, float]:
        values = {"macs": float(full_cost.macs), "params": float(full_cost.params)}
        for name in ("accuracy", "step_time_ms", "latency_ms"):
            value = getattr(metrics, name)
            if value is not None:
                values[name] = float(value)
        return values

    def _reward(self, metrics: Metrics, values: Mapping[str, float]) -> float | None:
        if metrics.status not in ("ok", "pruned") or metrics.accuracy is None:
            return None
        return float(self.comps.objective.reward(values))

    @staticmethod
    def _tell_reward(record: TrialRecord) -> float | None:
        return record.reward if record.metrics.status in ("ok", "pruned") else None

    def _finish(self, proposal: Any, full: ArchSpec, metrics: Metrics, full_cost: Any,
                reused_from: int | None = None, values: Mapping[str, float] | None = None) -> TrialRecord:
        values = dict(values) if values is not None else self._values(metrics, full_cost)
        reward = self._reward(metrics, values)
        choices = {d.name: d.options[i] for d, i in zip(self.decisions, proposal.choices)}
        stored_reward = reward if metrics.ok else None
        record = TrialRecord(choices=choices, indices=tuple(int(i) for i in proposal.choices), metrics=metrics,
                             spec=full, arch=arch_string(full), key=full.key(), reward=stored_reward,
                             values=values, reused_from=reused_from)
        record = self.store.record(record, self.decisions)
        self._keys.setdefault(record.key, record.number if reused_from is None else reused_from)
        self.comps.controller.tell(proposal, reward, values)
        self._told.add(record.number)
        self._save_checkpoint()
        self.store.write_outputs()
        if self.on_trial is not None:
            self.on_trial(record, len(self._told), self.config.trials)
        return record

    def _finish_repeat(self, proposal: Any, full: ArchSpec, original_number: int) -> TrialRecord:
        original = self.store.trial_spec(original_number)
        return self._finish(proposal, full, original.metrics, None, reused_from=original_number,
                            values=original.values)


def run_search(config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
               on_trial: Callable[[TrialRecord, int, int], None] | None = None) -> SearchResult:
    """Run (or resume) a search and return its result; the Python face of ``nas search``."""
    return Search(config, out, storage=storage, resume=resume, on_trial=on_trial).run()
