"""The in-process runner: candidates train one after another in this Python process."""

from __future__ import annotations

from collections import deque
from typing import Any

from nas.metrics import Metrics
from nas.threads import BusyMeter, fair_threads, plan_threads, set_threads
from runners.base import Job, Runner, run_job


class LocalRunner(Runner):
    """Runs each job when :meth:`wait` is called; the data is loaded once and reused."""

    capacity = 1

    def __init__(self, *, device: str = "auto", dataset: Any = None, data_ref: Any = None,
                 run_dir: Any = None) -> None:
        # Each job names its data and device itself (run_job loads the data once per process).
        self._queue: deque[Job] = deque()
        self.threads = plan_threads("local", {}).threads
        self._busy = BusyMeter()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def wait(self) -> list[tuple[Job, Metrics]]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        set_threads(fair_threads(self.threads, self._busy))  # the plan, less what other work kept busy
        return [(job, run_job(job))]

    def describe(self) -> str:
        return f"local (in-process, one candidate at a time, {self.threads} thread(s))"
