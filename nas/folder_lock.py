"""One writing process per output folder: a lock file held for as long as a job writes the folder.

A run folder (``nas search``, ``nas scale grid``, ``nas fidelity``) or a training folder (``nas
train --out``) is written by one process at a time; a second one is refused at once, naming the
holder, before it writes anything. Readers (``nas results``, ``nas pareto``) take no lock and work
on a folder that is being written.

Why ``flock`` on ``FOLDER/.lock`` and not a pid file created with ``O_EXCL``: the kernel drops an
``flock`` when its holder dies, ``kill -9`` included, so a dead holder never blocks a folder and no
pid has to be guessed alive or dead (a pid file needs a check-then-remove that two processes can
race through). The file also names its holder (host, pid, start time) for the refusal, and its
holder removes it when it lets go: a file found unlocked was left by a process that died, and the
process that takes it over says so. The lock is released by :meth:`FolderLock.release`, at the
end of the process, or when the lock object is garbage-collected.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
import weakref
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from nas.errors import StorageError

LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a folder's lock, as written in its lock file."""

    host: str
    pid: int
    started: str

    @classmethod
    def of_this_process(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), datetime.now().isoformat(timespec="seconds"))

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        try:
            data = json.loads(text)
            return cls(str(data["host"]), int(data["pid"]), str(data["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (since {self.started})"


def _note(line: str) -> None:
    sys.stderr.write(line + "\n")


class FolderLock:
    """The lock of one folder, held by this process until :meth:`release`."""

    def __init__(self, folder: Path, fd: int, made_folder: bool) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self.made_folder = made_folder  # this process created the folder to lock it
        self._release = weakref.finalize(self, _let_go, self.path, fd, os.getpid(), made_folder)

    @classmethod
    def take(cls, folder: str | Path, field: str = "out", note: Callable[[str], None] = _note) -> "FolderLock":
        """Lock ``folder`` (created when missing) or raise :class:`StorageError` naming its holder.

        ``field`` is the setting that named the folder (for the CLI's flag in the message); ``note``
        receives the one line said when a lock left by a dead process is taken over.
        """
        folder = Path(folder)
        made = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{field} {folder}: cannot create the output folder ({exc.strerror or exc})",
                               field=field) from None
        path = folder / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                reason = exc.strerror or exc
                if made:  # the folder the user named for a new run
                    raise StorageError(f"{field} {folder}: folder is not writable ({reason})", field=field) from None
                raise StorageError(f"{folder}: the run folder is not writable ({reason}); nothing was changed. "
                                   "Copy the folder to a writable place to continue it there") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(_read(fd))
                for _ in range(20):  # the holder writes who it is just after it locks: give it a moment
                    if holder is not None:
                        break
                    time.sleep(0.05)
                    holder = Holder.parse(_read(fd))
                os.close(fd)
                who = holder.describe() if holder else "another process"
                raise StorageError(f"{folder}: in use by {who}; one process at a time writes a folder (wait for it "
                                   "to end, or stop it)") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # its last holder removed the file between our open and our lock: open the new one
        left = Holder.parse(_read(fd))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(Holder.of_this_process())).encode(), 0)
        if left is not None:
            note(f"note: {folder}: taking over the lock left by {left.describe()}, which is no longer running")
        return cls(folder, fd, made)

    @property
    def held(self) -> bool:
        return self._release.alive

    def release(self) -> None:
        """Remove the lock file and let go of the lock, and remove the folder when this lock made it and
        nothing else was written (a job refused before its first file leaves no folder); idempotent."""
        self._release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _let_go(path: Path, fd: int, pid: int, made_folder: bool) -> None:
    """Remove the lock file (while still holding it, so a waiting opener sees a new file) and close it."""
    if os.getpid() != pid:  # a forked child inherited the descriptor: the lock is its parent's
        return
    try:
        if _same_file(fd, path):
            os.unlink(path)
            if made_folder:
                os.rmdir(path.parent)  # only when empty
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["LOCK_FILE", "FolderLock", "Holder"]
