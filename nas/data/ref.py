"""How a job names its data: :class:`DatasetRef`, small enough to travel with every job to any worker.

Nothing large travels with a job: a worker reads the data itself from the name and folder (or
receives it once, as the Ray runner's ``ray.put``), and :func:`cached_dataset` keeps one loaded copy
per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    train_subset: int | None = None  # a seeded, stratified part of the training images


def dataset_ref(config: Any) -> DatasetRef:
    """The :class:`DatasetRef` of a search-like config (``dataset``, ``data_dir``, ``seed``, and the
    optional ``data_cache`` / ``rebuild_cache``: the data cache at the config's ``proxy_resolution``)."""
    cache = getattr(config, "data_cache", None)
    return DatasetRef(config.dataset, config.data_dir, config.seed, cache_dir=str(cache) if cache else None,
                      resolution=int(config.proxy_resolution) if cache else None,
                      rebuild_cache=bool(getattr(config, "rebuild_cache", False)),
                      train_subset=getattr(config, "train_subset", None))


_DATA_CACHE: dict[DatasetRef, Any] = {}


def cached_dataset(ref: DatasetRef) -> Any:
    """Load a dataset once per process (a local run or one Ray worker) and keep it."""
    from nas.data import load_dataset  # torch: only a process that trains pays for it

    if ref not in _DATA_CACHE:
        _DATA_CACHE[ref] = load_dataset(ref.name, ref.data_dir, seed=ref.seed, cache_dir=ref.cache_dir,
                                        resolution=ref.resolution if ref.cache_dir else None,
                                        rebuild_cache=ref.rebuild_cache, train_subset=ref.train_subset)
    return _DATA_CACHE[ref]


__all__ = ["DatasetRef", "cached_dataset", "dataset_ref"]
