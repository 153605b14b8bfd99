"""How much a proxy's accuracy can be trusted: intervals, paired tests and rank agreement.

A proxy is scored on a few hundred to a few thousand minival images, so two candidates a point
apart are often indistinguishable. These small pure functions say so:

* :func:`wilson_interval`: the 95% Wilson score interval of an accuracy (better than the normal
  approximation near 0 and 1 and at small n).
* :func:`at_chance`: an accuracy whose interval reaches down to 1 / classes cannot be told from
  guessing.
* :func:`mcnemar`: are two candidates different *on the same images*? The exact McNemar test:
  a two-sided binomial test on the images exactly one of them got right (scipy.stats.binomtest).
  It is paired, so it is far sharper than comparing two intervals.
* :func:`rank_agreement`: Kendall's tau and Spearman's rho (scipy.stats) with percentile
  bootstrap intervals, for the proxy-fidelity check.
* :func:`mean_interval`: the mean of a few seeds' accuracies with its Student-t interval: with 3
  seeds the 95% interval is 4.3 standard errors wide each side, not 1.96.
* :func:`paired_difference`: are two trainings different *under the same seeds*? The paired
  t-test (scipy.stats.ttest_rel) and the t-interval of the mean difference.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for ``correct`` successes out of ``total``."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def at_chance(accuracy: float, total: int, num_classes: int) -> bool:
    """True when the accuracy's 95% interval includes chance level (1 / ``num_classes``)."""
    if total <= 0 or num_classes <= 1:
        return False
    low, _ = wilson_interval(round(accuracy * total), total)
    return low <= 1.0 / num_classes


@dataclass(frozen=True)
class PairedTest:
    """The exact McNemar test of two candidates on the same images."""

    only_a: int  # images only the first got right
    only_b: int  # images only the second got right
    p_value: float

    def tied(self, alpha: float = 0.05) -> bool:
        return self.p_value >= alpha


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """Exact (binomial) McNemar test of two per-image correctness vectors of the same split."""
    from scipy.stats import binomtest  # scipy: imported when a statistic is computed

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same images: {a.shape[0]} vs {b.shape[0]}")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    p_value = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)
    return PairedTest(only_a, only_b, p_value)


@dataclass(frozen=True)
class MeanInterval:
    """The mean of ``n`` values with its two-sided t-interval (``low``/``high`` None for one value)."""

    mean: float
    low: float | None
    high: float | None
    sd: float | None  # sample standard deviation (n - 1 in the denominator)
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "sd": self.sd, "n": self.n}


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval:
    """Mean and Student-t interval of ``values`` (scipy.stats.t); equal values give a zero-width interval."""
    from scipy.stats import t  # scipy: imported when a statistic is computed

    xs = np.asarray(values, dtype=float)
    if xs.ndim != 1 or xs.shape[0] < 1:
        raise ValueError("a mean needs at least one value")
    mean, n = float(xs.mean()), int(xs.shape[0])
    if n == 1:
        return MeanInterval(mean, None, None, None, 1)
    sd = float(xs.std(ddof=1))
    if sd == 0:
        return MeanInterval(mean, mean, mean, 0.0, n)
    low, high = t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return MeanInterval(mean, float(low), float(high), sd, n)


@dataclass(frozen=True)
class PairedDifference:
    """The paired t-test of ``a - b`` over ``n`` pairs, with the t-interval of the mean difference."""

    mean: float
    low: float
    high: float
    statistic: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "statistic": self.statistic,
                "p_value": self.p_value, "n": self.n}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """scipy.stats.ttest_rel(a, b) and its ``confidence`` interval of mean(a - b); needs 2 pairs or more.

    Pairs that all differ by zero (two identical trainings) have no t statistic in scipy (0 / 0):
    they get statistic 0 and p-value 1, the interval [0, 0]. A constant non-zero difference keeps
    scipy's infinite statistic, p-value 0 and zero-width interval.
    """
    from scipy.stats import ttest_rel  # scipy: imported when a statistic is computed

    xs, ys = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.shape[0] < 2:
        raise ValueError("a paired test needs at least 2 pairs of equal length")
    differences = xs - ys
    if not np.any(differences):
        return PairedDifference(0.0, 0.0, 0.0, 0.0, 1.0, int(xs.shape[0]))
    with warnings.catch_warnings():  # nearly equal differences: scipy warns of precision loss, the values stand
        warnings.simplefilter("ignore")
        result = ttest_rel(xs, ys)
        interval = result.confidence_interval(confidence)
    return PairedDifference(float(differences.mean()), float(interval.low), float(interval.high),
                            float(result.statistic), float(result.pvalue), int(xs.shape[0]))


@dataclass(frozen=True)
class Agreement:
    """A rank correlation with its percentile bootstrap interval."""

    value: float
    low: float
    high: float
    p_value: float


PAIR_CELLS_PER_CHUNK = 4_000_000  # resamples x pairs compared at once in a bootstrap (~32 MB of float64 each)
ALL_PAIRS_UP_TO = 100  # above this many values per row, scipy's O(n log n) kendalltau row by row is faster


def kendall_tau_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of ``x`` against the same row of ``y`` (arrays of shape (B, n)).

    scipy's ``kendalltau`` (tau-b) for one pair of samples at a time costs about a millisecond, and a
    bootstrap asks for thousands: here every row at once from the signs of all pairwise differences,
    ``sum(sx * sy) / sqrt(sum(sx**2) * sum(sy**2))``, which is tau-b (a pair tied in x counts in neither
    x's denominator nor the numerator). NaN where a row is all ties. Equal to scipy's within 1e-12 (test).
    All pairs cost n**2 per row: above ``ALL_PAIRS_UP_TO`` values scipy is asked row by row.
    """
    if x.shape[1] > ALL_PAIRS_UP_TO:
        from scipy.stats import kendalltau  # scipy: imported when a statistic is computed

        with warnings.catch_warnings():  # rows of tied values have no correlation: NaN, as below
            warnings.simplefilter("ignore")
            return np.array([kendalltau(a, b)[0] for a, b in zip(x, y)], dtype=float)
    rows = np.empty(x.shape[0])
    chunk = max(1, PAIR_CELLS_PER_CHUNK // max(1, x.shape[1] ** 2))
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start:start + chunk], y[start:start + chunk]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            rows[start:start + chunk] = (np.einsum("bij,bij->b", sx, sy)
                                         / np.sqrt(np.einsum("bij,bij->b", sx, sx) * np.einsum("bij,bij->b", sy, sy)))
    return rows


def spearman_rho_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` against the same row of ``y``: Pearson's r of the rows'
    average ranks, as scipy's ``spearmanr`` computes it, for every row at once. NaN where a row is all ties."""
    from scipy.stats import rankdata  # scipy: imported when a statistic is computed

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def _percentile_interval(boot: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the finite resampled values (NaN, NaN when there are none)."""
    kept = boot[np.isfinite(boot)]
    return tuple(float(v) for v in np.percentile(kept, [2.5, 97.5])) if kept.size else (math.nan, math.nan)


def rank_agreement(x: Sequence[float], y: Sequence[float], resamples: int = 2000,
                   seed: int = 0) -> dict[str, Agreement]:
    """Kendall's tau and Spearman's rho of two paired samples, each with a 95% bootstrap interval.

    The point values and p-values are scipy's (``kendalltau``, tau-b; ``spearmanr``). The interval
    resamples pairs with replacement (first ``resamples`` draws for tau, the next for rho); resamples
    where a correlation is undefined (all values tied) are dropped.
    """
    from scipy.stats import kendalltau, spearmanr  # scipy: imported when a statistic is computed

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.shape[0] < 3:
        raise ValueError("rank agreement needs at least 3 pairs")
    rng = np.random.default_rng(seed)
    out = {}
    for name, fn, rows in (("kendall_tau", kendalltau, kendall_tau_rows),
                           ("spearman_rho", spearmanr, spearman_rho_rows)):
        result = fn(xs, ys)
        idx = rng.integers(0, xs.shape[0], (resamples, xs.shape[0]))
        low, high = _percentile_interval(rows(xs[idx], ys[idx]))
        out[name] = Agreement(float(result[0]), low, high, float(result[1]))
    return out


def tau_difference(a: Sequence[float], b: Sequence[float], reference: Sequence[float], resamples: int = 2000,
                   seed: int = 0) -> Agreement:
    """Kendall's tau of ``a`` against ``reference`` minus that of ``b``, with a paired bootstrap interval.

    Two scores of the same candidates are not independent, so their taus' separate intervals overlap
    even where one score is reliably ahead; resampling the candidates once for both answers "is ``a``
    the better ranker". ``p_value``: the share of resamples where ``a`` is not ahead (one-sided).
    """
    from scipy.stats import kendalltau  # scipy: imported when a statistic is computed

    xa, xb, ref = (np.asarray(v, dtype=float) for v in (a, b, reference))
    if not xa.shape == xb.shape == ref.shape or ref.shape[0] < 3:
        raise ValueError("a tau difference needs three samples of the same length, at least 3")
    idx = np.random.default_rng(seed).integers(0, ref.shape[0], (resamples, ref.shape[0]))
    boot = kendall_tau_rows(xa[idx], ref[idx]) - kendall_tau_rows(xb[idx], ref[idx])
    boot = boot[np.isfinite(boot)]
    low, high = _percentile_interval(boot)
    point = kendalltau(xa, ref)[0] - kendalltau(xb, ref)[0]
    return Agreement(float(point), low, high, float(np.mean(boot <= 0)) if boot.size else math.nan)


__all__ = ["Agreement", "MeanInterval", "PairedDifference", "PairedTest", "Z95", "at_chance", "mcnemar",
           "mean_interval", "paired_difference", "kendall_tau_rows", "rank_agreement", "spearman_rho_rows",
           "tau_difference", "wilson_interval"]
