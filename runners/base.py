"""What a runner is: something that trains candidates and hands back their metrics.

The search loop submits :class:`TrainJob` objects and collects ``(job, Metrics)`` pairs; it does not
know whether the job ran in this process or on a Ray worker. :func:`run_job` is the single worker
function both runners call, so a candidate trains the same way everywhere.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from nas.metrics import Metrics
from nas.spec import ArchSpec


@dataclass(frozen=True)
class DatasetRef:
    """How a worker finds the data: by name and folder, so that nothing large travels with a job.

    ``cache_dir`` (with ``resolution``, the proxy resolution) reads the data through the data cache
    (nas/data/cache.py): memory-mapped files every worker of a node shares; ``rebuild_cache`` lets
    a cache of another dataset, resolution or source be rebuilt instead of refused.
    """

    name: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    cache_dir: str | None = None
    resolution: int | None = None
    rebuild_cache: bool = False


@dataclass(frozen=True)
class TrainJob:
    """One candidate to train: the proxy spec, where its data is, the budget and the device."""

    trial: int
    spec: ArchSpec
    dataset: DatasetRef
    budget: Any  # nas.training.TrainBudget (kept loose here so runners import no torch at module load)
    device: str = "auto"
    full_spec: ArchSpec | None = None  # the full-size candidate, for its counted cost
    measure_full_latency: bool = False
    tag: dict[str, Any] = field(default_factory=dict)


def dataset_ref(config: Any) -> DatasetRef:
    """The :class:`DatasetRef` of a search-like config (``dataset``, ``data_dir``, ``seed``, and the
    optional ``data_cache`` / ``rebuild_cache``: the data cache at the config's ``proxy_resolution``)."""
    cache = getattr(config, "data_cache", None)
    return DatasetRef(config.dataset, config.data_dir, config.seed, cache_dir=str(cache) if cache else None,
                      resolution=int(config.proxy_resolution) if cache else None,
                      rebuild_cache=bool(getattr(config, "rebuild_cache", False)))


_DATA_CACHE: dict[DatasetRef, Any] = {}


def cached_dataset(ref: DatasetRef) -> Any:
    """Load a dataset once per process (a local run or one Ray worker) and keep it."""
    from nas.data import load_dataset

    if ref not in _DATA_CACHE:
        _DATA_CACHE[ref] = load_dataset(ref.name, ref.data_dir, seed=ref.seed, cache_dir=ref.cache_dir,
                                        resolution=ref.resolution if ref.cache_dir else None,
                                        rebuild_cache=ref.rebuild_cache)
    return _DATA_CACHE[ref]


def run_job(job: TrainJob, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics:
    """Train one candidate; never raises for a training failure (the metrics say ``failed``)."""
    from nas.device import resolve_device
    from nas.training import train_candidate

    start = time.perf_counter()
    try:
        dataset = data if data is not None else cached_dataset(job.dataset)
        device = resolve_device(job.device)
        metrics = train_candidate(job.spec, dataset, job.budget, device, on_epoch=on_epoch)
        if job.measure_full_latency and job.full_spec is not None and metrics.ok:
            from nas.timing import measure_latency_ms

            from dataclasses import replace

            metrics = replace(metrics, latency_ms=measure_latency_ms(job.full_spec, device))
        return metrics
    except Exception as exc:  # noqa: BLE001 - a broken candidate must not stop the search
        return Metrics(status="failed", error=f"{type(exc).__name__}: {exc}",
                       wall_time_s=time.perf_counter() - start)


class Runner(abc.ABC):
    """Trains jobs; ``capacity`` is how many may be in flight at once."""

    capacity: int = 1

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
