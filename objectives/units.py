"""Unit-aware quantities for objective targets and references: ``400M``, ``1.2G``, ``5M``, ``75ms``.

Two kinds of quantity appear on the command line: counts (multiply-adds, parameters), written with
an optional K / M / G / T suffix (powers of 1000), and times, written in ms (the default), s or us.
Mixing them up (``--cost latency --target 400M``) is a one-line :class:`ConfigError` rather than a
silently absurd reward.
"""

from __future__ import annotations

import math
import re

from nas.errors import ConfigError

# kind -> whether it is a time (in ms) or a count
KINDS = {"macs": "count", "params": "count", "latency": "time", "latency_ms": "time", "step_time": "time",
         "step_time_ms": "time"}
COUNT_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}
TIME_SUFFIXES = {"": 1.0, "ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}
_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-zµ]*)\s*$", re.IGNORECASE)
_EXAMPLES = {"count": "400M, 1.2G, 500K or 5e6", "time": "75ms, 0.5s or 75"}


def parse_quantity(value: str | int | float, kind: str = "macs", what: str = "target") -> float:
    """The value as a float: a count for ``macs`` / ``params``, milliseconds for latency / step time.

    >>> parse_quantity("400M", kind="macs"), parse_quantity("75ms", kind="latency")
    (400000000.0, 75.0)

    The result must be finite and > 0; ``what`` names the setting in the error message.
    """
    if kind not in KINDS:
        raise ConfigError(f"{what}: unknown quantity kind {kind!r}; valid: {', '.join(sorted(KINDS))}", field=what)
    unit_kind = KINDS[kind]
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a {unit_kind} such as {_EXAMPLES[unit_kind]}, got {value!r}", field=what)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _RE.match(str(value))
        if not match:
            raise ConfigError(f"{what} {value!r}: not a quantity; expected a {unit_kind} such as "
                              f"{_EXAMPLES[unit_kind]}", field=what)
        number_text, written = match.groups()
        suffix = written.lower()
        counts, times = COUNT_SUFFIXES, TIME_SUFFIXES
        if unit_kind == "count":
            if suffix not in counts:
                hint = "a time" if suffix in times else f"unit {written!r}"
                raise ConfigError(f"{what} {value!r}: {hint} does not fit {kind}; give a count such as "
                                  f"{_EXAMPLES['count']}", field=what)
            number = float(number_text) * counts[suffix]
        else:
            if suffix not in times:
                hint = "a count" if suffix in counts else f"unit {written!r}"
                raise ConfigError(f"{what} {value!r}: {hint} does not fit {kind}; give a time such as "
                                  f"{_EXAMPLES['time']}", field=what)
            number = float(number_text) * times[suffix]
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{what} {value!r}: must be > 0", field=what)
    return number


def format_quantity(value: float, kind: str = "macs") -> str:
    """Short human form, the inverse of :func:`parse_quantity` up to rounding: ``400M``, ``75ms``."""
    if KINDS.get(kind) == "time":
        return f"{value:.4g}ms"
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


__all__ = ["parse_quantity", "format_quantity", "KINDS"]
