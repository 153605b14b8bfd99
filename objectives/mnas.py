"""MnasNet's reward: ACC(m) x (x(m) / T) ** w, the one EfficientNet-B0 was searched with.

``x`` is the candidate's MACs (the papers' "FLOPS", multiply-adds), its latency or its params; ``T``
is the target in the same unit. MnasNet writes w = alpha when x <= T and w = beta otherwise:

* soft constraint (default): alpha = beta = -0.07, so a model twice the target loses about 5% of
  its reward (2 ** -0.07 = 0.9526) and one half the target gains as much;
* hard constraint: alpha = 0, beta = -1, so nothing changes below T and the reward falls in
  proportion to the overshoot above it.

``w`` overrides the exponent: both sides for the soft constraint, only the above-target side (beta)
for the hard one.
"""

from __future__ import annotations

from typing import Any, Mapping

from nas.errors import ConfigError
from objectives.base import Objective, number
from objectives.units import format_quantity, parse_quantity

COSTS = {"macs": "macs", "latency": "latency_ms", "params": "params"}  # --cost name -> values key
DEFAULT_TARGETS = {"macs": "400M", "latency": "75ms", "params": "5M"}
CONSTRAINTS = ("soft", "hard")
SOFT_W = -0.07
_LABELS = {"macs": "MACs", "latency": "latency", "params": "params"}


class MnasObjective(Objective):
    """``MnasObjective(cost="macs", target="400M", constraint="soft", w=None)``.

    Default targets: 400M multiply-adds, 75ms latency, 5M params (the papers' mobile budgets).
    """

    name = "mnas"

    def __init__(self, cost: str = "macs", target: str | float | None = None, constraint: str = "soft",
                 w: float | None = None) -> None:
        if cost not in COSTS:
            raise ConfigError(f"unknown cost {cost!r}; valid: {', '.join(COSTS)}", field="cost")
        if constraint not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {constraint!r}; valid: {', '.join(CONSTRAINTS)}",
                              field="constraint")
        self.cost = cost
        self.key = COSTS[cost]
        self.constraint = constraint
        self.target = parse_quantity(DEFAULT_TARGETS[cost] if target is None else target, kind=cost,
                                     what="target")
        if constraint == "soft":
            self.alpha = self.beta = SOFT_W if w is None else number("w", w, self.name)
        else:
            self.alpha, self.beta = 0.0, -1.0 if w is None else number("w", w, self.name)
        self.directions = {"accuracy": "max", self.key: "min"}
        self.needs_latency = cost == "latency"

    @classmethod
    def from_settings(cls, settings: Any) -> "MnasObjective":
        """From ``cost``, ``target``, ``w`` and ``reward_constraint`` (a search's ``constraint``)."""
        return cls(cost=settings.cost, target=settings.target, constraint=settings.reward_constraint, w=settings.w)

    def _reward(self, quality: float, values: Mapping[str, Any]) -> float:
        x = self.need(values, self.key)
        w = self.alpha if x <= self.target else self.beta
        return quality * (x / self.target) ** w

    def describe(self) -> str:
        label, target = _LABELS[self.cost], format_quantity(self.target, self.key)
        if self.constraint == "soft":
            return f"mnas: {self.quality_label} x ({label}/{target})^{self.alpha:g}"
        q = self.quality_label
        return f"mnas (hard): {q} if {label} <= {target}, else {q} x ({label}/{target})^{self.beta:g}"


__all__ = ["MnasObjective", "COSTS", "CONSTRAINTS", "DEFAULT_TARGETS"]
