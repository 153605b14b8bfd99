"""SIGTERM stops a command the way Ctrl-C does: cleanly the first time, at once the second.

Job schedulers, ``docker stop``, systemd and Ray's shutdown send SIGTERM (then SIGKILL after a
grace period), and Python's default is to die on the spot: nothing released, nothing written.
:func:`stop_signals` makes SIGTERM raise :class:`Terminated` in the main thread, a subclass of
``KeyboardInterrupt``, so every clean-up Ctrl-C runs also runs for it (reservations released,
outputs written, workers stopped, the folder's lock let go) and the command ends with one line and
the shell's code for the signal (``error: terminated``, 143; ``error: interrupted``, 130). A second
SIGINT or SIGTERM while cleaning up ends the process at once with that code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C's ``KeyboardInterrupt`` would be."""


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's code for the signal: 128 + its number."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def message(interrupt: KeyboardInterrupt) -> str:
    """The command's one line when a signal stopped it."""
    return "error: terminated" if isinstance(interrupt, Terminated) else "error: interrupted"


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise (``KeyboardInterrupt``, :class:`Terminated`) once; a second one exits now.

    Outside the main thread nothing changes (only the main thread can handle signals), and a signal
    the parent process ignores (``nohup``, a background job's SIGINT) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handle(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:  # cleaning up after the first one already: the user means it
            os.write(2, (message(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()) + "\n").encode())
            os._exit(128 + signum)
        stopping = True
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """Put back the SIGINT and SIGTERM handlers a library replaced inside the block (``ray.init`` makes
    SIGTERM a bare ``sys.exit``, which would skip the clean stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


__all__ = ["Terminated", "exit_code", "keep_signal_handlers", "message", "stop_signals"]
