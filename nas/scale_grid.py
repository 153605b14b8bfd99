"""Step 1 of compound scaling on the user's own base: train the alpha/beta/gamma grid and pick a point.

::

    enumerate_grid(base) -> points (reference first) -> each point: proxy_for_point -> runner
        -> Metrics -> reward (accuracy, or an objective) -> RunStore.record (persisted at once)
    -> scaling.csv (every point, predicted vs actual cost ratio, accuracy, rank)
    -> scaling.json (the chosen alpha, beta, gamma; input of ``nas scale apply --from``)

A grid run is a run folder like a search's: ``run.json`` (kind ``scale-grid``, the config and the
base spec, so a resume needs no other file), the Optuna study (one trial per point, params
``alpha``/``beta``/``gamma``), ``trials.csv``, ``scaling.csv`` and ``scaling.json``. Each point is
stored as soon as it has trained, so a killed run resumes without retraining a finished point.
No ``b0.json`` is written: the best row of a scaling grid is a B1, not a B0.

What trains: the rule of :func:`nas.compound.proxy_for_point`, the search's proxy (width, depth,
resolution multipliers) grown by the point's depth alpha^phi, width beta^phi and resolution
gamma^phi. Two points whose proxies are the same network (the rounding often merges neighbours)
train once; the second is recorded with ``reused_from``. The reward, and so the choice, uses the
accuracy of the proxy (the paper's criterion) or an objective (``mnas``, ``v2``) whose cost terms
are those of the full-size scaled network. Only points that satisfy the constraint can be chosen;
the reference (1.2, 1.1, 1.15) is trained and ranked beside them for comparison.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from nas.compound import CONSTRAINTS, GridPoint, enumerate_grid, proxy_for_point
from nas.errors import ConfigError, StorageError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.metrics import Metrics
from nas.search import check_budget_flags, from_known_fields
from nas.spec import ArchSpec
from nas.store import RunStore, TrialRecord

KIND = "scale-grid"
DECISIONS = ("alpha", "beta", "gamma")
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

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {self.constraint!r}; valid: {', '.join(CONSTRAINTS)}")
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


def _objective(config: ScaleGridConfig) -> Any:
    """None ranks by accuracy; otherwise the named objective with the search's option rules."""
    if config.objective == "accuracy":
        return None
    from nas.errors import unknown_name
    from nas.search import SearchConfig, objective_options
    from objectives import OBJECTIVES, make_objective

    if config.objective not in OBJECTIVES:
        raise unknown_name("objective", config.objective, ["accuracy", *OBJECTIVES])

    as_search = SearchConfig(objective=config.objective, cost=config.cost, target=config.target, w=config.w,
                             v=config.v, step_time_ref_ms=config.step_time_ref_ms, params_ref=config.params_ref)
    return make_objective(config.objective, **objective_options(as_search))


class ScaleGrid:
    """One grid run; :meth:`run` trains every point not yet stored."""

    def __init__(self, config: ScaleGridConfig, out: str | Path, storage: str | None = None, resume: bool = False,
                 on_point: Callable[[TrialRecord, int, int], None] | None = None) -> None:
        from nas.store import run_exists

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
                raise StorageError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        self.config = config
        self._prepare()  # every name and number is checked before any file is written
        if self.store is None:
            if config.objective == "v2":
                self.config = replace(config, **self._v2_references())
                self.objective = _objective(self.config)
            self.store = RunStore.create(self.out, self.config.to_dict(), storage, kind=KIND)

    # ---------------------------------------------------------------------------- set-up
    def _prepare(self) -> None:
        from runners.base import DatasetRef, cached_dataset
        from search_spaces import ProxyConfig
        from nas.training import TrainBudget

        c = self.config
        base = ArchSpec.from_dict(c.base)
        self.data_ref = DatasetRef(c.dataset, c.data_dir, c.seed)
        self.dataset = cached_dataset(self.data_ref)
        # The full-size base for this dataset: its classes and channels, at the base's own resolution.
        self.base = base.with_(num_classes=self.dataset.num_classes, in_chans=self.dataset.in_chans)
        self.proxy = ProxyConfig(width=c.proxy_width, depth=c.proxy_depth, resolution=c.proxy_resolution)
        self.points = enumerate_grid(self.base, phi=c.phi, step=c.step, high=c.max, tol=c.tol,
                                     constraint=c.constraint)
        self.proxies = [proxy_for_point(self.base, p.coefficients, c.phi, self.proxy) for p in self.points]
        self.objective = _objective(c)
        budget: dict[str, Any] = {"seed": c.seed}
        if c.epochs is not None:
            budget["epochs"] = c.epochs
        if c.batch_size is not None:
            budget["batch_size"] = c.batch_size
        self.budget = TrainBudget(**budget)
        from nas.decisions import Decision

        self.decisions = tuple(Decision(name, tuple(sorted({getattr(p, name) for p in self.points})))
                               for name in DECISIONS)

    def _v2_references(self) -> dict[str, float]:
        """The v2 objective's references: the base's params and its proxy's step time (as the search)."""
        from nas.counting import count
        from runners.base import TrainJob, run_job

        refs: dict[str, float] = {}
        if self.config.params_ref is None:
            refs["params_ref"] = float(count(self.base).params)
        if self.config.step_time_ref_ms is None:
            base_proxy = proxy_for_point(self.base, self.points[0].coefficients, 0, self.proxy)
            job = TrainJob(trial=-1, spec=base_proxy, dataset=self.data_ref, budget=replace(self.budget, steps=12),
                           device=self.config.device)
            metrics = run_job(job, data=self.dataset)
            if not metrics.ok or not metrics.step_time_ms:
                raise ConfigError(f"could not measure the base's step time for the v2 reference: {metrics.error}")
            refs["step_time_ref_ms"] = float(metrics.step_time_ms)
        return refs

    # ------------------------------------------------------------------------------- loop
    def run(self) -> ScaleGridResult:
        from runners import make_runner
        from runners.base import TrainJob

        start = time.perf_counter()
        assert self.store is not None
        done = {self._coords(r.choices): r for r in self.store.records()}
        trained_by_proxy: dict[str, int] = {}  # proxy key -> trial number that trained it
        for r in done.values():
            if r.reused_from is None:
                trained_by_proxy.setdefault(self._proxy_key(r.choices), r.number)
        todo = [i for i, p in enumerate(self.points) if self._coords_of(p) not in done]
        trained = reused = 0
        in_flight: dict[int, int] = {}  # job id (point index) -> point index
        waiting: dict[str, list[int]] = {}  # proxy key in flight -> point indices that share it
        needs_training = any(self.proxies[i].key() not in trained_by_proxy for i in todo)
        runner = make_runner(self.config.runner, device=self.config.device, dataset=self.dataset,
                             data_ref=self.data_ref, run_dir=self.out,
                             **dict(self.config.runner_options)) if needs_training else None
        try:
            queue = list(todo)
            while queue or in_flight:
                while queue and (runner is None or len(in_flight) < runner.capacity):
                    i = queue.pop(0)
                    key = self.proxies[i].key()
                    if key in trained_by_proxy:
                        self._finish_repeat(i, trained_by_proxy[key])
                        reused += 1
                        continue
                    if any(self.proxies[j].key() == key for j in in_flight.values()):
                        waiting.setdefault(key, []).append(i)
                        continue
                    assert runner is not None
                    job = TrainJob(trial=i, spec=self.proxies[i], dataset=self.data_ref, budget=self.budget,
                                   device=self.config.device, full_spec=self.points[i].spec,
                                   measure_full_latency=getattr(self.objective, "cost", None) == "latency",
                                   tag={"alpha": self.points[i].alpha, "beta": self.points[i].beta,
                                        "gamma": self.points[i].gamma})
                    in_flight[i] = i
                    runner.submit(job)
                if not in_flight:
                    continue
                for job, metrics in runner.wait():
                    i = in_flight.pop(job.trial)
                    record = self._finish(i, metrics)
                    trained += 1
                    key = self.proxies[i].key()
                    trained_by_proxy.setdefault(key, record.number)
                    for j in waiting.pop(key, []):
                        self._finish_repeat(j, record.number)
                        reused += 1
        finally:
            if runner is not None:
                runner.close()
        self.write_outputs()
        return ScaleGridResult(self.out, self.store, self.points, self.chosen(), trained, reused,
                               time.perf_counter() - start)

    # ---------------------------------------------------------------------------- helpers
    @staticmethod
    def _coords(choices: Mapping[str, Any]) -> tuple[float, float, float]:
        return tuple(round(float(choices[n]), 10) for n in DECISIONS)  # type: ignore[return-value]

    def _coords_of(self, point: GridPoint) -> tuple[float, float, float]:
        return self._coords({"alpha": point.alpha, "beta": point.beta, "gamma": point.gamma})

    def _index_of(self, choices: Mapping[str, Any]) -> int | None:
        coords = self._coords(choices)
        return next((i for i, p in enumerate(self.points) if self._coords_of(p) == coords), None)

    def _proxy_key(self, choices: Mapping[str, Any]) -> str:
        i = self._index_of(choices)
        return self.proxies[i].key() if i is not None else ""

    def _values(self, point: GridPoint, metrics: Metrics) -> dict[str, float]:
        values = {"macs": float(point.macs), "params": float(point.params), "predicted": point.predicted,
                  "actual": point.actual, "reference": float(point.reference),
                  "in_constraint": float(point.in_constraint)}
        for name in ("accuracy", "step_time_ms", "latency_ms"):
            value = getattr(metrics, name)
            if value is not None:
                values[name] = float(value)
        return values

    def _reward(self, metrics: Metrics, values: Mapping[str, float]) -> float | None:
        if not metrics.ok or metrics.accuracy is None:
            return None
        if self.objective is None:
            return float(metrics.accuracy)
        return float(self.objective.reward(values))

    def _finish(self, i: int, metrics: Metrics, reused_from: int | None = None) -> TrialRecord:
        from nas.search import arch_string

        assert self.store is not None
        point = self.points[i]
        values = self._values(point, metrics)
        choices = {"alpha": point.alpha, "beta": point.beta, "gamma": point.gamma}
        indices = tuple(d.options.index(choices[d.name]) for d in self.decisions)
        record = TrialRecord(choices=choices, indices=indices, metrics=metrics, spec=point.spec,
                             arch=arch_string(point.spec), key=point.spec.key(),
                             reward=self._reward(metrics, values), values=values, reused_from=reused_from)
        record = self.store.record(record, self.decisions)
        self.write_outputs()
        if self.on_point is not None:
            self.on_point(record, len(self.store.records()), len(self.points))
        return record

    def _finish_repeat(self, i: int, original_number: int) -> TrialRecord:
        assert self.store is not None
        return self._finish(i, self.store.trial_spec(original_number).metrics, reused_from=original_number)

    # ---------------------------------------------------------------------------- outputs
    def ranked(self) -> list[TrialRecord]:
        """Points that satisfy the constraint and trained, best reward first (ties: earlier trial)."""
        assert self.store is not None
        ok = [r for r in self.store.records() if r.metrics.ok and r.reward is not None
              and r.values.get("in_constraint", 1.0) == 1.0]
        return sorted(ok, key=lambda r: (-r.reward, r.number))

    def chosen(self) -> TrialRecord | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def dataframe(self):
        """scaling.csv: every grid point (trained or not yet) with its ratios, accuracy and rank."""
        import pandas as pd

        assert self.store is not None
        by_coords = {self._coords(r.choices): r for r in self.store.records()}
        ranks = {r.number: n for n, r in enumerate(self.ranked(), 1)}
        chosen = self.chosen()
        rows = []
        for point, proxy in zip(self.points, self.proxies):
            row = point.row()
            row["proxy_resolution"] = proxy.resolution
            r = by_coords.get(self._coords_of(point))
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
        records = self.store.records()
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
