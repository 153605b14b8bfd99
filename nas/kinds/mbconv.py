"""``mbconv``: the inverted bottleneck of MobileNetV2 / MnasNet / EfficientNet.

Layers: 1x1 expand (absent at expansion 1), norm, activation; k x k depthwise or grouped conv
(``group_size`` channels per group), norm, activation; squeeze-excite on the expanded tensor with a
bottleneck of ``se_ratio`` times the block *input*; 1x1 linear projection, norm (no activation);
identity shortcut with drop-connect where stride 1 and the widths match.
Block strings: ``ir_`` typed; code 0 in both official notations. Search spaces: ``mbconvN``.
"""

from __future__ import annotations

from nas.kinds.block_kind import BlockKind
from nas.kinds.tally import strided
from nas.spec import expanded_width, se_width


class MBConvKind(BlockKind):
    name = "mbconv"
    title = "MBConv"
    prefix = "ir"
    op = "mbconv"
    official = {"efficientnet": 0, "v2": 0}

    def cost(self, tally, stage, in_channels, stride, size):
        mid = expanded_width(in_channels, stage.expansion)
        size_out = strided(size, stride)
        if stage.expansion != 1:
            tally.conv(in_channels, mid, 1, size)
            tally.norm(mid)
        tally.conv(mid, mid, stage.kernel, size_out, groups=mid // stage.group_size)
        tally.norm(mid)
        if stage.se_ratio > 0:
            tally.se(mid, se_width(in_channels, stage.se_ratio))
        tally.conv(mid, stage.out_channels, 1, size_out)
        tally.norm(stage.out_channels, activation_follows=False)
        return size_out

    def build(self, stage, in_channels, stride, drop_rate, norm, activation):
        from nas.blocks import MBConv  # torch: imported when used, not at module import

        return MBConv(in_channels, stage.out_channels, stage.kernel, stride, stage.expansion, stage.se_ratio,
                      stage.group_size, norm=norm, activation=activation, skip=stage.skip, drop_rate=drop_rate)


KIND = MBConvKind()

__all__ = ["KIND", "MBConvKind"]
