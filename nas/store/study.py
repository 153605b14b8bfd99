"""The Optuna side of a run: opening an RDB storage, the study's name, and the URLs shown and stored.

One run is one Optuna study in any RDB storage (a SQLite file in the run folder by default,
PostgreSQL for several machines). Why Optuna's storage and not a file of our own: it hands out
trial numbers under the database's lock (several processes get unique numbers), it has heartbeats
for the reservations of a process that died, and optuna-dashboard reads it.

Where the run folder's own store lives is not written down as a path: ``run.json`` stores no
``storage`` for it (None), and it is ``RUN/study.db`` wherever the folder is now, so a copied or moved
folder is a run of its own. A run written before this rule stored the absolute path of its
``study.db``; :func:`storage_of` reads such a path as the folder's own file.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

from nas.errors import StorageError

STUDY_NAME = "nas-search"
STUDY_FILE = "study.db"
# How often a process marks its reservations alive, and after how long without a beat a reservation
# is taken to belong to a dead process. The environment may shorten both (tests kill processes).
HEARTBEAT_S = int(os.environ.get("SCALENAS_HEARTBEAT_S", "5"))
GRACE_S = int(os.environ.get("SCALENAS_GRACE_S", "30"))


def default_storage_url(run_dir: str | Path) -> str:
    """The URL of the run folder's own SQLite file, where the folder is now."""
    return f"sqlite:///{(Path(run_dir) / STUDY_FILE).resolve()}"


def storage_of(run_dir: str | Path, stored: str | None, given: str | None = None) -> tuple[str, bool]:
    """The URL a run folder's study is opened from, and whether it is the folder's own file.

    ``given`` (``--storage`` again on a resume, with the password) wins; a stored URL is an external
    storage, unless it is the SQLite ``study.db`` the folder holds itself: a run written by an earlier
    version stored its own file's absolute path, which after a copy or a move names another folder.
    """
    if given:
        return given, False
    if stored is None or _names_own_file(Path(run_dir), stored):
        return default_storage_url(run_dir), True
    return stored, False


def _names_own_file(run_dir: Path, url: str) -> bool:
    if not url.startswith("sqlite:///"):
        return False
    path = Path(url[len("sqlite:///"):])
    return path.name == STUDY_FILE and (run_dir / STUDY_FILE).is_file()


def without_password(url: str) -> str:
    """The URL as stored and shown: no password (libpq then reads PGPASSWORD or ~/.pgpass)."""
    try:
        from sqlalchemy.engine import URL, make_url  # sqlalchemy: imported when a storage URL is read

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
        from sqlalchemy.engine import make_url  # sqlalchemy: imported when a storage URL is read

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


_SCHEMA_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key value")


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether opening failed because another process created the same new schema at the same moment."""
    return any(marker in str(exc) for marker in _SCHEMA_RACE)


def _write_ahead(engine: Any) -> None:
    """SQLite with a write-ahead log and ``synchronous=NORMAL`` on every connection of ``engine``.

    In SQLite's default rollback journal every commit waits for the disk twice (measured here: 15 to
    18 ms a commit, 2 commits per trial at the least: more than the whole bookkeeping of a trial
    should cost, BENCHMARKS.md issue 22). With the write-ahead log a commit is an append, synced at
    checkpoints: a killed process loses nothing committed, a power cut may lose the last trials
    (trained again on resume), and the file is never corrupted. Readers no longer block the writer,
    which helps processes sharing a study file. The mode is stored in the file; a file another
    process holds in the old mode is left in it (setting the mode then fails, and is ignored).
    """
    from sqlalchemy import event  # sqlalchemy: imported when a storage is opened

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except Exception:  # noqa: BLE001 - another process holds the file: keep its journal mode
            pass
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened while Optuna set up the schema: reopened with the pragmas


def open_storage(url: str, field: str | None = "storage") -> Any:
    """An Optuna RDB storage with heartbeats; one-line :class:`StorageError` when it cannot be opened.

    ``field`` is what the error blames: ``storage`` for a URL the user gave, None for a run folder's
    own ``study.db`` (no ``--storage`` was given, so the message must not name it)."""
    import optuna  # the whole Optuna stack: imported by the commands that open a study

    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    if url.startswith("sqlite"):
        # Several processes may write one SQLite file: wait for the lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            # synchronous_commit off for this toolkit's sessions only, for the reason SQLite gets its
            # write-ahead log (_write_ahead): a commit does not wait for the server's disk. Other
            # processes see it at once; a crash of the server (not of a search) may lose the last
            # trials, which a resume trains again; nothing is corrupted.
            kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": 10, "options": "-c synchronous_commit=off"}
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(url, **kwargs)
                if url.startswith("sqlite"):
                    _write_ahead(storage.engine)
                return storage
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
                           field=field) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        reason = first_line(exc)
        if "password" in reason and without_password(url) == url and not url.startswith("sqlite"):
            reason += ("; run folders never store passwords: give the storage URL with its password again, "
                       "or set PGPASSWORD (or ~/.pgpass)")
        raise StorageError(f"cannot open storage {shown(url)!r}: {reason}", field=field) from None


__all__ = ["GRACE_S", "HEARTBEAT_S", "STUDY_FILE", "STUDY_NAME", "default_storage_url", "first_line", "open_storage",
           "shown", "storage_of", "without_password"]
