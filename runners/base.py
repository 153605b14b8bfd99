"""What a runner is: something that trains candidates and hands back their metrics.

The search loop submits :class:`TrainJob` objects and collects ``(job, Metrics)`` pairs; it does not
know whether the job ran in this process or on a Ray worker. :func:`run_job` is the single worker
function both runners call, so a candidate trains the same way everywhere.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from nas.data.ref import DatasetRef, cached_dataset
from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.training.budget import TrainBudget


@dataclass(frozen=True)
class TrainJob:
    """One candidate to train: the proxy spec, where its data is, the budget and the device."""

    trial: int
    spec: ArchSpec
    dataset: DatasetRef
    budget: TrainBudget
    device: str = "auto"
    full_spec: ArchSpec | None = None  # the full-size candidate, for its counted cost
    measure_full_latency: bool = False
    tag: dict[str, Any] = field(default_factory=dict)
    resume_state: bytes | None = field(default=None, repr=False)  # a rung's training state to continue
    keep_state: bool = False  # return the training state at the end (Metrics.checkpoint): a rung


def run_job(job: TrainJob, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics:
    """Train one candidate; never raises for a training failure (the metrics say ``failed``)."""
    from nas.device import resolve_device
    from nas.training.candidate import train_candidate  # torch: imported where a job trains

    start = time.perf_counter()
    try:
        dataset = data if data is not None else cached_dataset(job.dataset)
        device = resolve_device(job.device)
        metrics = train_candidate(job.spec, dataset, job.budget, device, on_epoch=on_epoch,
                                  resume_state=job.resume_state, keep_state=job.keep_state)
        if job.measure_full_latency and job.full_spec is not None and metrics.ok:
            from nas.timing import measure_latency_ms  # torch: imported when used, not at module import

            metrics = replace(metrics, latency_ms=measure_latency_ms(job.full_spec, device))
        return metrics
    except Exception as exc:  # noqa: BLE001 - a broken candidate must not stop the search
        return Metrics(status="failed", error=f"{type(exc).__name__}: {exc}",
                       wall_time_s=time.perf_counter() - start)


class Runner(abc.ABC):
    """Trains jobs; ``capacity`` is how many may be in flight at once.

    A runner is built by ``Runner(device=..., dataset=..., data_ref=..., run_dir=..., **options)``;
    :meth:`check_options` refuses bad ``options`` before anything is started or written.
    """

    capacity: int = 1

    @classmethod
    def check_options(cls, *, probe: bool = False, **options: Any) -> None:
        """Refuse option values that cannot work (``probe``: also contact what the options name)."""

    @abc.abstractmethod
    def submit(self, job: TrainJob) -> None:
        """Start (or queue) one job."""

    @abc.abstractmethod
    def wait(self) -> list[tuple[TrainJob, Metrics]]:
        """Block until at least one submitted job finished; return every finished one."""

    def close(self) -> None:
        """Release workers."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
