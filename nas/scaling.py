"""Width / depth / resolution scaling of a spec, as EfficientNet scales B0 into B1..B7.

The rounding helpers are tiny pure functions so that search spaces, presets and the scaling grid
round exactly alike. Which widths scale: the stem, every stage's output, and the head unless
``spec.scale_head`` is false (MnasNet keeps its 1280-wide head at every depth multiplier; the
flag lives in the spec so that a searched network carries its family's rule into later scaling).
A head of width 0 (no head conv) stays 0.

Compound scaling (depth alpha^phi, width beta^phi, resolution gamma^phi) is built on
:func:`scale_spec` in :mod:`nas.compound`, which holds the one rule for rounding the resolution and
for the tolerance of the alpha / beta / gamma grid.
"""

from __future__ import annotations

import math
from dataclasses import replace

from nas.errors import SpecError
from nas.spec import ArchSpec

# EfficientNet compound scaling (official efficientnet_builder.py):
# name: (width multiplier, depth multiplier, resolution, dropout)
EFFICIENTNET_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2),
    "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3),
    "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4),
    "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5),
    "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}


def round_filters(filters: int, width: float = 1.0, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor``, never more than 10% down."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float = 1.0) -> int:
    """Scale a stage's block count, rounding up (a stage never disappears)."""
    return int(math.ceil(depth * repeats))


def _check_multiplier(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SpecError(f"{name}: scaling multiplier must be a positive number, got {value!r}", field=name)


def scale_spec(spec: ArchSpec, width: float = 1.0, depth: float = 1.0, resolution: int | None = None,
               dropout: float | None = None, scale_head: bool | None = None, divisor: int = 8) -> ArchSpec:
    """A copy of ``spec`` with widths through :func:`round_filters` and repeats through
    :func:`round_repeats`; ``resolution`` / ``dropout`` replace the spec's when given.

    ``scale_head`` overrides ``spec.scale_head`` for this call. Width 1 and depth 1 return the same
    widths and repeats, so scaling is the identity at (1, 1).
    """
    _check_multiplier("width", width)
    _check_multiplier("depth", depth)
    head_scales = spec.scale_head if scale_head is None else scale_head
    stages = tuple(replace(s, out_channels=round_filters(s.out_channels, width, divisor),
                           repeats=round_repeats(s.repeats, depth)) for s in spec.stages)
    head = spec.head_channels
    if head > 0 and head_scales:
        head = round_filters(head, width, divisor)
    return spec.with_(stem_channels=round_filters(spec.stem_channels, width, divisor), stages=stages,
                      head_channels=head, resolution=spec.resolution if resolution is None else resolution,
                      dropout=spec.dropout if dropout is None else dropout)


__all__ = ["EFFICIENTNET_PARAMS", "round_filters", "round_repeats", "scale_spec"]
