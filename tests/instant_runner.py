"""A runner that trains nothing: every job is answered at once with metrics made up from the network.

For measuring (benchmarks/bookkeeping.py) and testing the search's own bookkeeping: all that costs
time with it is the engine, the controller and the store. It lives with the tests, not in the
library: a search on it finds nothing.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

from nas.metrics import Metrics
from runners.base import Runner, TrainJob


def made_up_accuracy(job: TrainJob) -> float:
    """A stable accuracy in [0.5, 1) from the proxy network's JSON: different networks differ."""
    digest = hashlib.blake2b(repr(job.spec).encode(), digest_size=8).digest()
    return 0.5 + int.from_bytes(digest, "big") / 2 ** 65


class InstantRunner(Runner):
    """Answers each job when :meth:`wait` is called, ``capacity`` jobs in flight."""

    def __init__(self, *, device: str = "auto", dataset: Any = None, data_ref: Any = None, run_dir: Any = None,
                 workers: int = 1) -> None:
        self.capacity = workers
        self._queue: deque[TrainJob] = deque()

    def submit(self, job: TrainJob) -> None:
        self._queue.append(job)

    def wait(self) -> list[tuple[TrainJob, Metrics]]:
        done = list(self._queue)
        self._queue.clear()
        return [(job, Metrics(accuracy=made_up_accuracy(job), loss=0.5, epochs=job.budget.epochs, minival_size=100))
                for job in done]

    def describe(self) -> str:
        return "instant (trains nothing: bookkeeping only)"
