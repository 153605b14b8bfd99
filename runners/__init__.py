"""Runners: where candidates train. ``local`` in this process, ``ray`` on a Ray cluster."""

from __future__ import annotations

from typing import Any, Callable

from nas.errors import unknown_name
from runners.base import DatasetRef, Runner, TrainJob, run_job


def _local(**options: Any) -> Runner:
    from runners.local import LocalRunner

    return LocalRunner(**options)


def _ray(**options: Any) -> Runner:
    from runners.ray_cluster import RayRunner  # imported lazily: ray is an optional dependency

    return RayRunner(**options)


RUNNERS: dict[str, Callable[..., Runner]] = {"local": _local, "ray": _ray}


def make_runner(name: str, **options: Any) -> Runner:
    if name not in RUNNERS:
        raise unknown_name("runner", name, list(RUNNERS))
    return RUNNERS[name](**options)


__all__ = ["RUNNERS", "DatasetRef", "Runner", "TrainJob", "make_runner", "run_job"]
