"""Runners: where candidates train. ``local`` in this process, ``ray`` on a Ray cluster."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from nas.errors import unknown_name
from runners.base import DatasetRef, Runner, TrainJob, dataset_ref, run_job


def _local(**options: Any) -> Runner:
    from runners.local import LocalRunner

    return LocalRunner(**options)


def _ray(**options: Any) -> Runner:
    from nas.errors import ConfigError

    try:
        import ray  # noqa: F401 - imported lazily: a local search never pays for it
    except ImportError as exc:
        raise ConfigError(f"runner ray: Ray does not import here ({exc}); install it with "
                          "`pip install 'ray[tune]'` (bash scripts/setup.sh installs it)", field="runner") from None
    from runners.ray_cluster import RayRunner

    return RayRunner(**options)


RUNNERS: dict[str, Callable[..., Runner]] = {"local": _local, "ray": _ray}


def check_runner(name: str, options: Mapping[str, Any]) -> None:
    """Check what can be checked of a runner before anything is written: a Ray cluster ``address``
    answers (within seconds) and ``node_ip_address`` is one of its nodes. A search calls it before it
    creates its run folder, so a wrong address leaves nothing behind."""
    if name == "ray" and options.get("address"):
        from runners.ray_support import check_address

        check_address(str(options["address"]), options.get("node_ip_address"))


def make_runner(name: str, **options: Any) -> Runner:
    if name not in RUNNERS:
        raise unknown_name("runner", name, list(RUNNERS))
    return RUNNERS[name](**options)


__all__ = ["RUNNERS", "DatasetRef", "Runner", "TrainJob", "check_runner", "dataset_ref", "make_runner", "run_job"]
