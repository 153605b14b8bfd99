"""Pareto frontiers of a search: which candidates no other candidate beats on every objective.

Two layers, so the maths can be tested apart from the storage:

* arrays (numpy only): :func:`non_dominated_mask`, :func:`front_ranks`, :func:`crowding_distance`,
  :func:`hypervolume`, :func:`knee_index`. They take an ``(n, k)`` array of objective values and a
  direction per column (``"max"`` or ``"min"``); internally every column is turned into one to
  minimize, so the rest of the code has a single case.
* frames (pandas): :func:`analyze` takes the store's DataFrame (``RunStore.dataframe()``, the
  ``trials.csv`` columns), drops failed / pruned rows and repeats of one architecture, and returns a
  :class:`ParetoResult` with a front rank and crowding distance per candidate.

Dominance is the usual one: ``a`` dominates ``b`` when ``a`` is at least as good on every objective
and strictly better on one. Two candidates with identical values do not dominate each other, so
ties share a front.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from nas.errors import ConfigError, StorageError

DIRECTIONS = ("max", "min")
DEFAULT_OBJECTIVES = "accuracy:max,macs:min"

# Metric columns of trials.csv that can serve as objectives even when a run left them all empty.
METRIC_COLUMNS = ("reward", "accuracy", "macs", "params", "step_time_ms", "latency_ms", "proxy_macs", "loss",
                  "epochs", "wall_time_s")
# Numeric columns that identify rows rather than measure them.
_NOT_OBJECTIVES = ("trial", "reused_from", "front", "crowding")


# ------------------------------------------------------------------------------------ objectives
@dataclass(frozen=True)
class Axis:
    """One axis of the trade-off: a column name and whether larger or smaller is better."""

    name: str
    direction: str = "max"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"objective {self.name!r}: direction must be max or min, got {self.direction!r}")

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


@dataclass(frozen=True)
class Axes:
    """The objectives of one Pareto analysis, in the order the user gave them.

    >>> Axes.parse("accuracy:max,macs:min").directions
    ('max', 'min')
    """

    items: tuple[Axis, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ConfigError("objectives: give at least one NAME:max or NAME:min", field="objectives")
        names = [o.name for o in self.items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"objectives: {', '.join(dupes)} given twice", field="objectives")

    @classmethod
    def parse(cls, text: str | Sequence[str] | "Axes") -> "Axes":
        """Read ``"accuracy:max,macs:min"``; a bare name means ``max`` except for known costs."""
        if isinstance(text, Axes):
            return text
        parts = text.split(",") if isinstance(text, str) else list(text)
        items = []
        for part in (p.strip() for p in parts):
            if not part:
                continue
            name, sep, direction = part.partition(":")
            name, direction = name.strip(), direction.strip().lower()
            if not name:
                raise ConfigError(f"objectives: {part!r} has no column name (expected NAME:max or NAME:min)",
                                  field="objectives")
            if not sep:
                direction = "max" if name in ("accuracy", "reward") else "min"
            if direction not in DIRECTIONS:
                raise ConfigError(f"objectives: {part!r}: direction must be max or min", field="objectives")
            items.append(Axis(name, direction))
        return cls(tuple(items))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.items)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __str__(self) -> str:
        return ",".join(str(o) for o in self.items)


# ---------------------------------------------------------------------------------------- arrays
def _as_points(values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    points = np.asarray(values, dtype=float)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2:
        raise ValueError(f"expected an (n, k) array of objective values, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("objective values must be finite (drop rows with missing values first)")
    return points


def to_minimization(values: np.ndarray | Sequence[Sequence[float]],
                    directions: Sequence[str] | None = None) -> np.ndarray:
    """A copy in which every column is to be minimized (``max`` columns are negated)."""
    points = _as_points(values)
    if directions is None:
        return points.copy()
    if len(directions) != points.shape[1]:
        raise ValueError(f"{len(directions)} directions for {points.shape[1]} objective columns")
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"direction must be max or min, got {bad[0]!r}")
    return points * signs


def _mask_2d(points: np.ndarray) -> np.ndarray:
    """O(n log n): after a lexicographic sort a point is dominated iff an earlier point beats its f1.

    Within one run of equal f0 the first point (smallest f1) dominates the others unless they tie
    with it; across runs, the running minimum of f1 over strictly smaller f0 must stay above f1.
    """
    n = len(points)
    order = np.lexsort((points[:, 1], points[:, 0]))
    f0, f1 = points[order, 0], points[order, 1]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = f0[1:] != f0[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    group_min = f1[group_start]  # sorted by f1 inside a group
    running_min = np.minimum.accumulate(f1)
    before = np.where(group_start > 0, running_min[np.maximum(group_start - 1, 0)], np.inf)
    dominated = (before <= f1) | (group_min < f1)
    mask = np.empty(n, dtype=bool)
    mask[order] = ~dominated
    return mask


def _mask_general(points: np.ndarray) -> np.ndarray:
    """Vectorised filter: visit candidates best-sum first; each survivor removes all it dominates.

    The cost is O(n * size of the frontier * k), each step a numpy pass over the survivors.
    """
    n = len(points)
    order = np.argsort(points.sum(axis=1), kind="stable")
    pts = points[order]
    alive = np.arange(n)
    i = 0
    while i < len(alive):
        current = alive[i]
        p = pts[current]
        rest = pts[alive]
        dominated = np.all(p <= rest, axis=1) & np.any(p < rest, axis=1)
        alive = alive[~dominated]
        # p never dominates itself, so it survives; continue after it (alive stays sorted).
        i = int(np.searchsorted(alive, current)) + 1
    mask = np.zeros(n, dtype=bool)
    mask[order[alive]] = True
    return mask


def non_dominated_mask(values: np.ndarray | Sequence[Sequence[float]],
                       directions: Sequence[str] | None = None) -> np.ndarray:
    """Boolean mask of the candidates that no other candidate dominates (ties kept together).

    ``directions`` gives ``"max"`` or ``"min"`` per column (default: minimize all).
    """
    points = to_minimization(values, directions)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    if points.shape[1] == 1:
        return points[:, 0] == points[:, 0].min()
    if points.shape[1] == 2:
        return _mask_2d(points)
    return _mask_general(points)


def _ranks_2d(points: np.ndarray) -> np.ndarray:
    """Front of each distinct point by one sweep: a point joins the first front none of whose members
    beats its f1 (the fronts' smallest f1 values stay sorted, so a binary search finds it)."""
    unique, inverse = np.unique(points, axis=0, return_inverse=True)  # lexicographic order
    front_min: list[float] = []
    ranks = np.empty(len(unique), dtype=int)
    for i, f1 in enumerate(unique[:, 1].tolist()):
        r = bisect.bisect_right(front_min, f1)
        if r == len(front_min):
            front_min.append(f1)
        else:
            front_min[r] = f1
        ranks[i] = r
    return ranks[inverse.reshape(-1)]


def front_ranks(values: np.ndarray | Sequence[Sequence[float]],
                directions: Sequence[str] | None = None) -> np.ndarray:
    """Non-dominated sorting: 0 for the frontier, 1 for the frontier of the rest, and so on."""
    points = to_minimization(values, directions)
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=int)
    if points.shape[1] == 2:
        return _ranks_2d(points)
    ranks = np.full(n, -1, dtype=int)
    remaining = np.arange(n)
    rank = 0
    while len(remaining):
        mask = non_dominated_mask(points[remaining])
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def crowding_distance(values: np.ndarray | Sequence[Sequence[float]],
                      ranks: np.ndarray | None = None,
                      directions: Sequence[str] | None = None) -> np.ndarray:
    """NSGA-II crowding distance within each front: how much room a candidate has around it.

    Per objective, the two ends of a front get infinity and every other member adds the gap
    between its neighbours divided by the front's span. Larger means more isolated.
    """
    points = to_minimization(values, directions)
    n, k = points.shape
    if ranks is None:
        ranks = front_ranks(points)
    distance = np.zeros(n)
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        if len(members) <= 2:
            distance[members] = np.inf
            continue
        for j in range(k):
            order = members[np.argsort(points[members, j], kind="stable")]
            col = points[order, j]
            span = col[-1] - col[0]
            distance[order[0]] = distance[order[-1]] = np.inf
            if span > 0:
                distance[order[1:-1]] += (col[2:] - col[:-2]) / span
    return distance


def default_reference(values: np.ndarray | Sequence[Sequence[float]],
                      directions: Sequence[str] | None = None) -> np.ndarray:
    """A reference point every candidate beats, in the original units.

    * maximized objective (accuracy): 0 when no value is negative, else the worst value minus 10%
      of its magnitude;
    * minimized objective (a cost): 1.1 x the worst (largest) value, or worst + 1 when that is 0
      or negative values make 1.1 x meaningless.

    Pass the union of several runs to get one reference, so that their hypervolumes compare.
    """
    points = _as_points(values)
    directions = tuple(directions) if directions is not None else ("min",) * points.shape[1]
    ref = np.empty(points.shape[1])
    for j, d in enumerate(directions):
        col = points[:, j]
        if d == "max":
            worst = col.min()
            ref[j] = 0.0 if worst >= 0 else worst - 0.1 * abs(worst)
        else:
            worst = col.max()
            ref[j] = 1.1 * worst if worst > 0 else worst + 1.0
    return ref


def _hv_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by minimization points inside the box up to ``ref`` (points already inside)."""
    front = points[_mask_2d(points)] if len(points) else points
    if not len(front):
        return 0.0
    front = front[np.lexsort((front[:, 1], front[:, 0]))]
    # Sorted by f0 ascending the frontier has f1 descending: a staircase of disjoint slabs.
    widths = np.diff(np.append(front[:, 0], ref[0]))
    heights = ref[1] - front[:, 1]
    return float(np.sum(widths * heights))


def _hv_3d(points: np.ndarray, ref: np.ndarray) -> float:
    """Volume by slicing along f2: between consecutive f2 levels the dominated region is the 2D area
    of every point at or below that level."""
    if not len(points):
        return 0.0
    points = points[_mask_general(points)]
    order = np.argsort(points[:, 2], kind="stable")
    points = points[order]
    levels = np.append(points[:, 2], ref[2])
    volume = 0.0
    for i in range(len(points)):
        thickness = levels[i + 1] - levels[i]
        if thickness > 0:
            volume += thickness * _hv_2d(points[: i + 1, :2], ref[:2])
    return volume


def hypervolume(values: np.ndarray | Sequence[Sequence[float]], reference: Sequence[float] | None = None,
                directions: Sequence[str] | None = None) -> float:
    """Exact volume of objective space dominated by the candidates and bounded by ``reference``.

    Works for 1, 2 or 3 objectives. A point that is not strictly better than the reference on
    every objective adds nothing and is left out. ``reference`` is in the original units
    (default: :func:`default_reference` of these values). Larger is better.
    """
    raw = _as_points(values)
    k = raw.shape[1]
    directions = tuple(directions) if directions is not None else ("min",) * k
    if k > 3:
        raise ConfigError(f"hypervolume is computed exactly for 1 to 3 objectives, not {k}")
    if len(raw) == 0:
        return 0.0
    ref_raw = default_reference(raw, directions) if reference is None else np.asarray(reference, dtype=float)
    if ref_raw.shape != (k,):
        raise ConfigError(f"reference point has {ref_raw.size} values for {k} objectives")
    points = to_minimization(raw, directions)
    ref = to_minimization(ref_raw[None, :], directions)[0]
    points = points[np.all(points < ref, axis=1)]
    if not len(points):
        return 0.0
    if k == 1:
        return float(ref[0] - points[:, 0].min())
    if k == 2:
        return _hv_2d(points, ref)
    return _hv_3d(points, ref)


def knee_index(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str] | None = None) -> int:
    """Index of the knee among the frontier's candidates (rows not on the frontier are ignored).

    Method: normalize each objective over the frontier to [0, 1] (0 = best, 1 = worst), take the
    hyperplane through the k extreme points (each best on one objective) and return the frontier
    member farthest from it on the side of the ideal point: the candidate where giving up a little
    of one objective stops buying much of the others. In two objectives the extremes are (0, 1)
    and (1, 0) and this is the smallest sum of normalized values. When the extreme points do not
    span a hyperplane (k > 2, degenerate fronts) it falls back to the member closest to the ideal
    point. Ties go to the member best on the first objective, then the second, and so on.
    """
    points = to_minimization(values, directions)
    if len(points) == 0:
        raise ValueError("knee of an empty set")
    candidates = np.flatnonzero(non_dominated_mask(points))
    front = points[candidates]
    lo, hi = front.min(axis=0), front.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (front - lo) / span
    k = norm.shape[1]
    score: np.ndarray
    if k == 1:
        score = norm[:, 0]
    else:
        extremes = norm[np.argmin(norm, axis=0)]  # row j: the member best on objective j
        try:
            # Hyperplane w.x = 1 through the extremes; the ideal point (origin) lies on the side w.x < 1.
            w = np.linalg.solve(extremes, np.ones(k))
            if not np.all(np.isfinite(w)) or np.any(w <= 0):
                raise np.linalg.LinAlgError
            score = norm @ (w / np.linalg.norm(w))
        except np.linalg.LinAlgError:
            score = np.linalg.norm(norm, axis=1)
    # Smallest score first; ties broken by the objectives in order (np.lexsort's last key is primary).
    order = np.lexsort(tuple(front[:, j] for j in reversed(range(k))) + (np.round(score, 12),))
    return int(candidates[order[0]])


# ---------------------------------------------------------------------------------------- frames
@dataclass
class ParetoResult:
    """The Pareto analysis of one run.

    ``candidates`` holds the analysed rows (completed, distinct, with every objective present) with
    two added columns: ``front`` (0 = on the frontier) and ``crowding``. ``excluded`` counts what was
    left out and why, e.g. ``{"failed": 3, "pruned": 2, "repeat": 4}``.
    """

    objectives: Axes
    candidates: "pd.DataFrame"
    excluded: Mapping[str, int] = field(default_factory=dict)
    label: str = ""

    @property
    def frontier(self):
        """Rows on the frontier, best first on the first objective (then the next ones)."""
        front = self.candidates[self.candidates["front"] == 0]
        ascending = [d == "min" for d in self.objectives.directions]
        return front.sort_values(list(self.objectives.names) + ["trial"], ascending=ascending + [True],
                                 kind="stable")

    def values(self) -> np.ndarray:
        return self.candidates[list(self.objectives.names)].to_numpy(dtype=float)

    def hypervolume(self, reference: Sequence[float] | None = None) -> float:
        return hypervolume(self.values(), reference, self.objectives.directions)

    def knee(self) -> int:
        """Trial number of the knee point."""
        return int(self.candidates["trial"].iloc[knee_index(self.values(), self.objectives.directions)])

    def best_reward(self) -> int | None:
        """Trial number of B0, the candidate with the best reward (None without rewards)."""
        rewards = self.candidates["reward"].astype(float) if "reward" in self.candidates else None
        if rewards is None or rewards.isna().all():
            return None
        return int(self.candidates.loc[rewards.idxmax(), "trial"])

    def excluded_text(self) -> str:
        """'3 failed, 2 pruned excluded; 4 repeats counted once' (empty when nothing was left out)."""
        parts = [f"{n} {why}" for why, n in self.excluded.items() if n and why not in ("repeat",)
                 and not why.startswith("missing ")]
        missing = [f"{n} without {why[len('missing '):]}" for why, n in self.excluded.items()
                   if n and why.startswith("missing ")]
        text = ", ".join(parts + missing)
        text = f"{text} excluded" if text else ""
        repeats = self.excluded.get("repeat", 0)
        if repeats:
            text += ("; " if text else "") + f"{repeats} repeat{'s' if repeats != 1 else ''} of an earlier " \
                                             f"architecture counted once"
        return text


def numeric_columns(frame: "pd.DataFrame") -> list[str]:
    """Columns of a trials frame that can be objectives: the metric columns and numeric params."""
    import pandas as pd  # pandas: imported when a table is made

    names = [c for c in METRIC_COLUMNS if c in frame.columns]
    for c in frame.columns:
        if c in names or c in _NOT_OBJECTIVES or c in METRIC_COLUMNS:
            continue
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            names.append(c)
    return names


def analyze(frame: "pd.DataFrame", objectives: str | Axes = DEFAULT_OBJECTIVES, label: str = "") -> ParetoResult:
    """Front ranks and crowding of a run's candidates (``frame``: ``RunStore.dataframe()`` or trials.csv).

    Rows whose status is not ``ok`` are excluded and counted by status. An architecture proposed
    several times (same ``key``) counts once: the first trial is kept, later ones are counted as
    repeats. Rows missing a value of an objective (e.g. no latency measured) are excluded and counted.
    """
    import pandas as pd  # pandas: imported when a table is made

    objectives = Axes.parse(objectives)
    available = numeric_columns(frame)
    for name in objectives.names:
        if name not in available:
            raise ConfigError(f"unknown objective {name!r}; available numeric columns: {', '.join(available)}")
    where = f"{label}: " if label else ""
    if "trial" not in frame.columns:  # a frame from elsewhere: number rows in order
        frame = frame.assign(trial=np.arange(len(frame)))
    frame = frame.sort_values("trial", kind="stable")
    if "stage" in frame.columns:  # re-ranked leaders and fidelity checks are re-measurements, not candidates
        frame = frame[frame["stage"].isna() | frame["stage"].isin(["search", "grid"])]
    status = frame["status"].fillna("failed").astype(str) if "status" in frame.columns else \
        pd.Series("ok", index=frame.index)
    excluded: dict[str, int] = {}
    for name, count in status[status != "ok"].value_counts().items():
        excluded[str(name)] = int(count)
    ok = frame[status == "ok"]
    if ok.empty:
        detail = ", ".join(f"{n} {s}" for s, n in excluded.items()) or "no trials"
        raise StorageError(f"{where}no completed trial ({detail})")
    if "key" in ok.columns:
        keys = ok["key"]
        repeat = keys.notna() & keys.duplicated(keep="first")
        excluded["repeat"] = int(repeat.sum())
        ok = ok[~repeat]
    ok = ok.copy()
    for name in objectives.names:
        ok[name] = pd.to_numeric(ok[name], errors="coerce")
        missing = ~np.isfinite(ok[name].to_numpy(dtype=float))
        if missing.all():
            raise ConfigError(f"{where}no completed trial has a value for objective {name!r}")
        if missing.any():
            excluded[f"missing {name}"] = int(missing.sum())
            ok = ok[~missing]
    values = ok[list(objectives.names)].to_numpy(dtype=float)
    ranks = front_ranks(values, objectives.directions)
    ok["front"] = ranks
    ok["crowding"] = crowding_distance(values, ranks, objectives.directions)
    return ParetoResult(objectives, ok, excluded, label)


def common_reference(results: Sequence[ParetoResult]) -> np.ndarray:
    """One reference point for several runs (the default rule over all their candidates)."""
    objectives = results[0].objectives
    stacked = np.vstack([r.values() for r in results])
    return default_reference(stacked, objectives.directions)


def ideal_point(results: Sequence[ParetoResult]) -> np.ndarray:
    """The best value of each objective over all candidates of all runs (original units)."""
    objectives = results[0].objectives
    stacked = to_minimization(np.vstack([r.values() for r in results]), objectives.directions)
    return to_minimization(stacked.min(axis=0)[None, :], objectives.directions)[0]


def normalized_hypervolume(hv: float, ideal: Sequence[float], reference: Sequence[float]) -> float:
    """Hypervolume as a fraction of the box between the ideal and the reference point.

    The raw number is in units such as accuracy x multiply-adds; the fraction reads at a glance and
    still compares runs when they share both points. 1.0 would mean one candidate best on everything.
    """
    box = float(np.prod(np.abs(np.asarray(reference, dtype=float) - np.asarray(ideal, dtype=float))))
    return hv / box if box > 0 else float("nan")


__all__ = ["Axis", "Axes", "ParetoResult", "analyze", "common_reference", "crowding_distance",
           "default_reference", "front_ranks", "hypervolume", "ideal_point", "knee_index", "non_dominated_mask",
           "normalized_hypervolume", "numeric_columns", "to_minimization", "DEFAULT_OBJECTIVES"]
