"""Servers started by the tests stop when the test run dies, even by SIGKILL (tests only).

A fixture stops its PostgreSQL server or Ray node however its block ends, but a ``finally`` does not
run when pytest itself is killed (SIGKILL, or SIGTERM from a CI runner that gives up), and a server
left running holds ports, shared memory and CPU. So every such fixture starts a :class:`Watchdog`
before its server: a small process of its own session (a signal to pytest's process group does not
reach it) that is told what to stop and then waits. When the fixture ends normally it says ``done``
and the watchdog exits doing nothing; when its parent dies first (its stdin reaches end of file, or
it is handed to another parent) it stops what it guards: SIGTERM (or the signal given), a grace
period, then SIGKILL, and removes the folders it was given.

What it stops, chosen so that nothing is found by a name another user's process might have:

- ``guard_session(sid)``: every process of a session a test started (``ray start --block`` leads its own);
- ``guard_folder(path)``: every process whose command line names ``path`` (the node's temp dir, the
  server's data dir) and all their descendants (Ray workers and PostgreSQL backends rename
  themselves, but stay children of the raylet / postmaster).

Usage::

    watchdog = Watchdog.start()
    watchdog.guard_folder(data_dir, signal.SIGQUIT)   # the postmaster: SIGQUIT is pg_ctl's -m immediate
    watchdog.remove(root)
    ...
    watchdog.close()                                   # the fixture stopped the server itself
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 3.0  # between the first signal and SIGKILL
POLL_S = 0.5  # how often the watchdog checks that its parent is alive


class Watchdog:
    """The test side: a running watchdog process and what it was told to guard."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    @classmethod
    def start(cls) -> "Watchdog":
        process = subprocess.Popen([sys.executable, __file__, str(os.getpid())], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                   start_new_session=True, cwd="/")
        return cls(process)

    def _tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def guard_session(self, sid: int, first: int = signal.SIGTERM) -> None:
        self._tell(f"session {int(first)} {sid}")

    def guard_folder(self, path: str | Path, first: int = signal.SIGTERM) -> None:
        self._tell(f"folder {int(first)} {path}")

    def remove(self, path: str | Path) -> None:
        self._tell(f"remove 0 {path}")

    def close(self) -> None:
        """The fixture stopped its server itself: the watchdog exits without touching anything."""
        try:
            self._tell("done")
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------ the watchdog process
def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command line) of every live process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found[int(entry.name)] = (int(stat[1]), int(stat[3]), command)
        except (OSError, IndexError, ValueError):
            pass
    return found


def _targets(guards: list[tuple[str, int, str]]) -> dict[int, int]:
    """pid -> the first signal for it, of every live process the guards name (and their descendants)."""
    table = _processes()
    chosen: dict[int, int] = {}
    for kind, first, value in guards:
        for pid, (_, sid, command) in table.items():
            if (kind == "session" and sid == int(value)) or (kind == "folder" and value in command):
                chosen.setdefault(pid, first)
    grew = True
    while grew:  # descendants, whatever they call themselves now
        grew = False
        for pid, (ppid, _, _) in table.items():
            if ppid in chosen and pid not in chosen:
                chosen[pid] = chosen[ppid]
                grew = True
    chosen.pop(os.getpid(), None)
    return chosen


def _stop(guards: list[tuple[str, int, str]], remove: list[str]) -> None:
    for pid, first in _targets(guards).items():
        _signal(pid, first)
    deadline = time.time() + GRACE_S
    while _targets(guards) and time.time() < deadline:
        time.sleep(0.1)
    for _ in range(3):  # a process forked while we killed its parent: look again
        left = _targets(guards)
        if not left:
            break
        for pid in left:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.2)
    for path in remove:
        shutil.rmtree(path, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _watch(parent: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only its parent's death or "done" ends it
    guards: list[tuple[str, int, str]] = []
    remove: list[str] = []
    buffer = ""
    while True:
        if os.getppid() != parent:  # the parent died; we were handed to another
            break
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 4096).decode()
        if not chunk:  # end of file: the parent is gone (it never said done)
            break
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            if line == "done":
                return
            kind, first, value = line.split(" ", 2)
            if kind == "remove":
                remove.append(value)
            else:
                guards.append((kind, int(first), value))
    _stop(guards, remove)


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
