"""Persistence of a run: one Optuna study in any RDB storage (a SQLite file by default) plus the run folder.

Every candidate is one Optuna trial with a life of two steps:

1. :meth:`RunStore.reserve` creates it ``RUNNING`` before its network trains, with the decisions as
   params and the network, stage and training key as user attributes. The storage hands out trial
   numbers under a lock, so several processes sharing one study (``study_name``) get unique numbers,
   and the reservation is what makes a shared budget exact: a process counts every reservation
   below its own before it trains (see :meth:`within_budget`).
2. :meth:`RunStore.complete` fills in the metrics and the reward (or the objective's raw values for a
   multi-objective study) and finishes the trial ``COMPLETE``, ``PRUNED`` or ``FAIL``.

A process that dies leaves its reservations ``RUNNING``. The same run folder resumed adopts them
(they are its own: the run folder's ``owner`` id is stored on each); another process sharing the
study sees them go stale once their heartbeat stops (Optuna's RDB heartbeat) and fails them with
:meth:`fail_stale`. A reservation that ends without metrics (given up, over budget, stale) is not a
candidate: it is skipped by :meth:`records` and by every count.

The run folder holds ``run.json`` (the configuration, the storage URL and study name, what
``--resume`` repeats), and the outputs rewritten after each trial: ``trials.csv`` and ``b0.json``.
"""

from __future__ import annotations

import json
from datetime import datetime
import math
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.errors import StorageError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.metrics import Metrics
from nas.spec import ArchSpec

STUDY_NAME = "nas-search"
RUN_FILE = "run.json"
# How often a process marks its reservations alive, and after how long without a beat a reservation
# is taken to belong to a dead process. The environment may shorten both (tests kill processes).
HEARTBEAT_S = int(os.environ.get("SCALENAS_HEARTBEAT_S", "5"))
GRACE_S = int(os.environ.get("SCALENAS_GRACE_S", "30"))
# Configuration keys that may differ between processes sharing one study (they say where and how a
# process runs, not what is searched).
LOCAL_KEYS = frozenset({"runner", "runner_options", "device", "storage", "study_name", "owner", "kind_version"})

# trials.csv columns, in order; param_<decision> columns follow.
COLUMNS = ("trial", "status", "reward", "accuracy", "macs", "params", "step_time_ms", "latency_ms", "arch", "key",
           "proxy_macs", "loss", "epochs", "wall_time_s", "error", "reused_from", "stage", "minival_size",
           "accuracy_low", "accuracy_high", "at_chance", "predicted_latency_ms")


@dataclass(frozen=True)
class TrialRecord:
    """Everything stored about one evaluated proposal."""

    choices: Mapping[str, Any]  # decision name -> chosen option value
    indices: tuple[int, ...]
    metrics: Metrics
    spec: ArchSpec  # full-size candidate
    arch: str  # block strings of the full-size candidate
    key: str  # the full-size network's key
    reward: float | None
    values: Mapping[str, float] = field(default_factory=dict)
    reused_from: int | None = None
    number: int | None = None  # filled in by the store
    stage: str = "search"
    train_key: str = ""  # what was trained and how (proxy network + budget): the dedupe key
    owner: str = ""

    def row(self) -> dict[str, Any]:
        from nas.stats import at_chance, wilson_interval

        m = self.metrics
        low = high = chance = None
        if m.accuracy is not None and m.minival_size:
            low, high = wilson_interval(round(m.accuracy * m.minival_size), m.minival_size)
            chance = at_chance(m.accuracy, m.minival_size, self.spec.num_classes)
        data = {
            "trial": self.number, "status": m.status, "reward": self.reward, "accuracy": m.accuracy,
            "macs": self.values.get("macs", m.macs), "params": self.values.get("params", m.params),
            "step_time_ms": m.step_time_ms, "latency_ms": self.values.get("latency_ms", m.latency_ms),
            "arch": self.arch, "key": self.key, "proxy_macs": m.proxy_macs, "loss": m.loss, "epochs": m.epochs,
            "wall_time_s": m.wall_time_s, "error": m.error, "reused_from": self.reused_from, "stage": self.stage,
            "minival_size": m.minival_size or None, "accuracy_low": low, "accuracy_high": high, "at_chance": chance,
            "predicted_latency_ms": self.values.get("predicted_latency_ms"),
        }
        for name, value in self.choices.items():
            data[f"param_{name}"] = value
        return data


@dataclass(frozen=True)
class Reservation:
    """A trial that is training (or was, in a process that died)."""

    number: int
    trial_id: int
    stage: str
    train_key: str
    indices: tuple[int, ...]
    owner: str


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"


def without_password(url: str) -> str:
    """The URL as stored and shown: no password (libpq then reads PGPASSWORD or ~/.pgpass)."""
    try:
        from sqlalchemy.engine import URL, make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: shown as given
        return url
    if parsed.password is None:
        return url
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host, port=parsed.port,
                      database=parsed.database, query=parsed.query)
    return bare.render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The URL for messages: its password as ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


_SCHEMA_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key value")


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether opening failed because another process created the same new schema at the same moment."""
    return any(marker in str(exc) for marker in _SCHEMA_RACE)


def _open_storage(url: str):
    import optuna

    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    if url.startswith("sqlite"):
        # Several processes may write one SQLite file: wait for the lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": 10}
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, **kwargs)
            except Exception as exc:  # noqa: BLE001
                # Two processes opening one new database at once: both create the schema, and the later
                # one finds the other's tables or version row. The schema is there now: open it again.
                if not _lost_schema_race(exc) or attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except ModuleNotFoundError as exc:  # the URL names a database whose driver is not installed
        hint = " (pip install 'psycopg[binary]', or pip install -e '.[postgresql]')" if "psycopg" in str(exc) \
            else ""
        raise StorageError(f"cannot open storage {shown(url)!r}: its driver is not installed: {exc}{hint}",
                           field="storage") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        reason = _first_line(exc)
        if "password" in reason and without_password(url) == url and not url.startswith("sqlite"):
            reason += ("; run folders never store passwords: give the storage URL with its password again, "
                       "or set PGPASSWORD (or ~/.pgpass)")
        raise StorageError(f"cannot open storage {shown(url)!r}: {reason}", field="storage") from None


def _check_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"out {run_dir}: cannot create folder ({exc.strerror})", field="out") from None
    if not os.access(run_dir, os.W_OK):
        raise StorageError(f"out {run_dir}: folder is not writable", field="out")
    probe = run_dir / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"out {run_dir}: folder is not writable ({exc.strerror})", field="out") from None


def run_exists(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RUN_FILE).exists()


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(data), default=str))


def config_difference(stored: Mapping[str, Any], given: Mapping[str, Any]) -> str | None:
    """The first setting that differs between two run configurations (ignoring :data:`LOCAL_KEYS`)."""
    a, b = _plain(stored), _plain(given)
    for key in sorted(set(a) | set(b)):
        if key in LOCAL_KEYS:
            continue
        if a.get(key) != b.get(key):
            return f"{key} is {a.get(key)!r} there, {b.get(key)!r} here"
    return None


class RunStore:
    """A run folder plus its Optuna study."""

    def __init__(self, run_dir: Path, storage_url: str, study: Any, config: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.storage_url = storage_url
        self.study = study
        self.config = config
        self.owner: str = config.get("owner", "")

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, run_dir: str | Path, config: Mapping[str, Any], storage: str | None = None,
               kind: str = "search", study_name: str | None = None,
               metrics: Sequence[tuple[str, str]] = (("reward", "maximize"),)) -> "RunStore":
        """A new run folder; refuses a folder that already holds one (use :meth:`open` to resume).

        ``study_name`` names the study in ``storage``: a new name creates it, an existing one is
        joined when its configuration matches (several processes then work on one search).
        ``metrics`` are the study's (name, direction) pairs: the reward, or the objective's raw values
        for a multi-objective controller (optuna-dashboard then shows their Pareto front).
        """
        import optuna

        run_dir = Path(run_dir)
        if run_exists(run_dir):
            raise StorageError(f"{run_dir} already holds a run; resume it or choose another output folder",
                               field="out")
        _check_writable(run_dir)
        url = storage or default_storage_url(run_dir)
        backend = _open_storage(url)
        if study_name is None:
            study_name = f"{STUDY_NAME}:{run_dir.resolve().name}" if storage else STUDY_NAME
        full = {"kind": kind, **dict(config), "storage": without_password(url), "study_name": study_name,
                "owner": uuid.uuid4().hex[:12], "metrics": [list(m) for m in metrics]}
        names, directions = [m[0] for m in metrics], [m[1] for m in metrics]
        try:
            study = optuna.create_study(storage=backend, study_name=study_name, directions=directions,
                                        load_if_exists=True)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot create a study in {shown(url)!r}: {_first_line(exc)}", field="storage") from None
        shared = study.user_attrs.get("config")
        if shared is None:
            study.set_user_attr("config", _plain(full))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)
        else:
            difference = config_difference(shared, full)
            if difference is not None:
                raise StorageError(f"storage {shown(url)!r} already has a study named {study_name!r} for another "
                                   f"search ({difference}); choose another study name", field="study_name")
            full["trials"] = shared.get("trials", full.get("trials"))
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
            raise StorageError(f"{run_dir}: no study here (no {RUN_FILE}); is this the output folder of a search?")
        try:
            config = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StorageError(f"{run_file}: unreadable run file ({exc})") from None
        url = storage or config.get("storage") or default_storage_url(run_dir)
        backend = _open_storage(url)
        try:
            study = optuna.load_study(study_name=config.get("study_name", STUDY_NAME), storage=backend)
        except KeyError:
            raise StorageError(f"{run_dir}: storage {shown(url)!r} holds no study {config.get('study_name')!r}") from None
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"{run_dir}: cannot load the study from {shown(url)!r}: {_first_line(exc)}") from None
        return cls(run_dir, url, study, config)

    @property
    def metric_names(self) -> list[str]:
        return [m[0] for m in self.config.get("metrics", [["reward", "maximize"]])]

    @property
    def multi_objective(self) -> bool:
        return len(self.metric_names) > 1 or self.metric_names != ["reward"]

    # ----------------------------------------------------------------------------- writing
    def reserve(self, stage: str, choices: Mapping[str, Any], indices: Sequence[int], decisions: Sequence[Any],
                spec: ArchSpec, arch: str, train_key: str) -> int:
        """Create the RUNNING trial of a candidate about to be trained (or reused); returns its number."""
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import FrozenTrial, TrialState

        storage = self.study._storage
        distributions = {d.name: CategoricalDistribution(list(d.options)) for d in decisions}
        attrs = {"stage": stage, "train_key": train_key, "key": spec.key(), "arch": arch, "spec": spec.to_dict(),
                 "indices": [int(i) for i in indices], "owner": self.owner}
        template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                               datetime_complete=None, params=dict(choices), distributions=distributions,
                               user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=-1)
        try:
            trial_id = storage.create_new_trial(self.study._study_id, template_trial=template)
            storage.record_heartbeat(trial_id)
            return storage.get_trial_number_from_id(trial_id)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"storage {shown(self.storage_url)!r}: cannot add a trial: {_first_line(exc)}") from None

    def complete(self, number: int, record: TrialRecord) -> TrialRecord:
        """Finish a reserved trial with its metrics; returns the record with its number."""
        import optuna
        from optuna.trial import TrialState

        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        m = record.metrics
        state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(m.status, TrialState.FAIL)
        values = self._study_values(record) if state == TrialState.COMPLETE else None
        if state == TrialState.COMPLETE and values is None:
            state = TrialState.FAIL
        attrs = {"status": m.status, "metrics": m.to_dict(), "values": dict(record.values),
                 "reused_from": record.reused_from, "reward": record.reward}
        try:
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
            for step, accuracy in enumerate(m.history):
                storage.set_trial_intermediate_value(trial_id, step, float(accuracy))
            storage.set_trial_state_values(trial_id, state, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise StorageError(f"trial {number} was given up by another process while this one trained it "
                               "(its heartbeat stopped for longer than the grace period)") from None
        return replace(record, number=number, owner=self.owner)

    def record(self, record: TrialRecord, decisions: Sequence[Any]) -> TrialRecord:
        """Reserve and complete in one step: store an already evaluated candidate (imports, tests)."""
        number = self.reserve(record.stage, record.choices, record.indices, decisions, record.spec, record.arch,
                              record.train_key or record.key)
        return self.complete(number, record)

    def _study_values(self, record: TrialRecord) -> list[float] | None:
        if not self.multi_objective:
            ok = record.reward is not None and math.isfinite(record.reward)
            return [float(record.reward)] if ok else None
        out = []
        for name in self.metric_names:
            value = record.reward if name == "reward" else record.values.get(name)
            if value is None or not math.isfinite(float(value)):
                return None
            out.append(float(value))
        return out

    def give_up(self, number: int, reason: str) -> None:
        """End a reservation without a candidate (over budget, adopted elsewhere): FAIL, no metrics."""
        import optuna
        from optuna.trial import TrialState

        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        try:
            storage.set_trial_user_attr(trial_id, "given_up", reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def heartbeat(self, numbers: Sequence[int]) -> None:
        """Mark this process's reservations alive (called every :data:`HEARTBEAT_S` while they train)."""
        storage = self.study._storage
        for number in numbers:
            try:
                storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(self.study._study_id,
                                                                                          number))
            except Exception:  # noqa: BLE001 - a missed heartbeat is retried at the next beat
                pass

    def fail_stale(self) -> None:
        """Fail reservations of processes that stopped beating (they died)."""
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    # ----------------------------------------------------------------------------- reading
    def _trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def records(self, stage: str | None = None) -> list[TrialRecord]:
        """Finished candidates (optionally of one stage), in trial order."""
        out = []
        for t in self._trials():
            attrs = t.user_attrs
            if "metrics" not in attrs or t.state.name == "RUNNING":
                continue
            record_stage = attrs.get("stage", "search")
            if stage is not None and record_stage != stage:
                continue
            out.append(TrialRecord(
                choices=dict(t.params), indices=tuple(attrs.get("indices", ())),
                metrics=Metrics.from_dict(attrs["metrics"]), spec=ArchSpec.from_dict(attrs["spec"]),
                arch=attrs.get("arch", ""), key=attrs.get("key", ""), reward=attrs.get("reward"),
                values=attrs.get("values", {}), reused_from=attrs.get("reused_from"), number=t.number,
                stage=record_stage, train_key=attrs.get("train_key", ""), owner=attrs.get("owner", "")))
        return out

    def reservations(self, stage: str | None = None) -> list[Reservation]:
        """Trials still RUNNING (training somewhere, or left by a process that died)."""
        out = []
        for t in self._trials():
            if t.state.name != "RUNNING" or "train_key" not in t.user_attrs:
                continue
            attrs = t.user_attrs
            if stage is not None and attrs.get("stage", "search") != stage:
                continue
            out.append(Reservation(t.number, t._trial_id, attrs.get("stage", "search"), attrs["train_key"],
                                   tuple(attrs.get("indices", ())), attrs.get("owner", "")))
        return out

    def counted(self, stage: str, below: int | None = None) -> int:
        """Candidates of ``stage``, finished or training (optionally only those numbered below ``below``)."""
        n = 0
        for t in self._trials():
            if below is not None and t.number >= below:
                continue
            attrs = t.user_attrs
            if attrs.get("stage", "search") != stage or "train_key" not in attrs and "metrics" not in attrs:
                continue
            if t.state.name == "RUNNING" or "metrics" in attrs:
                n += 1
        return n

    def within_budget(self, number: int, stage: str, budget: int) -> bool:
        """Whether reservation ``number`` is one of the first ``budget`` candidates of its stage."""
        return self.counted(stage, below=number) < budget

    def trained_record(self, train_key: str) -> TrialRecord | None:
        """The finished trial that trained ``train_key`` (not a reuse of it), if any."""
        for record in self.records():
            if record.train_key == train_key and record.reused_from is None:
                return record
        return None

    def dataframe(self):
        import pandas as pd

        rows = [r.row() for r in self.records()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            frame = pd.DataFrame(columns=list(COLUMNS))
        ordered = list(COLUMNS) + sorted(c for c in frame.columns if c not in COLUMNS)
        return frame.reindex(columns=ordered)

    def ranked(self, unique: bool = True, stage: str = "search") -> list[TrialRecord]:
        """Successful candidates of a stage by reward, best first; repeats of one network appear once."""
        seen, out = set(), []
        candidates = [r for r in self.records(stage) if r.metrics.ok and r.reward is not None]
        for r in sorted(candidates, key=lambda r: (-r.reward, r.number)):
            if unique and r.key in seen:
                continue
            seen.add(r.key)
            out.append(r)
        return out

    def best(self) -> TrialRecord | None:
        """B0: the best candidate by the re-ranked reward when the run re-ranked, else by the search reward."""
        from nas.ranking import choose_b0

        choice = choose_b0(self.records())
        return None if choice is None else choice.record

    def trial_spec(self, number: int) -> TrialRecord:
        for r in self.records():
            if r.number == number:
                return r
        raise StorageError(f"{self.run_dir}: no trial {number}")

    def write_outputs(self) -> None:
        """Rewrite trials.csv and b0.json from the study (atomically)."""
        from nas.ranking import b0_document, choose_b0

        records = self.records()
        atomic_write_text(self.run_dir / "trials.csv", self.dataframe().to_csv(index=False))
        choice = choose_b0(records)
        if choice is not None and self.config.get("kind", "search") == "search":
            atomic_write_json(self.run_dir / "b0.json", b0_document(choice, records, self.config))


def open_run(run_dir: str | Path, storage: str | None = None) -> RunStore:
    """Open an existing run folder for reading (``nas results``, ``nas pareto``, ``nas scale``)."""
    return RunStore.open(run_dir, storage)


__all__ = ["COLUMNS", "RUN_FILE", "Reservation", "RunStore", "STUDY_NAME", "TrialRecord", "config_difference",
           "default_storage_url", "open_run", "run_exists"]
