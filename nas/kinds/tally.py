"""The running tally a block kind adds its layers to, and the stride rule of its sizes.

It sits below both the kinds and the counter: every block kind states its cost by adding layers to a
:class:`Tally` (:meth:`nas.kinds.block_kind.BlockKind.cost`), and :func:`nas.counting.count` adds the
stem, the stages and the head. What counts as a multiply-add is stated in :mod:`nas.counting`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: norm kinds are objects the counter hands in
    from nas.kinds.norm_kind import NormKind


def strided(size: int, stride: int) -> int:
    """Spatial size after a stride-``stride`` conv with 'same' padding: ceil(size / stride)."""
    return -(-size // stride)


class Tally:
    """Running MACs, params and peak activation of one part of a network; block kinds add their
    layers to it with :meth:`conv`, :meth:`norm` and :meth:`se`."""

    def __init__(self, norm: "NormKind") -> None:
        self.norm_kind = norm
        self.macs = 0
        self.params = 0
        self.peak = 0

    def conv(self, in_ch: int, out_ch: int, kernel: int, size_out: int, groups: int = 1, bias: bool = False) -> None:
        per_output = kernel * kernel * (in_ch // groups)
        self.macs += size_out * size_out * out_ch * per_output
        self.params += out_ch * per_output + (out_ch if bias else 0)
        self.peak = max(self.peak, size_out * size_out * out_ch)

    def norm(self, channels: int, activation_follows: bool = True) -> None:
        self.params += self.norm_kind.params(channels, activation_follows)

    def se(self, channels: int, reduced: int) -> None:
        self.conv(channels, reduced, 1, 1, bias=True)
        self.conv(reduced, channels, 1, 1, bias=True)


__all__ = ["Tally", "strided"]
