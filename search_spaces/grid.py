"""The α/β/γ grid of compound scaling as a search space.

Step 1 of compound scaling is a search like any other, over three decisions (``alpha``, ``beta``,
``gamma``) whose allowed combinations are the grid points of :func:`nas.compound.enumerate_grid`
(those within the constraint, plus the paper's reference). The engine trains them through the same
loop, store, dedupe and runners as ``nas search``; a controller proposes the points in order.

What a point is, per :mod:`nas.compound`:

* full size: the base scaled by depth α^φ, width β^φ, resolution γ^φ (its counted cost is the cost
  the reward and the constraint see);
* trained: :func:`nas.compound.proxy_for_point`, the search's proxy grown by the same multipliers.

Each point also carries its cost ratios (``predicted``, ``actual``), ``reference`` and
``in_constraint`` as extra stored values, which the grid's writers read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from nas.compound import GridPoint, proxy_for_point
from nas.decisions import Decision
from nas.errors import SpaceError
from nas.spec import ArchSpec

AXES = ("alpha", "beta", "gamma")


def coordinates(values: Mapping[str, Any]) -> tuple[float, float, float]:
    """A point's (alpha, beta, gamma), rounded so that stored and enumerated points compare equal."""
    return tuple(round(float(values[name]), 10) for name in AXES)  # type: ignore[return-value]


@dataclass(frozen=True)
class CompoundGridSpace:
    """The grid points of one base network (reference point first)."""

    base: ArchSpec
    points: tuple[GridPoint, ...]
    proxy: Any  # search_spaces.ProxyConfig of the search whose proxy the points grow
    decisions: tuple[Decision, ...] = field(init=False)
    proxies: tuple[ArchSpec, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        decisions = tuple(Decision(name, tuple(sorted({getattr(p, name) for p in self.points}))) for name in AXES)
        object.__setattr__(self, "decisions", decisions)
        object.__setattr__(self, "proxies", tuple(proxy_for_point(self.base, p.coefficients, p.phi, self.proxy)
                                                  for p in self.points))

    @property
    def name(self) -> str:
        return "compound-grid"

    def choices_of(self, point: GridPoint) -> tuple[int, ...]:
        return tuple(d.options.index(getattr(point, d.name)) for d in self.decisions)

    def index(self, choices: Sequence[int]) -> int:
        """Which point the choices name; SpaceError for a combination that is not a grid point."""
        values = {d.name: d.options[int(c)] for d, c in zip(self.decisions, choices)}
        wanted = coordinates(values)
        for i, point in enumerate(self.points):
            if coordinates({n: getattr(point, n) for n in AXES}) == wanted:
                return i
        raise SpaceError(f"(alpha, beta, gamma) = {wanted} is not a point of this grid")

    def extra_values(self, i: int) -> dict[str, float]:
        p = self.points[i]
        return {"predicted": p.predicted, "actual": p.actual, "reference": float(p.reference),
                "in_constraint": float(p.in_constraint)}


__all__ = ["AXES", "CompoundGridSpace", "coordinates"]
