"""``fused_mbconv``: EfficientNetV2's Fused-MBConv.

Layers: k x k conv in -> expanded, norm, activation; squeeze-excite; 1x1 linear projection, norm.
At expansion 1 it is one k x k conv in -> out with norm and activation, and its SE (if any) gates
the input, as the official code does; without SE that is a plain ``conv`` block (one dedupe key).
No grouped convolution. Block strings: ``er_`` typed; code 1 (``c1``) in the EfficientNetV2
notation. Search spaces: ``fusedN``.
"""

from __future__ import annotations

from nas.kinds.block_kind import BlockKind
from nas.kinds.tally import strided
from nas.spec import expanded_width, se_width


class FusedMBConvKind(BlockKind):
    name = "fused_mbconv"
    title = "Fused-MBConv"
    prefix = "er"
    op = "fused"
    has_group_size = False
    official = {"v2": 1}

    def canonical(self, stage):
        return "conv" if stage.expansion == 1 and stage.se_ratio == 0 else self.name

    def cost(self, tally, stage, in_channels, stride, size):
        size_out = strided(size, stride)
        reduced = se_width(in_channels, stage.se_ratio)
        if stage.expansion != 1:
            mid = expanded_width(in_channels, stage.expansion)
            tally.conv(in_channels, mid, stage.kernel, size_out)
            tally.norm(mid)
            if stage.se_ratio > 0:
                tally.se(mid, reduced)
            tally.conv(mid, stage.out_channels, 1, size_out)
            tally.norm(stage.out_channels, activation_follows=False)
        else:
            if stage.se_ratio > 0:
                tally.se(in_channels, reduced)
            tally.conv(in_channels, stage.out_channels, stage.kernel, size_out)
            tally.norm(stage.out_channels)
        return size_out

    def build(self, stage, in_channels, stride, drop_rate, norm, activation):
        from nas.blocks import FusedMBConv  # torch: imported when used, not at module import

        return FusedMBConv(in_channels, stage.out_channels, stage.kernel, stride, stage.expansion, stage.se_ratio,
                           norm=norm, activation=activation, skip=stage.skip, drop_rate=drop_rate)


KIND = FusedMBConvKind()

__all__ = ["FusedMBConvKind", "KIND"]
