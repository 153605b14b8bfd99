"""Runners: where candidates train. ``local`` in this process, ``ray`` on a Ray cluster.

A job never builds a runner from a name mid-run: :func:`runner_factory` checks the name, the
option names (against the runner's signature) and their values, and for Ray the cluster address,
before the run folder exists, and returns the function the engine calls when it first trains.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping

from nas.data.ref import DatasetRef
from nas.registry import Registry
from runners.base import Job, Runner, TrainJob, run_job

# name -> the runner class, built as ``(device=, dataset=, data_ref=, run_dir=, **options)``
RUNNERS: Registry = Registry("runner", {"local": "runners.local:LocalRunner",
                                        "ray": "runners.ray_cluster:RayRunner"}, field="runner")
_PROVIDED = ("device", "dataset", "data_ref", "run_dir")  # what the job hands every runner itself


def check_runner(name: str, options: Mapping[str, Any]) -> None:
    """Everything that can be checked of a runner before anything is written: its name, its options'
    names and values, and for Ray that the cluster ``address`` answers (within seconds) and
    ``node_ip_address`` is one of its nodes."""
    RUNNERS.check_options(name, options, positional=_PROVIDED)
    RUNNERS[name].check_options(probe=True, **options)


def runner_factory(name: str, options: Mapping[str, Any], *, device: str, dataset: Any, data_ref: DatasetRef,
                   run_dir: str | Path | None) -> Callable[[], Runner]:
    """The checked runner, to be built when the engine first trains (a fully reused stage starts none)."""
    check_runner(name, options)
    return functools.partial(RUNNERS[name], device=device, dataset=dataset, data_ref=data_ref, run_dir=run_dir,
                             **dict(options))


def make_runner(name: str, **options: Any) -> Runner:
    """A runner now (tests and benchmarks); jobs use :func:`runner_factory`."""
    RUNNERS.check_options(name, options)
    RUNNERS[name].check_options(**{k: v for k, v in options.items() if k not in _PROVIDED})
    return RUNNERS[name](**options)


__all__ = ["RUNNERS", "Job", "Runner", "TrainJob", "check_runner", "make_runner", "run_job", "runner_factory"]
