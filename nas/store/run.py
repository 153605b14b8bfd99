"""A run folder and its study: ``run.json`` (what a resume repeats) and the Optuna study it names.

:class:`RunStore` opens or creates both and hands out the three concerns of a run's persistence:
the records (:mod:`nas.store.records`, decoded once and kept), the reservation protocol
(:mod:`nas.store.reservations`) and the table (:mod:`nas.store.outputs`). Which network is B0 is
the ranking's business (:mod:`nas.ranking`), and each job writes its own outputs.
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.errors import StorageError
from nas.fileio import atomic_write_json, read_json_object
from nas.folder_lock import FolderLock
from nas.spec import ArchSpec
from nas.store.outputs import TrialsCsv, trials_frame
from nas.store.processes import join_study
from nas.store.records import Reservation, TrialLog, TrialRecord
from nas.store.reservations import Reservations
from nas.store.study import (
    STUDY_FILE,
    STUDY_NAME,
    default_storage_url,
    first_line,
    open_storage,
    shown,
    storage_of,
    without_password,
)

RUN_FILE = "run.json"
# Configuration keys that may differ between processes sharing one study (they say where and how a
# process runs, not what is searched).
LOCAL_KEYS = frozenset({"runner", "runner_options", "device", "storage", "study_name", "owner", "process",
                        "kind_version"})


def run_exists(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RUN_FILE).exists()


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """How several runs are named side by side: their folder names, or the paths as given when two share one."""
    names = [Path(r).resolve().name or str(r) for r in run_dirs]
    return names if len(set(names)) == len(names) else [str(r) for r in run_dirs]


def _check_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"out {run_dir}: cannot create folder ({exc.strerror})", field="out") from None
    reason = _unwritable(run_dir)
    if reason is not None:
        raise StorageError(f"out {run_dir}: folder is not writable ({reason})", field="out")


def _unwritable(run_dir: Path) -> str | None:
    """Why nothing can be written in ``run_dir`` (a probe file: permissions do not stop root, a read-only
    mount does), or None."""
    probe = run_dir / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
    """A run folder plus its Optuna study.

    Reading: :meth:`records`, :meth:`reservations`, :meth:`trained_record`, :meth:`dataframe` (each
    reads what changed in the study first). Writing goes through the reservation protocol
    (:meth:`reserve`, :meth:`complete`, ...), whose records join the log without a read.
    A store opened to write (:meth:`create`, :meth:`open` with ``write``) holds the folder's lock
    (:mod:`nas.folder_lock`) until :meth:`close`; a reader holds none.
    """

    def __init__(self, run_dir: Path, storage_url: str, study: Any, config: dict[str, Any], backend: Any,
                 created: bool = False, lock: FolderLock | None = None) -> None:
        from nas.store.trial_rows import TrialRows, study_id_of  # optuna: imported when a study is used

        self.run_dir = run_dir
        self.storage_url = storage_url
        self.study = study
        self.config = config
        self.owner: str = config.get("owner", "")
        self.process: int = int(config.get("process", 0))  # its number in a shared study (nas.store.processes)
        self.created = created  # this process made the folder (a failed set-up may remove it again)
        self.lock = lock
        self.backend = backend
        rows = TrialRows(backend, study_id_of(study))
        self.log = TrialLog(rows)
        self.book = Reservations(study, rows, self.log, self.owner, self.metric_names, storage_url)
        self.trials_csv = TrialsCsv(run_dir)

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, run_dir: str | Path, config: Mapping[str, Any], storage: str | None = None,
               kind: str = "search", study_name: str | None = None,
               metrics: Sequence[tuple[str, str]] = (("reward", "maximize"),)) -> "RunStore":
        """A new run folder; refuses a folder that already holds one (use :meth:`open` to resume).

        ``storage`` None keeps the study in the folder (``study.db``, found wherever the folder is
        later copied or moved). ``study_name`` names the study in ``storage``: a new name creates it,
        an existing one is joined when its configuration matches (several processes then work on one
        search). ``metrics`` are the study's (name, direction) pairs: the reward, or the objective's
        raw values for a multi-objective controller (optuna-dashboard then shows their Pareto front).
        A named study numbers the processes that join it (``process`` in run.json, see
        :mod:`nas.store.processes`): each draws its own proposals.
        """
        import optuna  # optuna: imported when a study is used

        run_dir = Path(run_dir)
        existed = run_dir.exists()
        lock = FolderLock.take(run_dir)  # before anything is read or written: a second process stops here
        try:
            _refuse_existing(run_dir, storage)
        except BaseException:
            lock.release()
            raise
        url = storage or default_storage_url(run_dir)
        shared = study_name is not None  # a study others may join
        try:
            _check_writable(run_dir)
            backend = open_storage(url, field="storage" if storage else None)
            if study_name is None:
                study_name = f"{STUDY_NAME}:{run_dir.resolve().name}" if storage else STUDY_NAME
            full = {"kind": kind, **dict(config), "storage": without_password(storage) if storage else None,
                    "study_name": study_name, "owner": uuid.uuid4().hex[:12], "metrics": [list(m) for m in metrics]}
            names, directions = [m[0] for m in metrics], [m[1] for m in metrics]
            try:
                study = optuna.create_study(storage=backend, study_name=study_name, directions=directions,
                                            load_if_exists=True)
            except Exception as exc:  # noqa: BLE001
                raise StorageError(f"cannot create a study in {shown(url)!r}: {first_line(exc)}",
                                   field="storage" if storage else None) from None
            stored = study.user_attrs.get("config")
            if stored is None:
                study.set_user_attr("config", _plain(full))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(names)
            else:
                difference = config_difference(stored, full)
                if difference is not None:
                    raise StorageError(f"storage {shown(url)!r} already has a study named {study_name!r} for "
                                       f"another search ({difference}); {_advice(difference, stored)}",
                                       field="study_name")
                full["trials"] = stored.get("trials", full.get("trials"))
            if shared:  # after the check: a refused process takes no number
                full["process"] = join_study(backend, study_name, full["owner"], run_dir.resolve().name)
            atomic_write_json(run_dir / RUN_FILE, full)
        except BaseException:
            if storage is None:  # nothing of ours may stay behind: the folder's own file, the folder itself
                _remove_new(run_dir, existed)
            elif not existed:
                _remove_new(run_dir, existed, files=())
            lock.release()
            raise
        return cls(run_dir, url, study, full, backend, created=not existed, lock=lock)

    @classmethod
    def open(cls, run_dir: str | Path, storage: str | None = None, write: bool = False) -> "RunStore":
        """An existing run, for resuming (``write``) or reading.

        A run written by an earlier version that stored its own ``study.db`` as an absolute path
        opens the folder's own file, and with ``write`` its ``run.json`` is rewritten without the path.
        ``write`` takes the folder's lock first (refused while another process writes the folder).
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise StorageError(f"{run_dir}: no such run folder")
        if not (run_dir / RUN_FILE).exists():
            raise StorageError(f"{run_dir}: no study here (no {RUN_FILE}); is this the output folder of a search?")
        lock = FolderLock.take(run_dir) if write else None
        try:
            return cls._open(run_dir, storage, write, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _open(cls, run_dir: Path, storage: str | None, write: bool, lock: FolderLock | None) -> "RunStore":
        import optuna  # optuna: imported when a study is used

        run_file = run_dir / RUN_FILE
        if not run_file.exists():  # removed while the lock was taken
            raise StorageError(f"{run_dir}: no study here (no {RUN_FILE}); is this the output folder of a search?")
        config = read_json_object(run_file, "run file")
        if write and (reason := _unwritable(run_dir)) is not None:
            raise StorageError(f"{run_dir}: the run folder is not writable ({reason}); nothing was changed. Copy the "
                               "folder to a writable place to continue it there")
        url, own = storage_of(run_dir, config.get("storage"), storage)
        check_sqlite_file(url, run_dir)
        backend = open_storage(url, field="storage" if storage else None)
        try:
            study = optuna.load_study(study_name=config.get("study_name", STUDY_NAME), storage=backend)
        except KeyError:
            raise StorageError(f"{run_dir}: storage {shown(url)!r} holds no study {config.get('study_name')!r}") from None
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"{run_dir}: cannot load the study from {shown(url)!r}: {first_line(exc)}") from None
        store = cls(run_dir, url, study, config, backend, lock=lock)
        if write and own and config.get("storage") is not None:
            store.update_config(storage=None)  # a run of an earlier version: now found wherever the folder is
        return store

    def update_config(self, **changes: Any) -> None:
        """Change settings of this run folder's ``run.json`` (references measured at the start, the storage)."""
        self.config = {**self.config, **changes}
        atomic_write_json(self.run_dir / RUN_FILE, self.config)

    def close(self) -> None:
        """Let go of the folder's lock and of the database connections (the store can still be read: a
        read opens a connection again).

        Closed here, not whenever the garbage collector frees the engine: the last connection to a SQLite
        file that closes checkpoints its write-ahead log into ``study.db`` and removes ``-wal`` and ``-shm``,
        and that must not happen at a moment nobody chose (a folder's bytes changed under a later command)."""
        if self.lock is not None:
            self.lock.release()
        self.backend.engine.dispose()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def discard(self) -> None:
        """Remove a run this process has just created and that never got a trial (its set-up failed)."""
        if self.created and self.config.get("storage") is None and not self.records():
            _remove_new(self.run_dir, existed=False)

    @property
    def metric_names(self) -> list[str]:
        return [m[0] for m in self.config.get("metrics", [["reward", "maximize"]])]

    @property
    def multi_objective(self) -> bool:
        return len(self.metric_names) > 1 or self.metric_names != ["reward"]

    # ------------------------------------------------------------------------------ reading
    def records(self, stage: str | None = None) -> list[TrialRecord]:
        """Finished candidates (optionally of one stage), in trial order."""
        return self.log.refresh().of_stage(stage)

    def reservations(self, stage: str | None = None) -> list[Reservation]:
        """Trials still RUNNING (training somewhere, or left by a process that died)."""
        reservations = self.log.refresh().reservations
        return [r for r in reservations if stage is None or r.stage == stage]

    def trained_record(self, train_key: str, refresh: bool = True) -> TrialRecord | None:
        """The finished trial that trained ``train_key`` (not a reuse of it), if any (``refresh`` False:
        as of the last read, e.g. the one that just read the reservations)."""
        log = self.log.refresh() if refresh else self.log
        return log.trained.get(train_key)

    def arrived(self, since: int = 0, refresh: bool = True) -> list[TrialRecord]:
        """Finished candidates in the order they joined this store's log, from position ``since`` on: a
        reader that keeps its place goes over each record once (``refresh`` False: as of the last read)."""
        log = self.log.refresh() if refresh else self.log
        return log.arrived[since:]

    def finished(self, stage: str) -> int:
        """How many finished candidates ``stage`` has, as of the last read (no query)."""
        return self.log.finished(stage)

    def trial(self, number: int) -> TrialRecord:
        for r in self.records():
            if r.number == number:
                return r
        raise StorageError(f"{self.run_dir}: no trial {number}")

    def dataframe(self) -> Any:
        """Every finished trial as trials.csv's table."""
        return trials_frame(self.records())

    def write_trials_csv(self, final: bool = True) -> None:
        """Bring trials.csv up to date (:class:`~nas.store.outputs.TrialsCsv`: new rows appended; the whole
        file in trial order when ``final``)."""
        self.trials_csv.update(self.log.refresh() if final else self.log, final=final)

    # ------------------------------------------------------------------------------ writing
    def reserve(self, stage: str, choices: Mapping[str, Any], indices: Sequence[int], decisions: Sequence[Any],
                spec: ArchSpec, arch: str, train_key: str) -> int:
        return self.book.reserve(stage, choices, indices, decisions, spec, arch, train_key)

    def complete(self, number: int, record: TrialRecord) -> TrialRecord:
        return self.book.complete(number, record)

    def record(self, record: TrialRecord, decisions: Sequence[Any]) -> TrialRecord:
        """Reserve and complete in one step: store an already evaluated candidate (imports, tests)."""
        number = self.reserve(record.stage, record.choices, record.indices, decisions, record.spec, record.arch,
                              record.train_key or record.key)
        return self.complete(number, record)

    def give_up(self, number: int, reason: str) -> None:
        self.book.give_up(number, reason)

    def release(self, number: int) -> None:
        self.book.release(number)

    def claim(self, number: int) -> bool:
        return self.book.claim(number)

    def heartbeat(self, numbers: Sequence[int]) -> None:
        self.book.heartbeat(numbers)

    def fail_stale(self) -> None:
        self.book.fail_stale()

    def counted(self, stage: str, below: int | None = None, refresh: bool = True) -> int:
        return self.book.counted(stage, below, refresh)

    def within_budget(self, number: int, stage: str, budget: int) -> bool:
        return self.book.within_budget(number, stage, budget)


def check_sqlite_file(url: str, run_dir: Path) -> None:
    """Refuse a SQLite study file that is missing or not a database before SQLAlchemy opens it (opening
    would create the file, or write a new schema into whatever the file holds)."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url[len("sqlite:///"):])
    if not path.is_file():
        raise StorageError(f"{run_dir}: its study file {path} is missing")
    with open(path, "rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        what = "empty" if not header else "not a SQLite database"
        raise StorageError(f"{run_dir}: its study file {path} is {what}; nothing was changed")


def _advice(difference: str, stored: Mapping[str, Any]) -> str:
    """What to do when a setting differs from the shared study's."""
    if difference.startswith("seed "):  # the one setting users expect to differ between processes
        return (f"each process of a study draws its own proposals from the study's seed and its own number in "
                f"the study, so give this one seed {stored.get('seed')!r} too, or choose another study name")
    return "choose another study name"


def _refuse_existing(run_dir: Path, storage: str | None) -> None:
    if run_exists(run_dir):
        raise StorageError(f"{run_dir} already holds a run; resume it or choose another output folder", field="out")
    if storage is None and (run_dir / STUDY_FILE).exists():
        raise StorageError(f"out {run_dir} holds a {STUDY_FILE} but no {RUN_FILE}: it is not a run folder of "
                           "this toolkit; choose another output folder", field="out")


def _remove_new(run_dir: Path, existed: bool,
                files: Sequence[str] = (RUN_FILE, STUDY_FILE, f"{STUDY_FILE}-wal", f"{STUDY_FILE}-shm")) -> None:
    """Undo a new run folder: its run.json and study file (with SQLite's write-ahead log beside it), and the
    folder when this process made it."""
    for name in files:
        try:
            (run_dir / name).unlink()
        except OSError:
            pass
    if not existed:
        shutil.rmtree(run_dir, ignore_errors=True)


def open_run(run_dir: str | Path, storage: str | None = None) -> RunStore:
    """Open an existing run folder for reading (``nas results``, ``nas pareto``, ``nas scale``)."""
    return RunStore.open(run_dir, storage)


__all__ = ["LOCAL_KEYS", "RUN_FILE", "RunStore", "check_sqlite_file", "config_difference", "open_run", "run_exists",
           "run_labels"]
