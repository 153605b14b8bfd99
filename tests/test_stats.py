"""Intervals, paired tests and rank agreement against published values and scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nas.metrics import Metrics, pack_correct, unpack_correct
from nas.presets import preset
from nas.ranking import choose_b0, ties_with_b0
from nas.stats import (at_chance, kendall_tau_rows, mcnemar, mean_interval, paired_difference, rank_agreement,
                       spearman_rho_rows, tau_difference, wilson_interval)
from nas.store import TrialRecord

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson
# score interval without continuity correction), 95%.
NEWCOMBE = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611)),
            ((1, 29), (0.0061, 0.1718)), ((29, 29), (0.8830, 1.0))]


@pytest.mark.parametrize("counts, expected", NEWCOMBE)
def test_wilson_interval_matches_newcombe(counts, expected):
    low, high = wilson_interval(*counts)
    assert low == pytest.approx(expected[0], abs=5e-5) and high == pytest.approx(expected[1], abs=5e-5)


def record(number: int, mask: np.ndarray, num_classes: int = 10, reward: float | None = None) -> TrialRecord:
    """A stored trial whose minival results are exactly ``mask`` (one bool per image)."""
    accuracy = float(mask.mean())
    metrics = Metrics(accuracy=accuracy, minival_size=int(mask.size), correct=pack_correct(mask))
    spec = preset("efficientnet-b0").with_(num_classes=num_classes, stem_channels=32 + number)
    return TrialRecord(choices={}, indices=(), metrics=metrics, spec=spec, arch=f"net{number}", key=spec.key(),
                       reward=accuracy if reward is None else reward, number=number)


def test_a_constructed_minival_row_carries_the_exact_wilson_bounds():
    mask = np.zeros(263, dtype=bool)
    mask[:81] = True
    row = record(0, mask).row()
    assert row["minival_size"] == 263 and row["accuracy"] == pytest.approx(81 / 263)
    assert row["accuracy_low"] == pytest.approx(0.2553, abs=5e-5)
    assert row["accuracy_high"] == pytest.approx(0.3662, abs=5e-5)
    assert row["at_chance"] is False


def test_bitmap_round_trip_is_compact():
    mask = np.random.default_rng(0).random(6000) < 0.9
    text = pack_correct(mask)
    assert len(text) <= 1000  # 750 bytes in base64, not one row per image
    assert np.array_equal(unpack_correct(text, 6000), mask)


def test_chance_level_is_an_interval_reaching_one_over_classes():
    assert at_chance(0.12, 287, 10)  # 34/287: interval 0.086-0.16 holds 0.1
    assert not at_chance(0.30, 287, 10)
    assert at_chance(0.10, 6000, 10) and not at_chance(0.115, 6000, 10)


def test_identical_predictions_are_tied_and_clearly_different_ones_are_not():
    rng = np.random.default_rng(1)
    a = rng.random(300) < 0.9
    test = mcnemar(a, a.copy())
    assert test.p_value == 1.0 and test.tied()
    b = a.copy()
    b[np.flatnonzero(a)[:40]] = False  # b misses 40 images a gets right, gets nothing a misses
    different = mcnemar(a, b)
    assert different.only_a == 40 and different.only_b == 0 and not different.tied()
    assert different.p_value == pytest.approx(2 * 0.5 ** 40)


def _pair(only_a: int, only_b: int, both: int = 50, neither: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Two correctness vectors with these discordant counts, shuffled (seeded)."""
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    order = np.random.default_rng(only_a * 100 + only_b).permutation(a.size)
    return a[order], b[order]


# Exact two-sided McNemar p-values: 2 * P(X <= min(only_a, only_b)) for X ~ Binomial(only_a + only_b, 1/2),
# capped at 1; e.g. (5, 15): 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2^20 = 0.041389.
@pytest.mark.parametrize("only_a, only_b, expected", [(10, 10, 1.0), (5, 15, 0.041389), (15, 5, 0.041389),
                                                      (3, 4, 1.0), (0, 6, 0.03125), (12, 20, 0.215327)])
def test_mcnemar_is_two_sided_with_exact_p_values(only_a, only_b, expected):
    """Discordance on both sides, balanced and not: equal to scipy's exact binomial test and to the hand-computed
    value, and symmetric in its two arguments (a one-sided test fails all three)."""
    from scipy.stats import binomtest

    a, b = _pair(only_a, only_b)
    test = mcnemar(a, b)
    assert (test.only_a, test.only_b) == (only_a, only_b)
    assert test.p_value == pytest.approx(expected, abs=5e-6)
    assert test.p_value == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-12)
    assert mcnemar(b, a).p_value == pytest.approx(test.p_value, rel=1e-12)
    assert test.tied() == (expected >= 0.05)


def test_b0_ties_are_found_with_the_paired_test():
    rng = np.random.default_rng(2)
    best = rng.random(400) < 0.95
    same = best.copy()
    same[np.flatnonzero(best)[:2]] = False  # 2 images apart: tied
    worse = best.copy()
    worse[np.flatnonzero(best)[:60]] = False  # 60 images apart: not tied
    records = [record(0, best), record(1, same), record(2, worse)]
    choice = choose_b0(records)
    assert choice.record.number == 0
    tied = ties_with_b0(choice)
    assert [c.search.number for c, _ in tied] == [1]


def test_rank_agreement_equals_scipy_on_fixed_data():
    x = [0.81, 0.84, 0.83, 0.80, 0.85, 0.82, 0.86, 0.79]
    y = [0.874, 0.889, 0.878, 0.881, 0.890, 0.875, 0.883, 0.880]
    found = rank_agreement(x, y, resamples=200)
    assert abs(found["kendall_tau"].value - kendalltau(x, y)[0]) < 1e-12
    assert abs(found["spearman_rho"].value - spearmanr(x, y)[0]) < 1e-12
    for agreement in found.values():
        assert agreement.low <= agreement.value <= agreement.high


def test_mean_interval_is_scipys_t_interval():
    from scipy import stats

    values = [0.912, 0.931, 0.925, 0.918]
    mean = mean_interval(values)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert mean.n == 4 and abs(mean.mean - np.mean(values)) < 1e-15
    assert abs(mean.low - low) < 1e-12 and abs(mean.high - high) < 1e-12
    assert abs(mean.sd - np.std(values, ddof=1)) < 1e-15
    one = mean_interval([0.9])
    assert (one.mean, one.low, one.high, one.sd) == (0.9, None, None, None)  # one seed: no interval
    assert mean_interval([0.5, 0.5, 0.5]).to_dict() == {"mean": 0.5, "low": 0.5, "high": 0.5, "sd": 0.0, "n": 3}


def test_paired_difference_is_scipys_paired_t_test():
    from scipy import stats

    a, b = [0.91, 0.93, 0.92, 0.95], [0.90, 0.915, 0.925, 0.93]
    d = paired_difference(a, b)
    scipy_result = stats.ttest_rel(a, b)
    interval = scipy_result.confidence_interval(0.95)
    assert abs(d.statistic - scipy_result.statistic) < 1e-12 and abs(d.p_value - scipy_result.pvalue) < 1e-12
    assert abs(d.low - interval.low) < 1e-12 and abs(d.high - interval.high) < 1e-12 and d.n == 4
    # identical trainings: scipy has no statistic (0 / 0); the difference is 0, p = 1
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high, same.statistic, same.p_value) == (0.0, 0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        paired_difference([0.9], [0.8])


def _noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs whose population Spearman correlation is about 0.6 (y = x + noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + 1.2 * rng.normal(size=n)


def test_bootstrap_intervals_resample():
    """A bootstrap that never resamples gives a zero-width interval at the estimate: each check here fails it."""
    x, y = _noisy(40, 0)
    first = rank_agreement(x, y, resamples=400, seed=1)
    for name, agreement in first.items():
        # positive width on data that is not degenerate, with the estimate inside
        assert agreement.low < agreement.value < agreement.high, name
    # seeded: the same seed repeats the interval, another seed moves it a little
    assert rank_agreement(x, y, resamples=400, seed=1) == first
    other = rank_agreement(x, y, resamples=400, seed=2)["spearman_rho"]
    assert (other.low, other.high) != (first["spearman_rho"].low, first["spearman_rho"].high)
    # the width of the interval of Spearman's rho for 40 pairs near 0.6 is about what the Fisher
    # transformation gives (standard error 1.06 / sqrt(n - 3) on atanh(rho), Fieller et al. 1957)
    rho = first["spearman_rho"].value
    z, se = np.arctanh(rho), 1.06 / np.sqrt(40 - 3)
    expected = np.tanh(z + 1.96 * se) - np.tanh(z - 1.96 * se)
    width = first["spearman_rho"].high - first["spearman_rho"].low
    assert width == pytest.approx(expected, rel=0.35)
    # intervals shrink with more data: 16 times the pairs, about a quarter of the width
    x, y = _noisy(640, 0)
    large = rank_agreement(x, y, resamples=400, seed=1)["spearman_rho"]
    assert 0.15 < (large.high - large.low) / width < 0.4


def test_tau_difference_resamples_the_candidates_once_for_both_scores():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=60)
    good = reference + rng.normal(scale=0.3, size=60)
    noise = rng.normal(size=60)
    ahead = tau_difference(good, noise, reference)
    assert ahead.value == pytest.approx(kendalltau(good, reference)[0] - kendalltau(noise, reference)[0])
    assert 0 < ahead.low < ahead.value < ahead.high and ahead.p_value == 0.0
    same = tau_difference(good, good, reference)  # paired: one score against itself differs by nothing
    assert (same.value, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # a score slightly perturbed: its separate interval would overlap, the paired one is narrow
    near = tau_difference(good, good + rng.normal(scale=0.05, size=60), reference)
    assert near.high - near.low < 0.2
    with pytest.raises(ValueError):
        tau_difference([1, 2], [1, 2], [1, 2])


@pytest.mark.parametrize("n", [3, 7, 40, 101, 130])
def test_row_wise_correlations_equal_scipys_one_sample_at_a_time(n):
    """The bootstraps compute tau and rho for all resamples at once; each row must be scipy's value,
    ties (the resamples repeat values) and all-tied rows (NaN) included."""
    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=(60, n)), 1)
    y = np.round(x + rng.normal(size=(60, n)), 1)
    x[0] = 1.0  # a row of one value: no correlation
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = np.array([kendalltau(a, b)[0] for a, b in zip(x, y)])
        rho = np.array([spearmanr(a, b)[0] for a, b in zip(x, y)])
    for found, expected in ((kendall_tau_rows(x, y), tau), (spearman_rho_rows(x, y), rho)):
        assert np.isnan(found[0]) and np.isnan(expected[0])
        assert np.max(np.abs(found[1:] - expected[1:])) < 1e-12
