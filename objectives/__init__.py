"""Rewards of the search and their registry.

``OBJECTIVES`` maps a name to an objective class: ``make_objective(name, **options)`` checks the name
and the options (a one-line ConfigError listing the valid ones); ``objective_from_settings(settings)``
is the objective a job's settings describe (each class reads the settings it needs).
"""

from __future__ import annotations

from typing import Any

from nas.metrics import DEFAULT_SCORE
from nas.registry import Registry
from objectives.accuracy import AccuracyObjective
from objectives.base import VALUE_KEYS, Objective
from objectives.mnas import MnasObjective
from objectives.units import format_quantity, parse_quantity
from objectives.v2 import V2Objective

OBJECTIVES: Registry = Registry("objective", {"mnas": MnasObjective, "v2": V2Objective,
                                              "accuracy": AccuracyObjective}, field="objective")


def make_objective(name: str, **options: Any) -> Objective:
    """Build a registered objective, e.g. ``make_objective("mnas", cost="latency", target="75ms")``."""
    return OBJECTIVES.create(name, **options)


def objective_from_settings(settings: Any) -> Objective:
    """The objective named by ``settings.objective``, built from the settings (see ``Objective.from_settings``),
    with ``settings.score`` (default :data:`nas.metrics.DEFAULT_SCORE`) as its quality term."""
    objective = OBJECTIVES[settings.objective].from_settings(settings)
    return objective.with_score(getattr(settings, "score", DEFAULT_SCORE))


__all__ = ["OBJECTIVES", "AccuracyObjective", "Objective", "MnasObjective", "V2Objective", "VALUE_KEYS", "make_objective",
           "objective_from_settings", "parse_quantity", "format_quantity"]
