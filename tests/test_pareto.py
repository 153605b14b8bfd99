"""Pareto maths of nas/pareto.py checked against brute force, hand-computed volumes and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import ConfigError, NasError, StorageError
from nas.pareto import (
    Axes,
    analyze,
    crowding_distance,
    default_reference,
    front_ranks,
    hypervolume,
    knee_index,
    non_dominated_mask,
    to_minimization,
)


# ----------------------------------------------------------------------------------- brute force
def dominance(points: np.ndarray) -> np.ndarray:
    """``D[i, j]``: point i dominates point j (everything minimized), every pair compared by the definition
    (no worse in every objective, better in one). A point never dominates itself."""
    a, b = points[:, None, :], points[None, :, :]
    return (a <= b).all(axis=2) & (a < b).any(axis=2)


def brute_mask(points: np.ndarray) -> np.ndarray:
    """The points that no point dominates."""
    return ~dominance(points).any(axis=0)


def random_case(rng: np.random.Generator):
    """Small integer grids make ties and exact duplicates frequent; mixed max/min directions."""
    n = int(rng.integers(1, 40))
    k = int(rng.integers(1, 5))
    levels = int(rng.integers(2, 8))
    values = rng.integers(0, levels, size=(n, k)).astype(float)
    if rng.random() < 0.3:  # explicit duplicates of existing rows
        values = np.vstack([values, values[rng.integers(0, n, size=int(rng.integers(1, 5)))]])
    if rng.random() < 0.3:  # continuous values at a larger n
        values = rng.normal(size=(int(rng.integers(40, 120)), k))
    directions = [("max", "min")[int(b)] for b in rng.integers(0, 2, size=k)]
    return values, directions


def test_frontier_matches_brute_force_on_1000_random_cases():
    rng = np.random.default_rng(20240607)
    for case in range(1000):
        values, directions = random_case(rng)
        points = to_minimization(values, directions)
        expected = brute_mask(points)
        got = non_dominated_mask(values, directions)
        assert np.array_equal(got, expected), f"case {case}: {values.tolist()} {directions}"


def test_front_ranks_are_consistent_on_1000_random_cases():
    rng = np.random.default_rng(7)
    for case in range(1000):
        values, directions = random_case(rng)
        points = to_minimization(values, directions)
        ranks = front_ranks(values, directions)
        assert np.array_equal(ranks == 0, brute_mask(points)), f"case {case}"
        assert set(np.unique(ranks)) == set(range(ranks.max() + 1)), "ranks have no gaps"
        dominated = dominance(points)
        for r in range(1, ranks.max() + 1):  # every member of front r is dominated from front r-1
            assert dominated[np.ix_(ranks == r - 1, ranks == r)].any(axis=0).all(), f"case {case}"
        # every pair (all sizes; the pair-by-pair loop this replaces checked only cases of at most 40 points)
        assert (ranks[:, None] < ranks[None, :])[dominated].all(), f"case {case}: a dominated point ranks no later"
        duplicates = (points[:, None, :] == points[None, :, :]).all(axis=2)
        assert (ranks[:, None] == ranks[None, :])[duplicates].all(), f"case {case}: duplicates share a front"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=30),
       st.lists(st.sampled_from(["max", "min"]), min_size=3, max_size=3), st.integers(2, 3))
def test_frontier_and_ranks_hypothesis(rows, directions, k):
    values = np.array(rows, dtype=float)[:, :k]
    directions = directions[:k]
    points = to_minimization(values, directions)
    assert np.array_equal(non_dominated_mask(values, directions), brute_mask(points))
    ranks = front_ranks(values, directions)
    # Peeling fronts by brute force gives the same ranks.
    expected = np.full(len(points), -1)
    remaining = np.arange(len(points))
    rank = 0
    while len(remaining):
        mask = brute_mask(points[remaining])
        expected[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    assert np.array_equal(ranks, expected)


def test_ties_duplicates_and_single_point():
    assert non_dominated_mask([[1.0, 2.0]]).tolist() == [True]
    assert front_ranks([[1.0, 2.0]]).tolist() == [0]
    same = [[1, 1], [1, 1], [1, 1]]
    assert non_dominated_mask(same).tolist() == [True] * 3
    # (1, 2) and (1, 3) tie on the first objective: the second is dominated (minimize both).
    assert non_dominated_mask([[1, 3], [1, 2], [0, 5]]).tolist() == [False, True, True]
    assert front_ranks([[1, 3], [1, 2], [0, 5], [1, 2]]).tolist() == [1, 0, 0, 0]


def test_directions_flip_the_frontier():
    values = [[0.9, 400.0], [0.8, 200.0], [0.7, 300.0], [0.95, 900.0]]
    assert non_dominated_mask(values, ["max", "min"]).tolist() == [True, True, False, True]
    # Minimize accuracy, maximize MACs: (0.8, 200) is beaten by (0.7, 300).
    assert non_dominated_mask(values, ["min", "max"]).tolist() == [True, False, True, True]


def test_large_two_objective_frontier_is_exact():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 300, size=(20_000, 2)).astype(float)
    mask = non_dominated_mask(values)
    # Independent check of sampled rows: dominated iff a point left of it is no higher, or a point in
    # its own column is lower.
    for i in rng.choice(len(values), size=300, replace=False):
        x0, x1 = values[i]
        strictly_left = values[values[:, 0] < x0, 1]
        same_col = values[values[:, 0] == x0, 1]
        expected = not ((len(strictly_left) and strictly_left.min() <= x1) or same_col.min() < x1)
        assert mask[i] == expected


# ------------------------------------------------------------------------------------- crowding
def test_crowding_distance_by_hand():
    # One front of four points on a line, minimize both.
    values = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0]])
    d = crowding_distance(values)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # Interior: (2-0)/3 on each objective = 4/3.
    assert d[1] == pytest.approx(4 / 3) and d[2] == pytest.approx(4 / 3)
    # Fronts of one or two members are all boundary.
    d = crowding_distance([[0, 0], [1, 1], [2, 2]])
    assert np.isinf(d).all()


def test_crowding_prefers_isolated_members():
    values = np.array([[0.0, 10.0], [1.0, 9.0], [1.1, 8.9], [5.0, 5.0], [10.0, 0.0]])
    d = crowding_distance(values)
    assert d[3] > d[1] and d[3] > d[2]


# ---------------------------------------------------------------------------------- hypervolume
def test_hypervolume_2d_exact_boxes():
    assert hypervolume([[1, 1]], [2, 2]) == 1.0
    # Staircase: [0,1]x[0,...]: (0,2) and (1,1) and (2,0) with reference (3,3): 3 + 2 + 1 = 6.
    assert hypervolume([[0, 2], [1, 1], [2, 0]], [3, 3]) == pytest.approx(6.0)
    # Dominated points and duplicates change nothing.
    assert hypervolume([[0, 2], [1, 1], [2, 0], [2, 2], [1, 1]], [3, 3]) == pytest.approx(6.0)
    # Accuracy (max) against MACs (min): boxes from (acc 0, 1000 MACs).
    hv = hypervolume([[0.5, 100.0], [0.8, 600.0]], [0.0, 1000.0], ["max", "min"])
    assert hv == pytest.approx(0.5 * 900 + (0.8 - 0.5) * 400)


def test_hypervolume_3d_exact_boxes():
    assert hypervolume([[1, 1, 1]], [2, 2, 2]) == pytest.approx(1.0)
    # Two boxes 3*3*1 and 2*2*3 overlapping in 2*2*1: 9 + 12 - 4.
    assert hypervolume([[1, 1, 3], [2, 2, 1]], [4, 4, 4]) == pytest.approx(17.0)
    # Three boxes of volume 2, pairwise and triple overlaps of 1: 6 - 3 + 1.
    assert hypervolume([[1, 2, 2], [2, 1, 2], [2, 2, 1]], [3, 3, 3]) == pytest.approx(4.0)
    # Mixed directions: maximize the first axis with reference 0.
    assert hypervolume([[2, 1, 1]], [0, 2, 2], ["max", "min", "min"]) == pytest.approx(2.0)


def test_hypervolume_excludes_points_beyond_the_reference():
    base = hypervolume([[1, 1]], [2, 2])
    assert hypervolume([[1, 1], [3, 0], [0, 2], [2, 0.5]], [2, 2]) == base  # on or past the box edge
    assert hypervolume([[3, 3]], [2, 2]) == 0.0
    assert hypervolume([[1, 1, 5]], [2, 2, 2]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def monte_carlo_hv(points: np.ndarray, ref: np.ndarray, samples: int, rng: np.random.Generator) -> float:
    lo = points.min(axis=0)
    box = np.prod(ref - lo)
    hits = 0
    for chunk in range(samples // 50_000):
        u = lo + rng.random((50_000, points.shape[1])) * (ref - lo)
        dominated = np.zeros(len(u), dtype=bool)
        for p in points:
            dominated |= np.all(u >= p, axis=1)
        hits += int(dominated.sum())
    return float(box * hits / (samples // 50_000 * 50_000))


@pytest.mark.parametrize("k", [2, 3])
def test_hypervolume_agrees_with_monte_carlo_within_1_percent(k):
    rng = np.random.default_rng(11 + k)
    for _ in range(3):
        # Points on a curved front plus dominated noise.
        raw = rng.random((60, k))
        raw /= np.linalg.norm(raw, axis=1, keepdims=True)
        noise = rng.random((20, k)) + 0.5
        points = np.vstack([raw, noise])
        ref = np.full(k, 1.2)
        exact = hypervolume(points, ref)
        estimate = monte_carlo_hv(points[np.all(points < ref, axis=1)], ref, 400_000, rng)
        assert estimate == pytest.approx(exact, rel=0.01)


def test_hypervolume_is_defined_up_to_three_objectives():
    with pytest.raises(ConfigError, match="1 to 3 objectives"):
        hypervolume(np.ones((3, 4)), np.full(4, 2.0))
    assert hypervolume([[1.0], [0.5]], [2.0]) == pytest.approx(1.5)


def test_default_reference():
    ref = default_reference([[0.7, 100.0], [0.9, 300.0]], ["max", "min"])
    assert ref.tolist() == pytest.approx([0.0, 330.0])  # accuracy 0, 1.1 x the largest cost
    ref = default_reference([[-2.0, -5.0]], ["max", "min"])
    assert ref.tolist() == pytest.approx([-2.2, -4.0])
    # Every candidate strictly beats the default reference, so all contribute.
    values = np.array([[0.5, 10.0], [0.6, 20.0]])
    assert hypervolume(values, None, ["max", "min"]) == pytest.approx(0.5 * 12 + 0.1 * 2)


# ------------------------------------------------------------------------------------------ knee
def test_knee_two_objectives():
    # Minimize both: the corner of an L-shaped front is the knee.
    values = [[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [5.0, 5.0], [2.0, 0.9]]
    assert knee_index(values) == 1
    # Same front as accuracy (max) against MACs (min).
    values = [[0.50, 100.0], [0.88, 150.0], [0.90, 900.0], [0.60, 800.0]]
    assert knee_index(values, ["max", "min"]) == 1


def test_knee_ties_single_and_three_objectives():
    assert knee_index([[3.0, 4.0]]) == 0
    # Two points: both on the line between the extremes; the tie goes to the best first objective.
    assert knee_index([[0.9, 500.0], [0.5, 100.0]], ["max", "min"]) == 0
    values = [[0, 10, 10], [10, 0, 10], [10, 10, 0], [2, 2, 2], [4, 4, 1]]
    assert knee_index(values) == 3
    # Dominated rows are never the knee even when they are close to the ideal point after scaling.
    assert knee_index([[0, 10], [10, 0], [1, 1], [1.5, 1.5]]) == 2


# ------------------------------------------------------------------------------------ objectives
def test_objectives_parse():
    o = Axes.parse("accuracy:max, macs:min,latency_ms")
    assert o.names == ("accuracy", "macs", "latency_ms")
    assert o.directions == ("max", "min", "min")
    assert str(o) == "accuracy:max,macs:min,latency_ms:min"
    for bad in ("accuracy:up", ":max", "", "macs:min,macs:max"):
        with pytest.raises(ConfigError):
            Axes.parse(bad)


# ---------------------------------------------------------------------------------------- frames
def trials_frame() -> pd.DataFrame:
    rows = [
        # trial, status, reward, accuracy, macs, params, latency, key, reused_from
        (0, "ok", 0.80, 0.90, 400e6, 5e6, 3.0, "a", None),
        (1, "ok", 0.85, 0.92, 300e6, 4e6, 2.0, "b", None),
        (2, "failed", None, None, 200e6, 3e6, None, "c", None),
        (3, "ok", 0.85, 0.92, 300e6, 4e6, 2.0, "b", 1),  # repeat of trial 1
        (4, "pruned", None, 0.3, 100e6, 1e6, None, "d", None),
        (5, "ok", 0.70, 0.70, 100e6, 2e6, None, "e", None),
        (6, "ok", 0.60, 0.60, 500e6, 6e6, 4.0, "f", None),
        (7, "failed", None, None, 100e6, 1e6, None, "g", None),
        (8, "diverged", None, 0.1, 100e6, 1e6, None, "h", None),
    ]
    frame = pd.DataFrame(rows, columns=["trial", "status", "reward", "accuracy", "macs", "params", "latency_ms",
                                        "key", "reused_from"])
    frame["arch"] = [f"arch{i}" for i in range(len(frame))]
    frame["param_kernel_0"] = [3, 5, 3, 5, 3, 3, 5, 3, 3]
    return frame


def test_analyze_excludes_and_dedupes():
    result = analyze(trials_frame(), "accuracy:max,macs:min")
    assert sorted(result.candidates["trial"]) == [0, 1, 5, 6]
    assert result.excluded == {"failed": 2, "pruned": 1, "diverged": 1, "repeat": 1}
    text = result.excluded_text()
    assert "2 failed" in text and "1 pruned" in text and "1 diverged" in text and "excluded" in text
    assert "1 repeat of an earlier architecture counted once" in text
    assert result.frontier["trial"].tolist() == [1, 5]  # best accuracy first
    assert result.best_reward() == 1
    assert result.knee() in (1, 5)
    assert result.hypervolume([0.0, 1e9]) == pytest.approx(0.92 * 700e6 + 0.70 * (900e6 - 700e6))


def test_analyze_missing_values_are_counted():
    result = analyze(trials_frame(), "accuracy:max,latency_ms:min")
    assert result.excluded["missing latency_ms"] == 1
    assert "1 without latency_ms" in result.excluded_text()
    assert 5 not in result.candidates["trial"].tolist()


def test_analyze_bad_inputs():
    with pytest.raises(ConfigError) as info:
        analyze(trials_frame(), "accuracy:max,flops:min")
    message = str(info.value)
    assert "'flops'" in message and "accuracy" in message and "macs" in message and "param_kernel_0" in message
    assert "\n" not in message
    frame = trials_frame()
    frame["status"] = ["failed"] * 6 + ["pruned"] * 3
    with pytest.raises(StorageError, match=r"no completed trial \(6 failed, 3 pruned\)"):
        analyze(frame)
    empty = trials_frame().iloc[:0]
    with pytest.raises(NasError, match="no completed trial"):
        analyze(empty)


def test_analyze_one_candidate_and_ties():
    frame = trials_frame().iloc[:1]
    result = analyze(frame)
    assert result.frontier["trial"].tolist() == [0]
    assert result.knee() == 0
    tied = trials_frame()
    tied["key"] = [f"k{i}" for i in range(len(tied))]  # distinct architectures with equal metrics
    result = analyze(tied)
    assert result.frontier["trial"].tolist() == [1, 3, 5]
