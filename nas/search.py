"""``nas search`` as a library: a space searched by a controller, then its leaders re-ranked.

A search is two stages of :class:`nas.engine.Engine` on one run store:

* ``search``: the controller proposes points of the space; each trains as a small proxy
  (``proxy_width`` / ``proxy_depth`` / ``proxy_resolution``) and is rewarded on its minival accuracy
  and the cost of the full-size network (counted at ``target_resolution``).
* ``rerank`` (``rerank`` > 0): the top ``rerank`` distinct candidates train again at a higher
  fidelity (``rerank_epochs``, ``rerank_width``...), once per seed (``rerank_seeds``). B0 is then the
  best by the mean re-ranked reward (:mod:`nas.ranking`), and both rankings are kept.

Everything is resolved before a file is written, so a bad setting leaves nothing behind, and a run
resumes from its store after any stop.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from nas.decisions import Decision
from nas.engine import CHECKPOINT, Engine, Plan, Stage, StageResult, proposals_in_order, with_v2_references
from nas.errors import ConfigError, StorageError
from nas.store import RunStore, TrialRecord, run_exists

SEARCH_STAGE, RERANK_STAGE = "search", "rerank"
RERANK_SEED_OFFSET = 1000  # re-rank seeds are seed + 1000 + r: never the search's own training run


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
    rerank: int = 0  # how many leaders to train again (0: no re-ranking)
    rerank_epochs: float | None = None  # None: twice the search's epochs
    rerank_seeds: int = 1
    rerank_width: float | None = None  # None: the search's proxy width (likewise depth, resolution)
    rerank_depth: float | None = None
    rerank_resolution: int | None = None
    latency_table: str | None = None  # predict latency from this table instead of timing the network
    data_cache: str | None = None  # folder of the data cache (memory-mapped files at the proxy resolution)
    rebuild_cache: bool = False  # rebuild a data cache of another dataset, resolution or source

    def __post_init__(self) -> None:
        if not _is_int(self.trials) or self.trials <= 0:
            raise ConfigError(f"trials must be a positive integer, got {self.trials!r}", field="trials")
        check_budget_flags(self.epochs, self.batch_size)
        if not _is_int(self.rerank) or self.rerank < 0:
            raise ConfigError(f"rerank must be a positive number of candidates (or 0 for none), got {self.rerank!r}",
                              field="rerank")
        if self.rerank > self.trials:
            raise ConfigError(f"rerank {self.rerank} is more than the {self.trials} trials of the search",
                              field="rerank")
        if not _is_int(self.rerank_seeds) or self.rerank_seeds < 1:
            raise ConfigError(f"rerank_seeds must be an integer >= 1, got {self.rerank_seeds!r}", field="rerank_seeds")
        if self.rerank_epochs is not None and not self.rerank_epochs > 0:
            raise ConfigError(f"rerank_epochs must be > 0, got {self.rerank_epochs!r}", field="rerank_epochs")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runner_options"] = dict(self.runner_options)
        data["controller_options"] = dict(self.controller_options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchConfig":
        return from_known_fields(cls, data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_budget_flags(epochs: float | None, batch_size: int | None) -> None:
    """The proxy-training settings shared by a search and a scaling grid."""
    if epochs is not None and not epochs > 0:
        raise ConfigError(f"epochs must be > 0, got {epochs!r}", field="epochs")
    if batch_size is not None and batch_size <= 0:
        raise ConfigError(f"batch_size must be > 0, got {batch_size!r}", field="batch_size")


def from_known_fields(cls: Any, data: Mapping[str, Any]) -> Any:
    """Build a config dataclass from a stored run.json, ignoring keys it does not know (kind, storage...)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def check_device(device: str, runner: str) -> None:
    """Refuse a device that cannot work before anything is written.

    With the local runner the device must exist here. With Ray it must exist on the workers, which
    may have GPUs the driver lacks, so only its spelling is checked here.
    """
    from nas.device import resolve_device

    if runner == "local":
        resolve_device(device)
    elif not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(device).strip().lower()):
        raise ConfigError(f"device {device!r}: expected auto, cpu, cuda or cuda:<index>", field="device")


def training_budget(seed: int, epochs: float | None, batch_size: int | None) -> Any:
    """The proxy budget: the trainer's defaults with the run's seed, epochs and batch size."""
    from nas.training import TrainBudget

    args: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        args["epochs"] = epochs
    if batch_size is not None:
        args["batch_size"] = batch_size
    return TrainBudget(**args)


def objective_options(config: Any, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The objective's constructor options from a search or grid config (v2 references from ``stored``)."""
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


def run_objective(config: Mapping[str, Any]) -> Any:
    """The objective a stored run (search or scaling grid) was rewarded with, rebuilt from its run.json."""
    from objectives import make_objective

    if config.get("kind") == "scale-grid":
        from nas.scale_grid import ScaleGridConfig, grid_objective

        return grid_objective(ScaleGridConfig.from_dict(config), config)
    return make_objective(config.get("objective", "mnas"),
                          **objective_options(SearchConfig.from_dict(config), config))


def study_metrics(controller: Any, objective: Any) -> list[tuple[str, str]]:
    """The study's (name, direction) pairs: the objective's raw values for a multi-objective controller."""
    if getattr(controller, "objectives", None):
        return [(name, "maximize" if d == "max" else "minimize") for name, d in controller.objectives.items()]
    return [("reward", "maximize")]


@dataclass
class _Components:
    space: Any
    objective: Any
    controller: Any
    proxy: Any
    dataset: Any
    data_ref: Any
    budget: Any
    latency: Callable[[Any], float] | None = None


def build_components(config: SearchConfig, stored: Mapping[str, Any] | None = None) -> _Components:
    """Resolve every name in the config before anything is written, so a bad setting touches nothing."""
    from nas.controllers import controller_options, make_controller
    from objectives import make_objective
    from runners import RUNNERS, check_runner
    from runners.base import cached_dataset, dataset_ref
    from search_spaces import ProxyConfig, make_space
    from nas.errors import unknown_name

    if config.runner not in RUNNERS:
        raise unknown_name("runner", config.runner, list(RUNNERS))
    check_device(config.device, config.runner)
    check_runner(config.runner, config.runner_options)
    space = make_space(config.space)
    proxy = ProxyConfig(width=config.proxy_width, depth=config.proxy_depth, resolution=config.proxy_resolution,
                        target_resolution=config.target_resolution)
    objective = make_objective(config.objective, **objective_options(config, stored))
    options = dict(config.controller_options)
    if "objectives" in controller_options(config.controller) and "objectives" not in options:
        options["objectives"] = dict(objective.directions)
    controller = make_controller(config.controller, space.decisions, seed=config.seed, **options)
    data_ref = dataset_ref(config)
    dataset = cached_dataset(data_ref)
    budget = training_budget(config.seed, config.epochs, config.batch_size)
    latency = None
    if config.latency_table is not None:
        latency = _latency_predictor(config, objective, space, proxy, dataset)
    return _Components(space, objective, controller, proxy, dataset, data_ref, budget, latency)


def _latency_predictor(config: SearchConfig, objective: Any, space: Any, proxy: Any,
                       dataset: Any) -> Callable[[Any], float]:
    """The table's prediction of a full-size candidate's latency; the table must fit this search exactly
    (space, resolution, the dataset's classes and channels), checked here before anything trains."""
    if getattr(objective, "cost", None) != "latency":
        raise ConfigError("latency_table predicts latency: it needs the mnas objective with cost latency",
                          field="latency_table")
    try:
        from nas.deploy.latency_table import load_latency_table
    except ImportError as exc:
        raise ConfigError(f"latency tables are not available in this installation ({exc})",
                          field="latency_table") from None
    table = load_latency_table(config.latency_table, space=config.space,
                               resolution=proxy.target_resolution or space.resolution)
    backbone = space.backbone().with_(num_classes=dataset.num_classes, in_chans=dataset.in_chans,
                                      resolution=proxy.target_resolution or space.resolution)
    table.check_spec(backbone)
    return table.predict_ms


@dataclass
class SearchResult:
    run_dir: Path
    store: RunStore
    best: TrialRecord | None
    trained: int  # candidates actually trained in this invocation
    reused: int  # proposals answered from an earlier identical network
    wall_time_s: float
    failed: int = 0
    first_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    stages: dict[str, StageResult] = field(default_factory=dict)


class Search:
    """One search run; :meth:`run` drives it to ``config.trials`` search trials, then re-ranks.

    ``resume`` reopens ``out``; ``overrides`` (e.g. ``{"trials": 40}``) change stored settings that
    may change on a resume (trials and the re-rank settings). ``study`` names the study in
    ``storage`` that several processes share (each with its own ``out``).
    """

    RESUMABLE_OVERRIDES = ("trials", "rerank", "rerank_epochs", "rerank_seeds", "rerank_width", "rerank_depth",
                           "rerank_resolution", "rebuild_cache")

    def __init__(self, config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_trial: Callable[[TrialRecord, int, int], None] | None = None, study: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.on_trial = on_trial
        self.config = config
        if resume:
            self.store = RunStore.open(self.out, storage)
            if self.store.config.get("kind", "search") != "search":
                raise StorageError(f"{self.out} holds a {self.store.config.get('kind')} run, not a search; "
                                   f"resume it with its own command")
            stored = SearchConfig.from_dict(self.store.config)
            changes = dict(overrides or {})
            if overrides is None and config.trials != stored.trials:
                changes["trials"] = config.trials
            bad = sorted(set(changes) - set(self.RESUMABLE_OVERRIDES))
            if bad:
                raise ConfigError(f"{bad[0]} cannot change when a run resumes", field=bad[0])
            self.config = replace(stored, **changes)
            self.comps = build_components(self.config, self.store.config)
        else:
            self.comps = build_components(config)  # every name the user gave is checked before any file is touched
            if run_exists(self.out):
                raise StorageError(f"{self.out} already holds a run; resume it or choose another output folder",
                                   field="out")
            extra = self._v2_references()
            if extra:
                self.config = replace(config, **extra)
                self.comps = build_components(self.config)
            self.store = RunStore.create(self.out, self.config.to_dict(), storage, study_name=study,
                                         metrics=study_metrics(self.comps.controller, self.comps.objective))
            if self.store.config.get("trials") != self.config.trials:  # joined a shared study
                self.config = replace(self.config, trials=int(self.store.config["trials"]))
        done = len(self.store.records(SEARCH_STAGE))
        if self.config.trials < done:
            raise ConfigError(f"trials {self.config.trials} is below the {done} trials this run already holds",
                              field="trials")
        self.decisions = self.comps.space.decisions

    def _v2_references(self) -> dict[str, float]:
        c = self.comps
        backbone = c.space.backbone().with_(num_classes=c.dataset.num_classes, in_chans=c.dataset.in_chans,
                                            resolution=c.proxy.target_resolution or c.space.resolution)
        return with_v2_references(objective_options(self.config), self.config.objective, backbone,
                                  c.space.proxy(backbone, c.proxy), c.data_ref, c.dataset, c.budget,
                                  self.config.device)

    # ------------------------------------------------------------------------------ stages
    def full_and_proxy(self, choices: tuple[int, ...], proxy: Any) -> tuple[Any, Any]:
        c = self.comps
        full = c.space.full_size(choices, c.proxy, c.dataset.num_classes, c.dataset.in_chans)
        return full, c.space.proxy(full, proxy, c.dataset.num_classes, c.dataset.in_chans)

    def search_stage(self) -> Stage:
        def plan(choices: tuple[int, ...]) -> Plan:
            full, proxy = self.full_and_proxy(choices, self.comps.proxy)
            return Plan(full, proxy, self.comps.budget)

        return Stage(SEARCH_STAGE, self.decisions, self.comps.controller, self.config.trials, plan,
                     checkpoint=self.out / CHECKPOINT)

    def rerank_stage(self) -> Stage:
        """The top ``rerank`` distinct candidates again at the higher fidelity, once per seed."""
        from nas.ranking import candidates
        from search_spaces import ProxyConfig

        c, cfg = self.comps, self.config
        seeds = tuple(cfg.seed + RERANK_SEED_OFFSET + r for r in range(cfg.rerank_seeds))
        decisions = (*self.decisions, Decision("rerank_seed", seeds))
        leaders = candidates(self.store.records())
        if len(leaders) < cfg.rerank:
            raise ConfigError(f"rerank {cfg.rerank} is more than the {len(leaders)} candidates the search "
                              f"completed; resume with a smaller rerank", field="rerank")
        proxy = ProxyConfig(width=cfg.rerank_width or cfg.proxy_width, depth=cfg.rerank_depth or cfg.proxy_depth,
                            resolution=cfg.rerank_resolution or cfg.proxy_resolution,
                            target_resolution=cfg.target_resolution)
        epochs = cfg.rerank_epochs or 2 * c.budget.epochs

        def plan(choices: tuple[int, ...]) -> Plan:
            full, proxy_spec = self.full_and_proxy(tuple(choices[:-1]), proxy)
            return Plan(full, proxy_spec, replace(c.budget, epochs=epochs, steps=None, seed=seeds[choices[-1]]))

        points = [(*leader.search.indices, r) for leader in leaders[: cfg.rerank] for r in range(len(seeds))]
        held = {tuple(r.indices) for r in self.store.records(RERANK_STAGE)}
        held |= {tuple(r.indices) for r in self.store.reservations(RERANK_STAGE)}
        todo = [p for p in points if p not in held]
        return Stage(RERANK_STAGE, decisions, proposals_in_order(decisions, todo), len(points), plan)

    # --------------------------------------------------------------------------------- run
    def run(self) -> SearchResult:
        c = self.comps
        engine = Engine(self.store, c.objective, c.dataset, c.data_ref, self.config.device, self.config.runner,
                        self.config.runner_options,
                        measure_full_latency=getattr(c.objective, "cost", None) == "latency", latency=c.latency,
                        on_trial=self.on_trial)
        stages: dict[str, StageResult] = {}
        try:
            stages[SEARCH_STAGE] = engine.run(self.search_stage())
            if self.config.rerank:
                stages[RERANK_STAGE] = engine.run(self.rerank_stage())
        finally:
            engine.close()
        self.store.write_outputs()
        first_errors: dict[str, tuple[int, str]] = {}
        for result in stages.values():
            for kind, item in result.first_errors.items():
                first_errors.setdefault(kind, item)
        return SearchResult(self.out, self.store, self.store.best(),
                            trained=sum(s.trained for s in stages.values()),
                            reused=sum(s.reused for s in stages.values()),
                            wall_time_s=sum(s.wall_time_s for s in stages.values()),
                            failed=sum(s.failed for s in stages.values()), first_errors=first_errors, stages=stages)


def run_search(config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
               on_trial: Callable[[TrialRecord, int, int], None] | None = None,
               study: str | None = None) -> SearchResult:
    """Run (or resume) a search and return its result; the Python face of ``nas search``."""
    return Search(config, out, storage=storage, resume=resume, on_trial=on_trial, study=study).run()


__all__ = ["RERANK_STAGE", "SEARCH_STAGE", "Search", "SearchConfig", "SearchResult", "build_components",
           "check_budget_flags", "check_device", "from_known_fields", "objective_options", "run_objective", "run_search",
           "study_metrics", "training_budget"]
