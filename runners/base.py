"""What a runner is: something that trains jobs and hands back their metrics.

The search loop submits :class:`TrainJob` objects and collects ``(job, Metrics)`` pairs; it does not
know whether the job ran in this process or on a Ray worker. :func:`run_job` is the single worker
function both runners call, so a candidate trains the same way everywhere.

A job is anything shaped as :class:`Job`: a search's candidate (:class:`TrainJob`) or a seed of
``nas train --seeds`` (:class:`nas.training.seeds.SeedJob`), which trains a whole model into its
folder. A runner only schedules jobs, retries them on a lost worker and logs where they ran.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Protocol

from nas.data.ref import DatasetRef, cached_dataset
from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.training.budget import TrainBudget


class Job(Protocol):
    """What a runner needs of a job: an id (``trial``) for its logs and retries, the device, whether the
    worker's dataset is handed to it (``needs_data``), and :meth:`run`, which never raises."""

    trial: int
    device: str
    needs_data: ClassVar[bool]

    def run(self, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics: ...


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

    needs_data: ClassVar[bool] = True  # trains on the data the worker holds (or loads from ``dataset``)

    def run(self, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics:
        """Train the candidate; never raises for a training failure (the metrics say ``failed``)."""
        from nas.device import resolve_device
        from nas.training.candidate import train_candidate  # torch: imported where a job trains

        start = time.perf_counter()
        try:
            dataset = data if data is not None else cached_dataset(self.dataset)
            device = resolve_device(self.device)
            metrics = train_candidate(self.spec, dataset, self.budget, device, on_epoch=on_epoch,
                                      resume_state=self.resume_state, keep_state=self.keep_state)
            if self.measure_full_latency and self.full_spec is not None and metrics.ok:
                from nas.timing import measure_latency_ms  # torch: imported when used, not at module import

                metrics = replace(metrics, latency_ms=measure_latency_ms(self.full_spec, device))
            return metrics
        except Exception as exc:  # noqa: BLE001 - a broken candidate must not stop the search
            return Metrics(status="failed", error=f"{type(exc).__name__}: {exc}",
                           wall_time_s=time.perf_counter() - start)


def run_job(job: Job, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics:
    """Run one job where this process is (in the driver or on a Ray worker); never raises for a failure."""
    return job.run(on_epoch=on_epoch, data=data)


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
    def submit(self, job: Job) -> None:
        """Start (or queue) one job."""

    @abc.abstractmethod
    def wait(self) -> list[tuple[Job, Metrics]]:
        """Block until at least one submitted job finished; return every finished one."""

    def close(self) -> None:
        """Release workers."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
