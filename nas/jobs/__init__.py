"""The jobs: what a command runs on a run folder, each a set of stages of the one engine.

=====================  =========================================================================
``setup.py``           the set-up every job shares: settings, checks, opening or resuming a run,
                       the engine, the higher-fidelity rule, the points not yet held
``search.py``          ``nas search``: the search stage, then the re-ranked leaders
``scale_grid.py``      ``nas scale grid``: the alpha/beta/gamma grid
``fidelity.py``        ``nas fidelity``: a higher-fidelity stage on a finished search
=====================  =========================================================================

``JOBS`` maps a run folder's kind (``run.json``'s ``kind``) to its job class; code that reads a run
of any kind asks it instead of branching on the kind.
"""

from __future__ import annotations

from typing import Any, Mapping

from nas.errors import StorageError
from nas.registry import Registry

JOBS: Registry = Registry("run kind", {"search": "nas.jobs.search:Search",
                                       "scale-grid": "nas.jobs.scale_grid:ScaleGrid"}, error=StorageError)


def run_objective(config: Mapping[str, Any]) -> Any:
    """The objective a stored run (any kind) was rewarded with, rebuilt from its run.json."""
    return JOBS[config.get("kind", "search")].objective_of(config)


def run_axes(config: Mapping[str, Any]) -> str:
    """The Pareto objectives of a stored run: its objective's raw values and directions
    (``accuracy:max,macs:min`` for mnas), or :data:`nas.pareto.DEFAULT_OBJECTIVES` when it has none."""
    from nas.pareto import DEFAULT_OBJECTIVES  # numpy: imported when a frontier is drawn

    directions = run_objective(config).directions
    return ",".join(f"{n}:{d}" for n, d in directions.items()) or DEFAULT_OBJECTIVES


__all__ = ["JOBS", "run_axes", "run_objective"]
