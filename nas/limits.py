"""The largest sizes that make sense, in one place.

A size beyond these is not a bigger job but a typo (``--epochs 1e9``, ``layers: 1000000000``): it
would be accepted and then run for hours, or fill memory, before anything failed. Each limit sits
well above what the papers' largest networks and budgets use, so no real run meets it, and the
check that refuses a larger value states the limit. The README's "Limits" paragraph lists them.
"""

from __future__ import annotations

from typing import Any

from nas.errors import ConfigError

MAX_SEED = 2**63 - 1  # seeds must fit a signed 64-bit integer (torch's generator, SQLite's integers)
MAX_EPOCHS = 10_000  # training epochs of one network (ImageNet recipes use 350 to 600)
MAX_STEPS = 100_000_000  # training steps of one network, when given instead of epochs
MAX_TRIALS = 1_000_000  # candidates of one search
MAX_REPEATS = 1_000_000  # timed calls of one benchmark row (nas bench --repeats)
MAX_CHANNELS = 16_384  # any width of a spec: stem, stage outputs, head (EfficientNet-B7's widest is 3840)
MAX_EXPANSION = 64  # expansion ratio of a block (the papers use 1 to 6)
MAX_LAYERS = 100  # blocks in one stage (EfficientNetV2-XL's deepest stage has 32)
MAX_CLASSES = 100_000  # classes of the classifier (ImageNet-21k has 21,841)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_seed(seed: Any, field: str = "seed") -> int:
    """``seed`` if it is an integer in [0, :data:`MAX_SEED`], else a ConfigError naming ``field``."""
    if not (_integer(seed) and 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{field} must be an integer between 0 and {MAX_SEED} (2^63 - 1), got {seed!r}",
                          field=field)
    return seed


def check_at_most(value: Any, limit: int, field: str, unit: str = "") -> None:
    """A ConfigError naming ``field`` when the number ``value`` is above ``limit`` (the largest that makes sense)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        raise ConfigError(f"{field} must be at most {limit:,}{' ' + unit if unit else ''} (the largest that makes "
                          f"sense), got {shown}", field=field)


__all__ = ["MAX_CHANNELS", "MAX_CLASSES", "MAX_EPOCHS", "MAX_EXPANSION", "MAX_LAYERS", "MAX_REPEATS", "MAX_SEED", "MAX_STEPS",
           "MAX_TRIALS", "check_at_most", "check_seed"]
