"""``conv``: a plain k x k conv with norm and activation (MnasNet's "Conv" operator).

No expansion, squeeze-excite or groups. The same layers as an expansion-1 Fused-MBConv without SE,
which is how the EfficientNetV2 notation writes it. Block strings: ``cn_`` typed.
Search spaces: ``conv``.
"""

from __future__ import annotations

from nas.kinds.block_kind import BlockKind
from nas.kinds.tally import strided


class ConvKind(BlockKind):
    name = "conv"
    title = "plain conv"
    prefix = "cn"
    op = "conv"
    has_expansion = False
    has_se = False
    has_group_size = False
    official_alias = "fused_mbconv"

    def cost(self, tally, stage, in_channels, stride, size):
        size_out = strided(size, stride)
        tally.conv(in_channels, stage.out_channels, stage.kernel, size_out)
        tally.norm(stage.out_channels)
        return size_out

    def build(self, stage, in_channels, stride, drop_rate, norm, activation):
        from nas.blocks import ConvBlock  # torch: imported when used, not at module import

        return ConvBlock(in_channels, stage.out_channels, stage.kernel, stride, norm=norm, activation=activation,
                         skip=stage.skip, drop_rate=drop_rate)


KIND = ConvKind()

__all__ = ["ConvKind", "KIND"]
