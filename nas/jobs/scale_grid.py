"""Step 1 of compound scaling on the user's own base: train the alpha/beta/gamma grid and pick a point.

::

    enumerate_grid(base) -> points (reference first) -> each point: proxy_for_point -> runner
        -> Metrics -> reward (accuracy, or an objective) -> the run's store (persisted at once)
    -> scaling.csv (every point, predicted vs actual cost ratio, accuracy, rank)
    -> scaling.json (the chosen alpha, beta, gamma; input of ``nas scale apply --from``)

The grid is a search: its space is :class:`search_spaces.grid.CompoundGridSpace` (decisions
``alpha``/``beta``/``gamma``, one point per grid point), its points are proposed in order, and
:class:`nas.engine.Engine` runs it with the same set-up (:class:`nas.jobs.setup.Job`), loop, store,
dedupe, resume and runners as ``nas search``. What is left here is the grid's configuration and its
writers.

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
are those of the full-size scaled network; the mnas reward keeps its soft constraint here (the
grid's own ``constraint`` is formula / actual). Only points that satisfy the constraint can be
chosen; the reference (1.2, 1.1, 1.15) is trained and ranked beside them for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from nas.compound import CONSTRAINTS, GridPoint, enumerate_grid
from nas.engine import Plan, Stage
from nas.errors import ConfigError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.jobs.setup import Job, JobSettings, fixed_points_stage
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord
from search_spaces.grid import AXES, CompoundGridSpace, coordinates

KIND = "scale-grid"
STAGE = "grid"
# scaling.csv columns, in order.
SCALING_COLUMNS = ("trial", "alpha", "beta", "gamma", "reference", "in_constraint", "predicted", "actual", "depth",
                   "width", "resolution", "proxy_resolution", "macs", "params", "status", "accuracy", "reward",
                   "rank", "chosen", "step_time_ms", "wall_time_s", "reused_from", "key")


@dataclass(frozen=True)
class ScaleGridConfig(JobSettings):
    """Everything that defines a grid run; stored in ``RUN/run.json`` so that a resume repeats it."""

    objective: str = "accuracy"  # the paper's criterion
    base: Mapping[str, Any] = field(default_factory=dict)  # the base ArchSpec as a dict (before the dataset)
    base_source: str = ""
    phi: float = 1.0
    step: float = 0.05
    max: float = 1.5
    tol: float = 0.1
    constraint: str = "formula"  # how points are kept: formula or actual (not the mnas reward's)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base:
            raise ConfigError("base: a scaling grid needs a base network", field="base")
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {self.constraint!r}; valid: {', '.join(CONSTRAINTS)}",
                              field="constraint")


@dataclass
class ScaleGridResult:
    run_dir: Path
    store: RunStore
    points: list[GridPoint]
    chosen: TrialRecord | None
    trained: int  # points actually trained in this invocation
    reused: int  # points answered by an identical proxy trained earlier
    wall_time_s: float


class ScaleGrid(Job):
    """One grid run; :meth:`run` trains every point not yet stored."""

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = ScaleGridConfig
    resumable: ClassVar[tuple[str, ...]] = ("rebuild_cache",)
    config: ScaleGridConfig

    def __init__(self, config: ScaleGridConfig | None, out: str | Path, storage: str | None = None,
                 resume: bool = False, on_point: Callable[[TrialRecord, int, int], None] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(config, out, storage=storage, resume=resume, on_trial=on_point, overrides=overrides)

    def prepare(self) -> None:
        c, data = self.config, self.parts.dataset
        # The full-size base for this dataset: its classes and channels, at the base's own resolution.
        self.base = ArchSpec.from_dict(c.base).with_(num_classes=data.num_classes, in_chans=data.in_chans)
        points = enumerate_grid(self.base, phi=c.phi, step=c.step, high=c.max, tol=c.tol, constraint=c.constraint)
        self.space = CompoundGridSpace(self.base, tuple(points), c.proxy)
        self.points = list(self.space.points)
        self.decisions = self.space.decisions

    def reference_plan(self) -> Plan:
        """The v2 reward's reference: the grid's first point, the paper's (1.2, 1.1, 1.15)."""
        return Plan(self.points[0].spec, self.space.proxies[0], self.parts.budget)

    def stage(self) -> Stage:
        """The grid as an engine stage: the points the store does not hold yet, in order."""
        def plan(choices: tuple[int, ...]) -> Plan:
            i = self.space.index(choices)
            return Plan(self.points[i].spec, self.space.proxies[i], self.parts.budget, self.space.extra_values(i))

        points = [self.space.choices_of(p) for p in self.points]
        return fixed_points_stage(STAGE, self.decisions, points, len(points), plan, self.store)

    # ------------------------------------------------------------------------------- loop
    def run(self) -> ScaleGridResult:
        try:
            with self.running() as engine:
                result = engine.run(self.stage())
            self.write_outputs()
        finally:
            self.close()
        return ScaleGridResult(self.out, self.store, self.points, self.chosen(), result.trained, result.reused,
                               result.wall_time_s)

    # ---------------------------------------------------------------------------- outputs
    def ranked(self) -> list[TrialRecord]:
        """Points that satisfy the constraint and trained, best reward first (ties: earlier trial)."""
        ok = [r for r in self.store.records(STAGE) if r.metrics.ok and r.reward is not None
              and r.values.get("in_constraint", 1.0) == 1.0]
        return sorted(ok, key=lambda r: (-r.reward, r.number))

    def chosen(self) -> TrialRecord | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def dataframe(self) -> Any:
        """scaling.csv: every grid point (trained or not yet) with its ratios, accuracy and rank."""
        import pandas as pd  # pandas: imported when a table is made

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
        """trials.csv, scaling.csv and scaling.json (atomically)."""
        self.store.write_trials_csv()
        atomic_write_text(self.out / "scaling.csv", self.dataframe().to_csv(index=False))
        summary = self.summary()
        if summary is not None:
            atomic_write_json(self.out / "scaling.json", summary)


def run_scale_grid(config: ScaleGridConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                   on_point: Callable[[TrialRecord, int, int], None] | None = None) -> ScaleGridResult:
    """Run (or resume) a scaling grid; the Python face of ``nas scale grid``."""
    return ScaleGrid(config, out, storage=storage, resume=resume, on_point=on_point).run()


__all__ = ["KIND", "SCALING_COLUMNS", "STAGE", "ScaleGrid", "ScaleGridConfig", "ScaleGridResult", "run_scale_grid"]
