"""Persistence of a search: one Optuna study per run, in any RDB storage (a SQLite file by default).

A trial is written once, when its candidate has finished (``study.add_trial``), so the storage
never holds a half-done trial: a killed run loses only candidates that were still training. Each
trial keeps the decisions as Optuna params, the reward as its value, and everything else (metrics,
block strings, the full-size spec) as user attributes, so ``optuna-dashboard`` shows a search as it
is. The run folder also holds ``run.json`` (the configuration and the storage URL), ``trials.csv``
and ``b0.json``, rewritten atomically after each trial.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.errors import StorageError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.metrics import Metrics
from nas.spec import ArchSpec

STUDY_NAME = "nas-search"
RUN_FILE = "run.json"

# trials.csv columns, in order; param_<decision> columns follow.
COLUMNS = ("trial", "status", "reward", "accuracy", "macs", "params", "step_time_ms", "latency_ms", "arch", "key",
           "proxy_macs", "loss", "epochs", "wall_time_s", "error", "reused_from")


@dataclass(frozen=True)
class TrialRecord:
    """Everything stored about one evaluated proposal."""

    choices: Mapping[str, Any]  # decision name -> chosen option value
    indices: tuple[int, ...]
    metrics: Metrics
    spec: ArchSpec  # full-size candidate
    arch: str  # block strings of the full-size candidate
    key: str
    reward: float | None
    values: Mapping[str, float] = field(default_factory=dict)
    reused_from: int | None = None
    number: int | None = None  # filled in by the store

    def row(self) -> dict[str, Any]:
        m = self.metrics
        data = {
            "trial": self.number, "status": m.status, "reward": self.reward, "accuracy": m.accuracy,
            "macs": self.values.get("macs", m.macs), "params": self.values.get("params", m.params),
            "step_time_ms": m.step_time_ms, "latency_ms": self.values.get("latency_ms", m.latency_ms),
            "arch": self.arch, "key": self.key, "proxy_macs": m.proxy_macs, "loss": m.loss, "epochs": m.epochs,
            "wall_time_s": m.wall_time_s, "error": m.error, "reused_from": self.reused_from,
        }
        for name, value in self.choices.items():
            data[f"param_{name}"] = value
        return data


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"


def _open_storage(url: str):
    import optuna

    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite")
                                          else None)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url!r}: {reason}") from None


def _check_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"--out {run_dir}: cannot create folder ({exc.strerror})") from None
    if not os.access(run_dir, os.W_OK):
        raise StorageError(f"--out {run_dir}: folder is not writable")
    probe = run_dir / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"--out {run_dir}: folder is not writable ({exc.strerror})") from None


def run_exists(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RUN_FILE).exists()


class RunStore:
    """A run folder plus its Optuna study."""

    def __init__(self, run_dir: Path, storage_url: str, study: Any, config: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.storage_url = storage_url
        self.study = study
        self.config = config

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, run_dir: str | Path, config: Mapping[str, Any], storage: str | None = None,
               kind: str = "search") -> "RunStore":
        """A new run; refuses a folder that already holds one (use :meth:`open` to resume)."""
        import optuna

        run_dir = Path(run_dir)
        if run_exists(run_dir):
            raise StorageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        _check_writable(run_dir)
        url = storage or default_storage_url(run_dir)
        backend = _open_storage(url)
        study_name = f"{STUDY_NAME}:{run_dir.resolve().name}" if storage else STUDY_NAME
        try:
            study = optuna.create_study(storage=backend, study_name=study_name, direction="maximize",
                                        load_if_exists=False)
        except optuna.exceptions.DuplicatedStudyError:
            raise StorageError(f"storage {url!r} already has a study named {study_name!r}; choose another --out")
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot create a study in {url!r}: {str(exc).splitlines()[0]}") from None
        full = {"kind": kind, "storage": url, "study_name": study_name, **dict(config)}
        study.set_user_attr("config", json.loads(json.dumps(full, default=str)))
        atomic_write_json(run_dir / RUN_FILE, full)
        return cls(run_dir, url, study, full)

    @classmethod
    def open(cls, run_dir: str | Path, storage: str | None = None) -> "RunStore":
        """An existing run, for resuming or reading."""
        import optuna

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise StorageError(f"{run_dir}: no such run folder")
        run_file = run_dir / RUN_FILE
        if not run_file.exists():
            raise StorageError(f"{run_dir}: no study here (no {RUN_FILE}); is this the --out of a search?")
        try:
            config = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StorageError(f"{run_file}: unreadable run file ({exc})") from None
        url = storage or config.get("storage") or default_storage_url(run_dir)
        backend = _open_storage(url)
        try:
            study = optuna.load_study(study_name=config.get("study_name", STUDY_NAME), storage=backend)
        except KeyError:
            raise StorageError(f"{run_dir}: storage {url!r} holds no study {config.get('study_name')!r}") from None
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"{run_dir}: cannot load the study from {url!r}: {str(exc).splitlines()[0]}") from None
        return cls(run_dir, url, study, config)

    # ----------------------------------------------------------------------------- writing
    def record(self, record: TrialRecord, decisions: Sequence[Any]) -> TrialRecord:
        """Persist one finished candidate; returns the record with its trial number."""
        import optuna
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState

        from dataclasses import replace

        m = record.metrics
        state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(m.status, TrialState.FAIL)
        if state == TrialState.COMPLETE and (record.reward is None or not math.isfinite(record.reward)):
            state = TrialState.FAIL
        distributions = {d.name: CategoricalDistribution(list(d.options)) for d in decisions}
        attrs = {
            "status": m.status, "metrics": m.to_dict(), "spec": record.spec.to_dict(), "arch": record.arch,
            "key": record.key, "indices": list(record.indices), "values": dict(record.values),
            "reused_from": record.reused_from, "reward": record.reward,
        }
        trial = optuna.trial.create_trial(
            state=state, value=record.reward if state == TrialState.COMPLETE else None,
            params=dict(record.choices), distributions=distributions, user_attrs=attrs,
            intermediate_values={i: float(a) for i, a in enumerate(m.history)},
        )
        self.study.add_trial(trial)
        number = len(self.study.get_trials(deepcopy=False)) - 1
        return replace(record, number=number)

    # ----------------------------------------------------------------------------- reading
    def records(self) -> list[TrialRecord]:
        out = []
        for t in self.study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if "metrics" not in attrs:
                continue
            out.append(TrialRecord(
                choices=dict(t.params), indices=tuple(attrs.get("indices", ())),
                metrics=Metrics.from_dict(attrs["metrics"]), spec=ArchSpec.from_dict(attrs["spec"]),
                arch=attrs.get("arch", ""), key=attrs.get("key", ""), reward=attrs.get("reward"),
                values=attrs.get("values", {}), reused_from=attrs.get("reused_from"), number=t.number))
        return out

    def dataframe(self):
        import pandas as pd

        rows = [r.row() for r in self.records()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            frame = pd.DataFrame(columns=list(COLUMNS))
        ordered = list(COLUMNS) + sorted(c for c in frame.columns if c not in COLUMNS)
        return frame.reindex(columns=ordered)

    def best(self) -> TrialRecord | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def ranked(self, unique: bool = True) -> list[TrialRecord]:
        """Successful candidates by reward, best first; repeats of one network appear once."""
        seen, out = set(), []
        candidates = [r for r in self.records() if r.metrics.ok and r.reward is not None]
        for r in sorted(candidates, key=lambda r: (-r.reward, r.number)):
            if unique and r.key in seen:
                continue
            seen.add(r.key)
            out.append(r)
        return out

    def trial_spec(self, number: int) -> TrialRecord:
        for r in self.records():
            if r.number == number:
                return r
        raise StorageError(f"{self.run_dir}: no trial {number}")

    def best_spec(self, number: int) -> ArchSpec:
        return self.trial_spec(number).spec

    def write_outputs(self) -> None:
        """Rewrite trials.csv and b0.json from the study (atomically)."""
        atomic_write_text(self.run_dir / "trials.csv", self.dataframe().to_csv(index=False))
        best = self.best()
        if best is not None:
            atomic_write_json(self.run_dir / "b0.json", b0_document(best, self.config))


def b0_document(record: TrialRecord, config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "trial": record.number, "reward": record.reward, "arch": record.arch, "key": record.key,
        "spec": record.spec.to_dict(), "metrics": record.metrics.to_dict(), "values": dict(record.values),
        "choices": dict(record.choices), "search": {k: config.get(k) for k in
                                                    ("space", "dataset", "objective", "controller", "proxy")},
    }


def open_run(run_dir: str | Path, storage: str | None = None) -> RunStore:
    """Open an existing run folder for reading (``nas results``, ``nas pareto``, ``nas scale``)."""
    return RunStore.open(run_dir, storage)
