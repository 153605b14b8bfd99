"""A real PostgreSQL server for the tests, from the server binaries installed on the machine.

:func:`start_postgres` runs ``initdb`` and ``pg_ctl`` in a fresh temporary folder, listening only
on a loopback address and a free port, with password authentication for TCP connections (so that
wrong credentials are really refused), and stops the server when the block ends, however it ends,
and when pytest itself is killed (a :class:`server_watchdog.Watchdog` guards the server).

- **Binaries.** Found by themselves: ``$NAS_PG_BINDIR``, then the newest
  ``/usr/lib/postgresql/<version>/bin`` (Debian and Ubuntu install the server there, outside
  PATH), then ``initdb`` on PATH. :func:`find_pg_bindir` returns None when there is none; the
  fixtures then skip, saying so. That is the only reason they skip.
- **User.** ``initdb`` and ``postgres`` refuse to run as root. As root, the server runs as the
  ``postgres`` system user when there is one, else as ``nobody`` (Python's ``subprocess`` switches
  user; the folder is handed to that user). As anybody else, it runs as the current user.
- **URLs.** SQLAlchemy 2 maps a bare ``postgresql://`` to the psycopg2 driver; psycopg 3 (the one
  the test extra installs) is ``postgresql+psycopg://``, which Optuna's ``RDBStorage`` takes as is.

Usage::

    with start_postgres() as server:
        url = server.create_database("study_a")   # postgresql+psycopg://nas:<pw>@127.0.0.5:PORT/study_a
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cluster import free_port
from server_watchdog import Watchdog

BINDIR_ENV = "NAS_PG_BINDIR"
HOST = "127.0.0.5"
SUPERUSER = "nas"
START_TIMEOUT_S = 60


def find_pg_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None where there is none."""
    candidates: list[Path] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(Path(os.environ[BINDIR_ENV]))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=lambda p: int(Path(p).parent.name)
                                           if Path(p).parent.name.isdigit() else 0, reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def missing_reason() -> str:
    return (f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: set {BINDIR_ENV}, or install the "
            "server (Debian/Ubuntu: apt-get install postgresql, which puts them in /usr/lib/postgresql/<v>/bin)")


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


@dataclass
class PostgresServer:
    """A running server: ``url(database)`` is a SQLAlchemy URL for psycopg 3."""

    bindir: Path
    root: Path
    host: str
    port: int
    user: str
    password: str
    account: pwd.struct_passwd | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE`` (the server's superuser by default)."""
        return (f"postgresql+psycopg://{user or self.user}:{self.password if password is None else password}"
                f"@{self.host}:{self.port}/{database}")

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database, autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its URL."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run one of the server binaries as the server's account."""
        kwargs: dict[str, Any] = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
               "HOME": str(self.root), "TZ": "UTC"}
        result = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=env, capture_output=True,
                                text=True, timeout=START_TIMEOUT_S + 30, stdin=subprocess.DEVNULL, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n"
                               f"{self.log.read_text()[-2000:] if self.log.exists() else ''}")
        return result

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._hand_over(pwfile)
        self.run("initdb", "-D", str(self.data_dir), "-U", self.user, "--pwfile", str(pwfile), "-E", "UTF8",
                 "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        pwfile.unlink()
        # 200 clients: one server serves a whole test module (each test its own database); every process
        # of a shared study holds a connection pool, and a killed one's connections linger until the
        # server notices (50 ran out once under load: "too many clients already").
        options = (f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c shared_buffers=16MB")
        self.run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log), "-o", options, "-w", "-t",
                 str(START_TIMEOUT_S), "start")

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``, then SIGKILL whatever the postmaster left (it should be nothing)."""
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "20", "stop", check=False)
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass

    def _hand_over(self, *paths: Path) -> None:
        if self.account is not None:
            for path in (self.root, *paths):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)


@contextmanager
def start_postgres(host: str = HOST) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server on ``host`` and a free port; stopped and removed when the block ends.

    Raises ``FileNotFoundError`` (with :func:`missing_reason`) where the binaries are absent.
    """
    bindir = find_pg_bindir()
    if bindir is None:
        raise FileNotFoundError(missing_reason())
    root = Path(tempfile.mkdtemp(prefix="naspg-", dir="/tmp"))  # short: the unix socket lives here
    server = PostgresServer(bindir=bindir, root=root, host=host, port=free_port(host), user=SUPERUSER,
                            password=secrets.token_hex(16), account=_server_user())
    watchdog = Watchdog.start()  # stops the server if pytest dies before the finally below can
    watchdog.guard_folder(server.data_dir, signal.SIGQUIT)  # the postmaster names it; SIGQUIT: -m immediate
    watchdog.remove(root)
    try:
        server._hand_over()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        watchdog.close()


__all__ = ["BINDIR_ENV", "PostgresServer", "find_pg_bindir", "missing_reason", "start_postgres"]
