"""Intervals, paired tests and rank agreement against published values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nas.metrics import Metrics, pack_correct, unpack_correct
from nas.presets import preset
from nas.ranking import choose_b0, ties_with_b0
from nas.stats import at_chance, mcnemar, mean_interval, paired_difference, rank_agreement, wilson_interval
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
