"""Compound scaling: the alpha / beta / gamma grid and the B1..BN family of one base network.

EfficientNet scales a base network's depth by alpha^phi, its width by beta^phi and its input
resolution by gamma^phi, with alpha * beta^2 * gamma^2 ~ 2 so that each step of phi about doubles
the multiply-adds. This module holds the pure parts of that method (no training, no files):

* :func:`enumerate_grid` lists the (alpha, beta, gamma) points of a grid that satisfy the
  constraint, either by the formula ``(alpha * beta^2 * gamma^2)^phi`` (``constraint="formula"``)
  or by the counted multiply-add ratio of the scaled network (``constraint="actual"``). The two
  differ because repeats are rounded up, channels to multiples of 8 and the resolution as below.
  The paper's point (1.2, 1.1, 1.15) is always in the list, marked ``reference``, even where it
  falls outside the constraint.
* :func:`apply_coefficients` / :func:`apply_official` build phi = 0..N from fixed coefficients or
  from the published EfficientNet B1..B7 table.
* :func:`proxy_for_point` is the smaller network a grid point trains as (see below).

Tolerance. A point is kept when ``|ratio / 2^phi - 1| <= tol``: the tolerance is *relative*, so
``tol=0.1`` means "within 10% of the target cost" whatever phi is, and the same number means the
same thing for the formula and for the counted ratio.

Resolution rounding. ``scaled_resolution`` rounds ``base * gamma^phi`` to the nearest multiple of
4 (at least 4; ``gamma^phi == 1`` keeps the base's own resolution, so phi = 0 is the identity).
Why 4: every published EfficientNet resolution (224, 240, 260, 300, 380, 456, 528, 600) is a
multiple of 4 but not all are multiples of 8 (260), so the official table is reproduced exactly;
the rounding moves the resolution by at most 2 px (under 1% at 224 px, so under 2% of the cost).

Proxy rule. A grid point cannot train at full size in a short budget, so it trains as the search's
proxy scaled by the point: width ``proxy.width * beta^phi``, depth ``proxy.depth * alpha^phi`` and
resolution ``proxy.resolution * gamma^phi`` applied in one step to the base (one rounding, not a
rounding of an already rounded proxy, which would turn every 1-block stage into 2 blocks for any
alpha > 1). The proxy resolution is rounded to the nearest pixel, not to a multiple of 4: at 16 to
32 px a multiple of 4 would erase most gamma steps. So what the grid compares is how the same
proxy gains from spending its doubled budget on depth, width or resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from nas.counting import count
from nas.errors import ConfigError
from nas.scaling import EFFICIENTNET_PARAMS, scale_spec
from nas.spec import ArchSpec

PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)  # alpha, beta, gamma found for B0 (EfficientNet paper, section 3.3)
RESOLUTION_MULTIPLE = 4
CONSTRAINTS = ("formula", "actual")
OFFICIAL_BASE_RESOLUTION = 224
_EPS = 1e-9  # float slack of the constraint test (1.1 * 1.1 is not exactly 1.21)


# ------------------------------------------------------------------------------------ coefficients
@dataclass(frozen=True)
class Coefficients:
    """alpha (depth), beta (width), gamma (resolution); each >= 1 (compound scaling only grows)."""

    alpha: float
    beta: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a number >= 1, got {value!r}", field=name)
            if value < 1:
                raise ConfigError(f"{name} must be >= 1 (compound scaling grows the network), got {value:g}",
                                  field=name)
            object.__setattr__(self, name, float(value))

    @property
    def product(self) -> float:
        """alpha * beta^2 * gamma^2: the multiply-add growth of one phi step, by the formula."""
        return self.alpha * self.beta ** 2 * self.gamma ** 2

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.alpha, self.beta, self.gamma)

    def is_reference(self) -> bool:
        return all(math.isclose(a, b, abs_tol=_EPS) for a, b in zip(self.as_tuple(), PAPER_COEFFICIENTS))


PAPER = Coefficients(*PAPER_COEFFICIENTS)


def check_phi(phi: float, integer: bool = False, name: str = "phi") -> float:
    """phi must be >= 0 (and a whole number where it counts models B1..BN)."""
    if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not math.isfinite(phi):
        raise ConfigError(f"{name} must be a number >= 0, got {phi!r}", field=name)
    if phi < 0:
        raise ConfigError(f"{name} must be >= 0, got {phi:g}", field=name)
    if integer and float(phi) != int(phi):
        raise ConfigError(f"{name} must be a whole number (it counts the models B1..BN), got {phi:g}", field=name)
    return int(phi) if integer else float(phi)


# ---------------------------------------------------------------------------------------- rounding
def scaled_resolution(resolution: int, factor: float, multiple: int = RESOLUTION_MULTIPLE) -> int:
    """``resolution * factor`` rounded to the nearest multiple of ``multiple`` (see the module doc).

    A factor of exactly 1 returns ``resolution`` unchanged, whatever it is a multiple of.
    """
    if factor == 1:
        return int(resolution)
    return max(multiple, int(round(resolution * factor / multiple)) * multiple)


def proxy_resolution(resolution: int, scale: float) -> int:
    """``resolution * scale`` rounded to the nearest pixel, at least 8: a proxy's image size.

    Proxies run at 16 to 48 px, where a multiple of 4 (:func:`scaled_resolution`) would erase the
    differences a proxy is meant to keep (see the module doc). ``nas train --resolution-scale`` and
    the scaling grid's proxies round alike, so a B1 trained at its own resolution x 32/224 sees the
    size the grid measured it at.
    """
    return max(8, int(round(resolution * scale)))


def scale_compound(base: ArchSpec, coefficients: Coefficients, phi: float) -> ArchSpec:
    """The base scaled by depth alpha^phi, width beta^phi and resolution gamma^phi.

    Repeats round up and channels round to multiples of 8 (:func:`nas.scaling.scale_spec`); the
    resolution follows :func:`scaled_resolution`. phi = 0 returns ``base`` itself.
    """
    phi = check_phi(phi)
    if phi == 0:
        return base
    c = coefficients
    spec = scale_spec(base, width=c.beta ** phi, depth=c.alpha ** phi,
                      resolution=scaled_resolution(base.resolution, c.gamma ** phi))
    return spec.with_(name=_scaled_name(base, phi))


def _scaled_name(base: ArchSpec, phi: float) -> str:
    label = f"b{phi:g}" if float(phi).is_integer() else f"phi{phi:g}"
    return f"{base.name}-{label}" if base.name else label


def proxy_for_point(base: ArchSpec, coefficients: Coefficients, phi: float, proxy: Any) -> ArchSpec:
    """What a grid point trains: the base's proxy grown by the point (see the module docstring).

    ``proxy`` is a :class:`search_spaces.ProxyConfig` (``width``, ``depth``, ``resolution``).
    """
    c = coefficients
    resolution = proxy_resolution(proxy.resolution, c.gamma ** phi)
    spec = scale_spec(base, width=proxy.width * c.beta ** phi, depth=proxy.depth * c.alpha ** phi,
                      resolution=resolution)
    return spec.with_(name=f"{spec.name}-proxy" if spec.name else "proxy")


# -------------------------------------------------------------------------------------------- grid
def grid_values(step: float, high: float, low: float = 1.0) -> tuple[float, ...]:
    """low, low + step, ... up to ``high`` inclusive, rounded to kill float drift (1.1, not 1.1000000000000001)."""
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
        raise ConfigError(f"step must be a number > 0, got {step!r}", field="step")
    if isinstance(high, bool) or not isinstance(high, (int, float)) or not math.isfinite(high) or high < low:
        raise ConfigError(f"max must be a number >= {low:g}, got {high!r}", field="max")
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    if n > 200:
        raise ConfigError(f"step {step:g} up to max {high:g} gives {n} values per coefficient; use a coarser step",
                          field="step")
    return tuple(round(low + i * step, 10) for i in range(n))


@dataclass(frozen=True)
class GridPoint:
    """One (alpha, beta, gamma) with its scaled network and both cost ratios.

    ``predicted`` is ``(alpha * beta^2 * gamma^2)^phi``; ``actual`` is
    ``count(spec).macs / count(base).macs`` for the rounded network. ``in_constraint`` says whether
    the point satisfies the grid's constraint; only the reference may be listed without it.
    """

    coefficients: Coefficients
    phi: float
    predicted: float
    actual: float
    macs: int
    params: int
    spec: ArchSpec = field(repr=False)
    reference: bool = False
    in_constraint: bool = True

    @property
    def alpha(self) -> float:
        return self.coefficients.alpha

    @property
    def beta(self) -> float:
        return self.coefficients.beta

    @property
    def gamma(self) -> float:
        return self.coefficients.gamma

    @property
    def label(self) -> str:
        return f"({self.alpha:g}, {self.beta:g}, {self.gamma:g})"

    def row(self) -> dict[str, Any]:
        """The columns of the predicted-vs-actual table (and of ``scaling.csv``)."""
        return {
            "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "reference": self.reference,
            "in_constraint": self.in_constraint, "predicted": self.predicted, "actual": self.actual,
            "depth": self.alpha ** self.phi, "width": self.beta ** self.phi, "resolution": self.spec.resolution,
            "macs": self.macs, "params": self.params, "key": self.spec.key(),
        }


def within(ratio: float, target: float, tol: float) -> bool:
    """The grid's relative tolerance test: ``|ratio / target - 1| <= tol``."""
    return abs(ratio / target - 1.0) <= tol + _EPS


def enumerate_grid(base: ArchSpec, phi: float = 1.0, step: float = 0.05, high: float = 1.5, tol: float = 0.1,
                   constraint: str = "formula") -> list[GridPoint]:
    """The points of the alpha/beta/gamma grid in [1, high] that cost about 2^phi times the base.

    The reference (1.2, 1.1, 1.15) comes first, then the kept points in (alpha, beta, gamma) order.
    Raises :class:`ConfigError` when no point satisfies the constraint.
    """
    phi = check_phi(phi)
    if phi == 0:
        raise ConfigError("phi must be > 0 for a grid (at phi 0 every point is the base itself)", field="phi")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
        raise ConfigError(f"tol must be a number >= 0, got {tol!r}", field="tol")
    if constraint not in CONSTRAINTS:
        raise ConfigError(f"unknown constraint {constraint!r}; valid: {', '.join(CONSTRAINTS)}")
    values = grid_values(step, high)
    target = 2.0 ** phi
    base_macs = count(base).macs
    cache: dict[str, tuple[int, int]] = {}

    def point(c: Coefficients, reference: bool) -> GridPoint:
        spec = scale_compound(base, c, phi)
        key = spec.key()
        if key not in cache:
            cost = count(spec)
            cache[key] = (cost.macs, cost.params)
        macs, params = cache[key]
        predicted = c.product ** phi
        actual = macs / base_macs
        ok = within(predicted if constraint == "formula" else actual, target, tol)
        return GridPoint(c, phi, predicted, actual, macs, params, spec, reference, ok)

    kept: list[GridPoint] = []
    misses: list[tuple[float, str]] = []  # how far each rejected point is from the target, for the error
    for a in values:
        for b in values:
            for g in values:
                c = Coefficients(a, b, g)
                if constraint == "formula" and not within(c.product ** phi, target, tol):
                    misses.append((abs(c.product ** phi / target - 1), f"({a:g}, {b:g}, {g:g})"))
                    continue
                p = point(c, c.is_reference())
                if p.in_constraint:
                    kept.append(p)
                else:
                    misses.append((abs(p.actual / target - 1), p.label))
    if not kept:
        miss, label = min(misses)
        raise ConfigError(f"tol {tol:g} leaves the grid empty: no point of step {step:g} up to max {high:g} "
                          f"has a {'formula' if constraint == 'formula' else 'counted'} cost ratio within {tol * 100:g}% of "
                          f"2^{phi:g} = {target:g}; the closest, "
                          f"{label}, is {miss:.1%} off", field="tol")
    reference = next((p for p in kept if p.reference), None)
    if reference is None:
        reference = point(PAPER, True)
    return [reference] + [p for p in kept if not p.reference]


def ratio_table(points: Sequence[GridPoint]):
    """The predicted-vs-actual table as a pandas DataFrame (one row per point)."""
    import pandas as pd  # pandas: imported when a table is made

    return pd.DataFrame([p.row() for p in points])


# ------------------------------------------------------------------------------------------- apply
@dataclass(frozen=True)
class ScaledModel:
    """One member of a scaled family: phi, its multipliers, resolution, counted cost and spec.

    For the official table, ``paper_*`` hold the powers of the paper's (1.2, 1.1, 1.15) at the same
    phi, to show how far the published coefficients are from exact powers.
    """

    phi: int
    depth: float
    width: float
    resolution_factor: float
    resolution: int
    params: int
    macs: int
    spec: ArchSpec = field(repr=False)
    dropout: float = 0.2
    paper_depth: float | None = None
    paper_width: float | None = None
    paper_resolution: int | None = None

    def row(self) -> dict[str, Any]:
        data = {"phi": self.phi, "depth": self.depth, "width": self.width,
                "resolution_factor": self.resolution_factor, "resolution": self.resolution,
                "params": self.params, "macs": self.macs, "key": self.spec.key()}
        if self.paper_depth is not None:
            data.update(paper_depth=self.paper_depth, paper_width=self.paper_width,
                        paper_resolution=self.paper_resolution)
        return data


def apply_coefficients(base: ArchSpec, coefficients: Coefficients, phi_max: int) -> list[ScaledModel]:
    """phi = 0..phi_max of the base under fixed coefficients; phi 0 is the base itself."""
    phi_max = check_phi(phi_max, integer=True)
    out = []
    for phi in range(phi_max + 1):
        spec = scale_compound(base, coefficients, phi)
        cost = count(spec)
        out.append(ScaledModel(phi, coefficients.alpha ** phi, coefficients.beta ** phi, coefficients.gamma ** phi,
                               spec.resolution, cost.params, cost.macs, spec, spec.dropout))
    return out


def official_row(phi: int) -> tuple[float, float, int, float]:
    """(width, depth, resolution, dropout) of EfficientNet-B``phi`` as published."""
    return EFFICIENTNET_PARAMS[f"efficientnet-b{phi}"]


def apply_official(base: ArchSpec, phi_max: int) -> list[ScaledModel]:
    """B0..B``phi_max`` with the published (width, depth, resolution, dropout) of EfficientNet.

    The resolution factor is the published resolution over 224, so a 224 px base gets exactly the
    published resolutions and another base gets the same factors (rounded as
    :func:`scaled_resolution`). The dropout is the published one: it belongs to the table.
    """
    phi_max = check_phi(phi_max, integer=True)
    last = len(EFFICIENTNET_PARAMS) - 1
    if phi_max > last:
        raise ConfigError(f"the official table has B1..B{last}; phi must be at most {last}, got {phi_max}", field="phi")
    out = []
    for phi in range(phi_max + 1):
        width, depth, resolution, dropout = official_row(phi)
        factor = resolution / OFFICIAL_BASE_RESOLUTION
        if phi == 0:
            spec = base
        else:
            spec = scale_spec(base, width=width, depth=depth, resolution=scaled_resolution(base.resolution, factor),
                              dropout=dropout).with_(name=_scaled_name(base, phi))
        cost = count(spec)
        a, b, g = PAPER_COEFFICIENTS
        out.append(ScaledModel(phi, depth, width, factor, spec.resolution, cost.params, cost.macs, spec, spec.dropout,
                               paper_depth=a ** phi, paper_width=b ** phi,
                               paper_resolution=scaled_resolution(base.resolution, g ** phi)))
    return out


def model_document(model: ScaledModel, base: ArchSpec, coefficients: Coefficients | None,
                   source: str) -> dict[str, Any]:
    """The JSON written as ``bN.json``: loadable by :func:`nas.api.load_spec` (it holds ``"spec"``)."""
    doc: dict[str, Any] = {
        "spec": model.spec.to_dict(), "phi": model.phi, "key": model.spec.key(), "source": source,
        "depth": model.depth, "width": model.width, "resolution_factor": model.resolution_factor,
        "resolution": model.resolution, "params": model.params, "macs": model.macs,
        "base_key": base.key(), "base_name": base.name,
    }
    if coefficients is not None:
        doc.update(alpha=coefficients.alpha, beta=coefficients.beta, gamma=coefficients.gamma)
    return doc


__all__ = ["CONSTRAINTS", "Coefficients", "GridPoint", "PAPER", "PAPER_COEFFICIENTS", "RESOLUTION_MULTIPLE",
           "ScaledModel", "apply_coefficients", "apply_official", "check_phi", "enumerate_grid", "grid_values",
           "model_document", "proxy_for_point", "proxy_resolution", "ratio_table", "scale_compound",
           "scaled_resolution", "within"]
