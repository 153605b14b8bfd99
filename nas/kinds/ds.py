"""``ds``: MnasNet's depthwise-separable block (SepConv).

Layers: k x k depthwise or grouped conv, norm, activation; squeeze-excite; 1x1 linear pointwise
conv, norm. These are the layers of an expansion-1 MBConv, so the two share a dedupe key, a cost and
the official notations (written as ``e1`` MBConv); the module keeps its own layer names.
Block strings: ``ds_`` typed. Search spaces: ``ds``.
"""

from __future__ import annotations

from nas.kinds.mbconv import MBConvKind


class DepthwiseSeparableKind(MBConvKind):
    name = "ds"
    title = "depthwise-separable"
    prefix = "ds"
    op = "ds"
    has_expansion = False
    official = {}
    official_alias = "mbconv"

    def canonical(self, stage):
        return "mbconv"

    def build(self, stage, in_channels, stride, drop_rate, norm, activation):
        from nas.blocks import DepthwiseSeparable  # torch: imported when used, not at module import

        return DepthwiseSeparable(in_channels, stage.out_channels, stage.kernel, stride, stage.se_ratio,
                                  stage.group_size, norm=norm, activation=activation, skip=stage.skip,
                                  drop_rate=drop_rate)


KIND = DepthwiseSeparableKind()

__all__ = ["DepthwiseSeparableKind", "KIND"]
