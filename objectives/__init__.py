"""Rewards of the search and their registry.

``OBJECTIVES`` maps a name to a factory ``(**options) -> Objective``; ``make_objective`` checks the
name and the options and raises a one-line ConfigError listing the valid ones.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from nas.errors import ConfigError, unknown_name
from objectives.accuracy import AccuracyObjective
from objectives.base import VALUE_KEYS, Objective
from objectives.mnas import MnasObjective
from objectives.units import format_quantity, parse_quantity
from objectives.v2 import V2Objective

OBJECTIVES: dict[str, Callable[..., Objective]] = {"mnas": MnasObjective, "v2": V2Objective,
                                                  "accuracy": AccuracyObjective}


def make_objective(name: str, **options: Any) -> Objective:
    """Build a registered objective, e.g. ``make_objective("mnas", cost="latency", target="75ms")``."""
    if name not in OBJECTIVES:
        raise unknown_name("objective", name, list(OBJECTIVES))
    valid = set(inspect.signature(OBJECTIVES[name]).parameters)
    bad = sorted(set(options) - valid)
    if bad:
        raise ConfigError(f"objective {name!r}: unknown option(s) {', '.join(bad)}; "
                          f"valid: {', '.join(sorted(valid)) or 'none'}", field="objective")
    return OBJECTIVES[name](**options)


__all__ = ["OBJECTIVES", "AccuracyObjective", "Objective", "MnasObjective", "V2Objective", "VALUE_KEYS", "make_objective",
           "parse_quantity", "format_quantity"]
