"""A ``with`` block that something watches from a thread of its own: :class:`Poller`.

Measurements and progress that cannot come from the code doing the work (a process's peak memory
while a model is built, the epochs a Ray worker writes into a shared folder) are read by a daemon
thread every few moments while the work runs, and once more when it ends, so the last change is
never missed.
"""

from __future__ import annotations

import threading


class Poller:
    """Call :meth:`tick` every ``every_s`` seconds (the first time at once) while the ``with`` block
    runs, and once more when it ends. Subclasses define :meth:`tick`; it must not raise."""

    def __init__(self, every_s: float, name: str = "poller") -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()


__all__ = ["Poller"]
