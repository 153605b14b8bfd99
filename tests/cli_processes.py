"""Running the ``nas`` command in a child process, and killing it at a chosen moment (tests only)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def nas_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m nas ARGS`` to the end, output captured."""
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, **kwargs)


def nas_here(*args: str) -> subprocess.CompletedProcess:
    """``nas ARGS`` in this process, output captured, as :func:`nas_cli` returns it.

    For the runs of a test that need no process of their own (a resume after the killed run): the
    test process has torch and the rest imported already, which saves a start-up of seconds each.
    """
    import contextlib
    import io

    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["nas", *args], code, out.getvalue(), err.getvalue())


def trials_stored(out: Path, at_least: int, stage: str | None = None) -> Callable[[], bool]:
    """A condition: ``out/trials.csv`` holds ``at_least`` rows (of ``stage``, when given)."""
    def ready() -> bool:
        csv = out / "trials.csv"
        if not csv.exists():
            return False
        frame = pd.read_csv(csv)
        return int((frame["stage"] == stage).sum() if stage else len(frame)) >= at_least
    return ready


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 400,
             poll_s: float = 0.1) -> None:
    """Return as soon as ``ready()`` holds while ``proc`` runs; fail the test if ``proc`` ends first or
    ``timeout`` passes (``what`` says what was waited for)."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before {what}")
        if time.time() > deadline:
            pytest.fail(f"never saw {what} within {timeout:.0f} s")
        time.sleep(poll_s)


def kill_when(args: list[str], ready: Callable[[], bool], what: str, timeout: float = 400) -> None:
    """Start ``nas ARGS``, SIGKILL it as soon as ``ready()`` holds; fail the test if that never happens
    or the command ends first (``what`` says what was waited for)."""
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(proc, ready, what, timeout)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
