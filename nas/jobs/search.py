"""``nas search`` as a library: a space searched by a controller, then its leaders re-ranked.

A search is two stages of :class:`nas.engine.Engine` on one run store:

* ``search``: the controller proposes points of the space; each trains as a small proxy
  (``proxy_width`` / ``proxy_depth`` / ``proxy_resolution``) and is rewarded on its minival accuracy
  and the cost of the full-size network (counted at ``target_resolution``).
* ``rerank`` (``rerank`` > 0): the top ``rerank`` distinct candidates train again at a higher
  fidelity (:func:`nas.jobs.setup.higher_fidelity`), once per seed (``rerank_seeds``). B0 is then
  the best by the mean re-ranked reward (:mod:`nas.ranking`), and both rankings are kept.

Everything is resolved before a file is written (:class:`nas.jobs.setup.Job`), so a bad setting
leaves nothing behind, and a run resumes from its store after any stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from nas.controllers import controller_options, make_controller, proposal_seed
from nas.decisions import Decision
from nas.engine import CHECKPOINT, Plan, Stage, StageResult
from nas.errors import ConfigError
from nas.fileio import Paced, atomic_write_json
from nas.jobs.rungs import RungSettings, SuccessiveHalving
from nas.jobs.setup import Job, JobSettings, fixed_points_stage, higher_fidelity, is_int
from nas.limits import MAX_TRIALS, check_at_most
from nas.ranking import b0_document, candidates, choose_b0
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord
from nas.training.budget import TrainBudget
from search_spaces import FactorizedSpace, ProxyConfig, make_space

KIND = "search"
SEARCH_STAGE, RERANK_STAGE = "search", "rerank"
RERANK_SEED_OFFSET = 1000  # re-rank seeds are seed + 1000 + r: never the search's own training run
B0_FILE = "b0.json"


@dataclass(frozen=True)
class SearchConfig(JobSettings):
    """Everything that defines a search; stored in ``RUN/run.json`` so a resume repeats it exactly."""

    space: str = "efficientnet"
    controller: str = "rl"
    constraint: str = "soft"  # the mnas reward's: soft or hard
    trials: int = 16
    target_resolution: int | None = None  # where the full-size cost is counted (None: the space's)
    controller_options: Mapping[str, Any] = field(default_factory=dict)
    rerank: int = 0  # how many leaders to train again (0: no re-ranking)
    rerank_epochs: float | None = None  # None: twice the search's epochs
    rerank_seeds: int = 1
    rerank_width: float | None = None  # None: the search's proxy width (likewise depth, resolution)
    rerank_depth: float | None = None
    rerank_resolution: int | None = None
    latency_table: str | None = None  # predict latency from this table instead of timing the network
    rungs: tuple[float, ...] | None = None  # successive halving: epochs per rung (nas.jobs.rungs)
    eta: int = 3  # with rungs: the best 1/eta of a rung are promoted

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rungs is not None:
            object.__setattr__(self, "rungs", tuple(float(r) for r in self.rungs))
            if self.epochs is not None:
                raise ConfigError("epochs and rungs both set the proxy's training: give rungs only (the first "
                                  "rung is what every candidate trains)", field="epochs")
            self.rung_settings.check(self.trials)
        if not is_int(self.trials) or self.trials <= 0:
            raise ConfigError(f"trials must be a positive integer, got {self.trials!r}", field="trials")
        check_at_most(self.trials, MAX_TRIALS, "trials")
        if not is_int(self.rerank) or self.rerank < 0:
            raise ConfigError(f"rerank must be a positive number of candidates (or 0 for none), got {self.rerank!r}",
                              field="rerank")
        if self.rerank > self.trials:
            raise ConfigError(f"rerank {self.rerank} is more than the {self.trials} trials of the search",
                              field="rerank")
        if not is_int(self.rerank_seeds) or self.rerank_seeds < 1:
            raise ConfigError(f"rerank_seeds must be an integer >= 1, got {self.rerank_seeds!r}", field="rerank_seeds")
        self.rerank_fidelity(budget=None)  # checks the re-rank proxy now, not after the search trained

    @property
    def reward_constraint(self) -> str:
        return self.constraint

    @property
    def rung_settings(self) -> RungSettings | None:
        return None if self.rungs is None else RungSettings(tuple(self.rungs), self.eta)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["rungs"] = None if self.rungs is None else list(self.rungs)
        return data

    def rerank_fidelity(self, budget: Any, seed: int = 0) -> tuple[ProxyConfig, Any]:
        """The re-ranking's proxy and budget (budget None: only check the settings)."""
        return higher_fidelity(self, budget or TrainBudget(), epochs=self.rerank_epochs, seed=seed,
                               width=self.rerank_width, depth=self.rerank_depth, resolution=self.rerank_resolution,
                               role="rerank")


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


class Search(Job):
    """One search run; :meth:`run` drives it to ``config.trials`` search trials, then re-ranks.

    ``resume`` reopens ``out``; ``overrides`` (e.g. ``{"trials": 40}``) change stored settings that
    may change on a resume (trials and the re-rank settings). ``study`` names the study in
    ``storage`` that several processes share (each with its own ``out``).
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = SearchConfig
    resumable: ClassVar[tuple[str, ...]] = ("trials", "rerank", "rerank_epochs", "rerank_seeds", "rerank_width",
                                            "rerank_depth", "rerank_resolution", "rebuild_cache")
    config: SearchConfig

    def __init__(self, config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_trial: Callable[[TrialRecord, int, int], None] | None = None, study: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(config, out, storage=storage, resume=resume, on_trial=on_trial, study=study,
                         overrides=overrides)
        done = len(self.store.records(SEARCH_STAGE))
        if self.config.trials < done:
            self.close()
            raise ConfigError(f"trials {self.config.trials} is below the {done} trials this run already holds",
                              field="trials")

    def resume_changes(self, given: Any, stored: Any, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        changes = dict(overrides or {})
        if overrides is None and given.trials != stored.trials:  # run_search(config, resume=True)
            changes["trials"] = given.trials
        return changes

    def prepare(self) -> None:
        """The space, the controller and the latency predictor: every name checked before any file."""
        cfg = self.config
        self.space: FactorizedSpace = make_space(cfg.space)
        self.proxy = cfg.proxy
        self.decisions = self.space.decisions
        self.prepare_proposals()
        self.latency = None if cfg.latency_table is None else self._latency_predictor()
        self.halving = None if cfg.rungs is None else SuccessiveHalving(self, cfg.rung_settings)
        self._b0_pace = Paced(share=0.05)

    def prepare_proposals(self) -> None:
        """The controller, drawing this process's own stream: the study's seed for its first (or only)
        process, a stream derived from the seed and the process's number for every other one."""
        cfg = self.config
        options = dict(cfg.controller_options)
        if "objectives" in controller_options(cfg.controller) and "objectives" not in options:
            options["objectives"] = dict(self.parts.objective.directions)
        self.controller = make_controller(cfg.controller, self.decisions, seed=proposal_seed(cfg.seed, self.process),
                                          **options)

    def _latency_predictor(self) -> Callable[[ArchSpec], float]:
        """The table's prediction of a full-size candidate's latency; the table must fit this search exactly
        (space, resolution, the dataset's classes and channels), checked here before anything trains."""
        if not self.parts.objective.needs_latency:
            raise ConfigError("latency_table predicts latency: it needs the mnas objective with cost latency",
                              field="latency_table")
        try:
            from nas.deploy.latency_table import load_latency_table  # onnxruntime and torch: only with a table
        except ImportError as exc:
            raise ConfigError(f"latency tables are not available in this installation ({exc})",
                              field="latency_table") from None
        resolution = self.proxy.target_resolution or self.space.resolution
        table = load_latency_table(self.config.latency_table, space=self.config.space, resolution=resolution)
        table.check_spec(self.backbone())
        return table.predict_ms

    def study_metrics(self) -> list[tuple[str, str]]:
        """The reward, or the objective's raw values for a multi-objective controller."""
        if getattr(self.controller, "objectives", None):
            return [(name, "maximize" if d == "max" else "minimize") for name, d in self.controller.objectives.items()]
        return [("reward", "maximize")]

    # ------------------------------------------------------------------------------ stages
    def backbone(self) -> ArchSpec:
        """The space's base network at full size, for this dataset."""
        data = self.parts.dataset
        return self.space.backbone().with_(num_classes=data.num_classes, in_chans=data.in_chans,
                                           resolution=self.proxy.target_resolution or self.space.resolution)

    def reference_plan(self) -> Plan:
        backbone = self.backbone()
        return Plan(backbone, self.space.proxy(backbone, self.proxy), self.parts.budget)

    def full_and_proxy(self, choices: tuple[int, ...], proxy: ProxyConfig) -> tuple[ArchSpec, ArchSpec]:
        data = self.parts.dataset
        full = self.space.full_size(choices, self.proxy, data.num_classes, data.in_chans)
        return full, self.space.proxy(full, proxy, data.num_classes, data.in_chans)

    def search_stage(self) -> Stage:
        def plan(choices: tuple[int, ...]) -> Plan:
            if self.halving is not None:  # the first rung of the one schedule
                return self.halving.plan(0, choices)
            full, proxy = self.full_and_proxy(choices, self.proxy)
            return Plan(full, proxy, self.parts.budget)

        return Stage(SEARCH_STAGE, self.decisions, self.controller, self.config.trials, plan,
                     checkpoint=self.out / CHECKPOINT)

    def rerank_stage(self) -> Stage:
        """The top ``rerank`` distinct candidates again at the higher fidelity, once per seed."""
        cfg = self.config
        seeds = tuple(cfg.seed + RERANK_SEED_OFFSET + r for r in range(cfg.rerank_seeds))
        decisions = (*self.decisions, Decision("rerank_seed", seeds))
        leaders = candidates(self.store.records())
        if len(leaders) < cfg.rerank:
            raise ConfigError(f"rerank {cfg.rerank} is more than the {len(leaders)} candidates the search "
                              f"completed; resume with a smaller rerank", field="rerank")
        base = self.parts.budget
        if cfg.rungs is not None:  # the search's training is the last rung's
            base = replace(base, epochs=cfg.rungs[-1], schedule_epochs=None)
        proxy, budget = cfg.rerank_fidelity(base)

        def plan(choices: tuple[int, ...]) -> Plan:
            full, proxy_spec = self.full_and_proxy(tuple(choices[:-1]), proxy)
            return Plan(full, proxy_spec, replace(budget, seed=seeds[choices[-1]]))

        points = [(*leader.search.indices, r) for leader in leaders[: cfg.rerank] for r in range(len(seeds))]
        return fixed_points_stage(RERANK_STAGE, decisions, points, len(points), plan, self.store)

    # --------------------------------------------------------------------------------- run
    def run(self) -> SearchResult:
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> SearchResult:
        stages: dict[str, StageResult] = {}
        with self.running(latency=self.latency) as engine:
            stages[SEARCH_STAGE] = engine.run(self.search_stage(), self.halving)
            if self.halving is not None:
                self.halving.close()
            self.write_outputs()
            if self.config.rerank:
                stages[RERANK_STAGE] = engine.run(self.rerank_stage())
                self.write_outputs()
        first_errors: dict[str, tuple[int, str]] = {}
        for result in stages.values():
            for kind, item in result.first_errors.items():
                first_errors.setdefault(kind, item)
        choice = choose_b0(self.store.records())
        return SearchResult(self.out, self.store, None if choice is None else choice.record,
                            trained=sum(s.trained for s in stages.values()),
                            reused=sum(s.reused for s in stages.values()),
                            wall_time_s=sum(s.wall_time_s for s in stages.values()),
                            failed=sum(s.failed for s in stages.values()), first_errors=first_errors, stages=stages)

    def write_outputs(self) -> None:
        """trials.csv and b0.json, complete (after each stage and at the end)."""
        self.store.write_trials_csv()
        self._b0_pace.run(self._write_b0, force=True)

    def trial_outputs(self) -> None:
        """After each trial: its row appended to trials.csv; b0.json, which ranks every record, rewritten
        at a pace that keeps it under a twentieth of the search's time (:class:`nas.fileio.Paced`)."""
        self.store.write_trials_csv(final=False)
        self._b0_pace.run(self._write_b0)

    def _write_b0(self) -> None:
        records = self.store.log.records
        choice = choose_b0(records)
        if choice is not None:
            atomic_write_json(self.out / B0_FILE, b0_document(choice, records, self.store.config))


def run_search(config: SearchConfig, out: str | Path, storage: str | None = None, resume: bool = False,
               on_trial: Callable[[TrialRecord, int, int], None] | None = None,
               study: str | None = None) -> SearchResult:
    """Run (or resume) a search and return its result; the Python face of ``nas search``."""
    return Search(config, out, storage=storage, resume=resume, on_trial=on_trial, study=study).run()


__all__ = ["B0_FILE", "KIND", "RERANK_SEED_OFFSET", "RERANK_STAGE", "SEARCH_STAGE", "Search", "SearchConfig",
           "SearchResult", "run_search"]
