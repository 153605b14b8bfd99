"""Step 1 of compound scaling on the user's own base: train the alpha/beta/gamma grid and pick a point.

::

    enumerate_grid(base) -> points (reference first) -> each point: proxy_for_point -> runner
        -> Metrics -> reward (accuracy, or an objective) -> RunStore.record (persisted at once)
    -> scaling.csv (every point, predicted vs actual cost ratio, accuracy, rank)
    -> scaling.json (the chosen alpha, beta, gamma; input of ``nas scale apply --from``)

The grid is a search: its space is :class:`search_spaces.grid.CompoundGridSpace` (decisions
``alpha``/``beta``/``gamma``, one point per grid point), its controller proposes the points in
order, and :class:`nas.engine.Engine` runs it with the same loop, store, dedupe, resume and runners
as ``nas search``. What is left here is the grid's configuration and its writers.

A grid run is a run folder like a search's: ``run.json`` (kind ``scale-grid``, the config and the
base spec, so a resume needs no other file), the Optuna study (one trial per point, stage ``grid``),
``trials.csv``, ``scaling.csv`` and ``scaling.json``. Each point is stored as soon as it has
trained, so a killed run resumes without retraining a finished point. No ``b0.json`` is written:
the best row of a scaling grid is a B1, not a B0.

What trains: the rule of :func:`nas.compound.proxy_for_point`, the search's proxy (width, depth,
resolution multipliers) grown by the point's depth alpha^phi, width beta^phi and resolution
gamma^phi. Two points whose proxies are the same network (the rounding often merges neighbours)
train once; the second is recorded with ``reused_from``. The reward, and so the choice, uses the
accuracy of the proxy (the paper's criterion) or an objective (``mnas``, ``v2``) whose cost terms
are those of the full-size scaled network. Only points that satisfy the constraint can be chosen;
the reference (1.2, 1.1, 1.15) is trained and ranked beside them for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from nas.compound import CONSTRAINTS, GridPoint, enumerate_grid
from nas.engine import Engine, Plan, Stage, proposals_in_order, with_v2_references
from nas.errors import ConfigError, StorageError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.search import check_budget_flags, check_device, from_known_fields, objective_options, training_budget
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord, run_exists
from search_spaces.grid import AXES, CompoundGridSpace, coordinates

KIND = "scale-grid"
STAGE = "grid"
# scaling.csv columns, in order.
SCALING_COLUMNS = ("trial", "alpha", "beta", "gamma", "reference", "in_constraint", "predicted", "actual", "depth",
                   "width", "resolution", "proxy_resolution", "macs", "params", "status", "accuracy", "reward",
                   "rank", "chosen", "step_time_ms", "wall_time_s", "reused_from", "key")


@dataclass(frozen=True)
class ScaleGridConfig:
    """Everything that defines a grid run; stored in ``RUN/run.json`` so that a resume repeats it."""

    base: Mapping[str, Any]  # the base ArchSpec as a dict (before adapting it to the dataset)
    base_source: str = ""
    phi: float = 1.0
    step: float = 0.05
    max: float = 1.5
    tol: float = 0.1
    constraint: str = "formula"
    objective: str = "accuracy"
    cost: str = "macs"
    target: str | None = None
    w: float | None = None
    v: float | None = None
    step_time_ref_ms: float | None = None
    params_ref: float | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: float | None = None
    batch_size: int | None = None
    proxy_width: float = 0.5
    proxy_depth: float = 0.5
    proxy_resolution: int = 32
    runner: str = "local"
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    data_cache: str | None = None  # as SearchConfig's
    rebuild_cache: bool = False

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {self.constraint!r}; valid: {', '.join(CONSTRAINTS)}",
                              field="constraint")
        check_budget_flags(self.epochs, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base"] = dict(self.base)
        data["runner_options"] = dict(self.runner_options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScaleGridConfig":
        return from_known_fields(cls, data)


@dataclass
class ScaleGridResult:
    run_dir: Path
    store: RunStore
    points: list[GridPoint]
    chosen: TrialRecord | None
    trained: int  # points actually trained in this invocation
    reused: int  # points answered by an identical proxy trained earlier
    wall_time_s: float


@dataclass(frozen=True)
class SearchConfigView:
    """The reward settings of a grid config under the names :func:`objective_options` reads."""

    objective: str
    cost: str
    target: str | None
    constraint: str
    w: float | None
    v: float | None
    step_time_ref_ms: float | None
    params_ref: float | None

    @classmethod
    def of(cls, config: ScaleGridConfig) -> "SearchConfigView":
        return cls(config.objective, config.cost, config.target, "soft", config.w, config.v,
                   config.step_time_ref_ms, config.params_ref)


def grid_objective(config: ScaleGridConfig, stored: Mapping[str, Any] | None = None) -> Any:
    """The ranking: accuracy (the paper's criterion) or a search objective on the full-size cost.

    The grid's own ``constraint`` (formula / actual) is not the mnas reward's; the reward keeps its
    soft constraint.
    """
    from objectives import make_objective

    return make_objective(config.objective, **objective_options(SearchConfigView.of(config), stored))


class ScaleGrid:
    """One grid run; :meth:`run` trains every point not yet stored."""

    def __init__(self, config: ScaleGridConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_point: Callable[[TrialRecord, int, int], None] | None = None) -> None:
        self.out = Path(out)
        self.on_point = on_point
        if resume:
            self.store: RunStore | None = RunStore.open(self.out, storage)
            if self.store.config.get("kind") != KIND:
                raise StorageError(f"{self.out} holds a {self.store.config.get('kind', 'search')} run, not a "
                                   f"scaling grid; resume it with its own command")
            config = ScaleGridConfig.from_dict(self.store.config)
        else:
            self.store = None
            if run_exists(self.out):
                raise StorageError(f"{self.out} already holds a run; resume it or choose another output folder",
                                   field="out")
        self.config = config
        self._prepare()  # every name and number is checked before any file is written
        if self.store is None:
            refs = with_v2_references(objective_options(SearchConfigView.of(config)), config.objective, self.base,
                                      self.space.proxies[0], self.data_ref, self.dataset, self.budget,
                                      config.device)
            if refs:
                self.config = replace(config, **refs)
                self.objective = grid_objective(self.config)
            self.store = RunStore.create(self.out, self.config.to_dict(), storage, kind=KIND)

    # ---------------------------------------------------------------------------- set-up
    def _prepare(self) -> None:
        from runners import RUNNERS, check_runner
        from runners.base import cached_dataset, dataset_ref
        from search_spaces import ProxyConfig
        from nas.errors import unknown_name
        from objectives import OBJECTIVES

        c = self.config
        if c.objective not in OBJECTIVES:
            raise unknown_name("objective", c.objective, list(OBJECTIVES))
        if c.runner not in RUNNERS:
            raise unknown_name("runner", c.runner, list(RUNNERS))
        check_device(c.device, c.runner)
        check_runner(c.runner, c.runner_options)
        base = ArchSpec.from_dict(c.base)
        self.data_ref = dataset_ref(c)
        self.dataset = cached_dataset(self.data_ref)
        # The full-size base for this dataset: its classes and channels, at the base's own resolution.
        self.base = base.with_(num_classes=self.dataset.num_classes, in_chans=self.dataset.in_chans)
        proxy = ProxyConfig(width=c.proxy_width, depth=c.proxy_depth, resolution=c.proxy_resolution)
        points = enumerate_grid(self.base, phi=c.phi, step=c.step, high=c.max, tol=c.tol, constraint=c.constraint)
        self.space = CompoundGridSpace(self.base, tuple(points), proxy)
        self.points = list(self.space.points)
        self.objective = grid_objective(c, self.store.config if self.store is not None else None)
        self.budget = training_budget(c.seed, c.epochs, c.batch_size)
        self.decisions = self.space.decisions

    def stage(self) -> Stage:
        """The grid as an engine stage: the points the store does not hold yet, in order."""
        assert self.store is not None
        held = {tuple(r.indices) for r in self.store.records(STAGE)}
        held |= {tuple(r.indices) for r in self.store.reservations(STAGE)}
        todo = [self.space.choices_of(p) for p in self.points if self.space.choices_of(p) not in held]

        def plan(choices: tuple[int, ...]) -> Plan:
            i = self.space.index(choices)
            return Plan(self.points[i].spec, self.space.proxies[i], self.budget, self.space.extra_values(i))

        return Stage(STAGE, self.decisions, proposals_in_order(self.decisions, todo), len(self.points), plan)

    # ------------------------------------------------------------------------------- loop
    def run(self) -> ScaleGridResult:
        assert self.store is not None
        c = self.config

        def on_trial(record: TrialRecord, done: int, total: int) -> None:
            self.write_outputs()
            if self.on_point is not None:
                self.on_point(record, done, total)

        engine = Engine(self.store, self.objective, self.dataset, self.data_ref, c.device, c.runner,
                        c.runner_options, measure_full_latency=getattr(self.objective, "cost", None) == "latency",
                        on_trial=on_trial)
        try:
            result = engine.run(self.stage())
        finally:
            engine.close()
        self.write_outputs()
        return ScaleGridResult(self.out, self.store, self.points, self.chosen(), result.trained, result.reused,
                               result.wall_time_s)

    # ---------------------------------------------------------------------------- outputs
    def ranked(self) -> list[TrialRecord]:
        """Points that satisfy the constraint and trained, best reward first (ties: earlier trial)."""
        assert self.store is not None
        ok = [r for r in self.store.records(STAGE) if r.metrics.ok and r.reward is not None
              and r.values.get("in_constraint", 1.0) == 1.0]
        return sorted(ok, key=lambda r: (-r.reward, r.number))

    def chosen(self) -> TrialRecord | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def dataframe(self):
        """scaling.csv: every grid point (trained or not yet) with its ratios, accuracy and rank."""
        import pandas as pd

        assert self.store is not None
        by_coords = {coordinates(r.choices): r for r in self.store.records(STAGE)}
        ranks = {r.number: n for n, r in enumerate(self.ranked(), 1)}
        chosen = self.chosen()
        rows = []
        for point, proxy in zip(self.points, self.space.proxies):
            row = point.row()
            row["proxy_resolution"] = proxy.resolution
            r = by_coords.get(coordinates({n: getattr(point, n) for n in AXES}))
            if r is None:
                row.update(trial=None, status="pending")
            else:
                row.update(trial=r.number, status=r.metrics.status, accuracy=r.metrics.accuracy, reward=r.reward,
                           rank=ranks.get(r.number), chosen=chosen is not None and r.number == chosen.number,
                           step_time_ms=r.metrics.step_time_ms, wall_time_s=r.metrics.wall_time_s,
                           reused_from=r.reused_from)
            rows.append(row)
        frame = pd.DataFrame(rows).reindex(columns=list(SCALING_COLUMNS))
        frame["chosen"] = frame["chosen"].eq(True)
        return frame

    def summary(self) -> dict[str, Any] | None:
        """scaling.json: the chosen alpha, beta, gamma and enough context to apply them."""
        chosen = self.chosen()
        if chosen is None:
            return None
        assert self.store is not None
        c = self.config
        records = self.store.records(STAGE)
        reference = next((r for r in records if r.values.get("reference") == 1.0), None)
        return {
            "alpha": float(chosen.choices["alpha"]), "beta": float(chosen.choices["beta"]),
            "gamma": float(chosen.choices["gamma"]), "phi": c.phi, "trial": chosen.number,
            "accuracy": chosen.metrics.accuracy, "reward": chosen.reward,
            "ranked_by": "accuracy" if c.objective == "accuracy" else f"objective {c.objective}",
            "predicted": chosen.values.get("predicted"), "actual": chosen.values.get("actual"),
            "macs": chosen.values.get("macs"), "params": chosen.values.get("params"),
            "reference": None if reference is None else {
                "alpha": float(reference.choices["alpha"]), "beta": float(reference.choices["beta"]),
                "gamma": float(reference.choices["gamma"]), "accuracy": reference.metrics.accuracy,
                "reward": reference.reward, "in_constraint": reference.values.get("in_constraint") == 1.0},
            "constraint": c.constraint, "tol": c.tol, "step": c.step, "max": c.max,
            "points": len(self.points), "evaluated": len(records), "complete": len(records) >= len(self.points),
            "base_source": c.base_source, "base_key": self.base.key(), "base": dict(c.base),
            "spec": chosen.spec.to_dict(), "key": chosen.key,
        }

    def write_outputs(self) -> None:
        assert self.store is not None
        atomic_write_text(self.out / "trials.csv", self.store.dataframe().to_csv(index=False))
        atomic_write_text(self.out / "scaling.csv", self.dataframe().to_csv(index=False))
        summary = self.summary()
        if summary is not None:
            atomic_write_json(self.out / "scaling.json", summary)


def run_scale_grid(config: ScaleGridConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                   on_point: Callable[[TrialRecord, int, int], None] | None = None) -> ScaleGridResult:
    """Run (or resume) a scaling grid; the Python face of ``nas scale grid``."""
    return ScaleGrid(config, out, storage=storage, resume=resume, on_point=on_point).run()


__all__ = ["KIND", "SCALING_COLUMNS", "ScaleGrid", "ScaleGridConfig", "ScaleGridResult", "run_scale_grid"]
