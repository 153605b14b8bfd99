"""Datasets by name: ``load_dataset("digits")``, ``load_dataset("mnist", "data/mnist")``.

:data:`DATASETS` maps each name to a :class:`DatasetSource` (its reader and defaults); the CLI's
``--dataset`` choices come from it (:mod:`nas.data.registry`). Every reader returns uint8 (N, C, H, W)
images and int64 labels; :func:`load_dataset` (:mod:`nas.data.load`) holds out the seeded minival
split from the training set and leaves the test split unread until :meth:`Dataset.test` is called.
"""

from __future__ import annotations

from typing import Any

from nas.data.registry import DATASETS, DatasetSource


def __getattr__(name: str) -> Any:
    # load_dataset and Dataset import torch: loaded on first use, so that the registry and
    # DatasetRef (nas.data.ref) can be imported by code that never reads images.
    if name == "load_dataset":
        from nas.data.load import load_dataset  # torch: imported when used, not at module import

        return load_dataset
    if name == "Dataset":
        from nas.data.base import Dataset  # torch: imported when used, not at module import

        return Dataset
    raise AttributeError(f"module 'nas.data' has no attribute {name!r}")


__all__ = ["DATASETS", "Dataset", "DatasetSource", "load_dataset"]
