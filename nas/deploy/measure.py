"""Latency percentiles and peak memory of one inference callable, measured the same way everywhere.

``nas bench``, the latency-table build and its validation all time through :func:`time_calls`, so
a table entry and a whole-network measurement it is compared with mean the same thing: the median
of many calls after warm-up, each call timed alone with ``time.perf_counter``. Repeats stop at
``max_repeats`` or once ``min_repeats`` calls have run and ``min_seconds`` have passed, so that
fast blocks get many samples and slow networks do not take minutes. Every timing runs with the
allocator in one fixed state (:func:`nas.timing.steady_allocator`): with glibc's adaptive defaults
the same network's latency doubled or not depending on what the process had run before.

Peak memory is sampled in a separate pass by a background thread reading the resident set size
(:func:`nas.timing.rss_bytes`); keeping it out of the timed calls keeps the sampler's own CPU use
out of the latencies.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from nas.errors import ConfigError
from nas.limits import MAX_REPEATS, check_at_most
from nas.polling import Poller
from nas.timing import rss_bytes, steady_allocator


@dataclass(frozen=True)
class TimingPolicy:
    """How many calls to make: warm-up calls first (never timed), then at least ``min_repeats``
    timed calls and at least ``min_seconds`` of them, at most ``max_repeats``."""

    warmup: int = 3
    min_repeats: int = 10
    min_seconds: float = 0.5
    max_repeats: int = 200

    def __post_init__(self) -> None:
        for name in ("warmup", "min_repeats", "max_repeats"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "warmup" else 1)):
                raise ConfigError(f"{name} must be an integer >= {0 if name == 'warmup' else 1}, got {value!r}",
                                  field=name)
            check_at_most(value, MAX_REPEATS, name, "calls")
        if self.max_repeats < self.min_repeats:
            raise ConfigError(f"max_repeats ({self.max_repeats}) is below min_repeats ({self.min_repeats})",
                              field="max_repeats")
        if not (isinstance(self.min_seconds, (int, float)) and self.min_seconds >= 0):
            raise ConfigError(f"min_seconds must be >= 0, got {self.min_seconds!r}", field="min_seconds")


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call: median (p50), 90th percentile, mean, fastest; ``repeats`` timed calls."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation, as numpy's default."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_calls(call: Callable[[], Any], policy: TimingPolicy = TimingPolicy()) -> Latency:
    """Time ``call()`` under ``policy``; garbage collection is paused while timing, and the allocator
    is in the fixed state of :func:`nas.timing.steady_allocator`."""
    steady_allocator()
    for _ in range(policy.warmup):
        call()
    samples: list[float] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        while len(samples) < policy.max_repeats and (
                len(samples) < policy.min_repeats or time.perf_counter() - started < policy.min_seconds):
            t0 = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    ms = [s * 1000.0 for s in samples]
    return Latency(p50_ms=statistics.median(ms), p90_ms=percentile(ms, 90), mean_ms=statistics.fmean(ms),
                   min_ms=min(ms), repeats=len(ms))


class PeakRSS(Poller):
    """Highest resident set size seen while the ``with`` block runs, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.001) -> None:
        self.peak = rss_bytes() or 0
        super().__init__(interval, name="peak-rss")

    def tick(self) -> None:
        self.peak = max(self.peak, rss_bytes() or 0)


__all__ = ["Latency", "PeakRSS", "TimingPolicy", "percentile", "time_calls"]
