"""Accuracy alone: the compound-scaling grid's criterion (the paper picks α, β, γ by accuracy).

Cost still matters to a grid, but through its constraint (every point costs about 2^φ times the
base), not through the reward; a search with this objective simply ranks by proxy accuracy.
"""

from __future__ import annotations

from typing import Any, Mapping

from objectives.base import Objective


class AccuracyObjective(Objective):
    """Reward = minival accuracy; one raw value, accuracy, maximized."""

    name = "accuracy"
    directions = {"accuracy": "max"}

    def _reward(self, quality: float, values: Mapping[str, Any]) -> float:
        return quality

    def describe(self) -> str:
        return f"accuracy: {self.quality_label}"


__all__ = ["AccuracyObjective"]
