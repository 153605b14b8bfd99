"""``layernorm``: each sample normalized over channels and space (GroupNorm with one group),
batch-independent like ``groupnorm``."""

from __future__ import annotations

from nas.kinds.norm_kind import NORM_EPS, NormKind


class LayerNorm(NormKind):
    name = "layernorm"
    lr_scale = 0.25  # batch-independent: diverges at BatchNorm's default rate (BENCHMARKS.md, norm kinds)

    def build(self, channels: int, activation_follows: bool = True):
        from torch import nn  # torch: imported when used, not at module import

        return nn.GroupNorm(1, channels, eps=NORM_EPS)

    def params(self, channels: int, activation_follows: bool = True) -> int:
        return 2 * channels  # per-channel scale and shift


KIND = LayerNorm()

__all__ = ["KIND", "LayerNorm"]
