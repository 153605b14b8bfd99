"""Build a PyTorch network from an :class:`~nas.spec.ArchSpec`.

The builder reads only the spec, so two specs with the same key build the same network; the
analytic counter (:mod:`nas.counting`) walks the same spec and must agree with it exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import (ConvBlock, DepthwiseSeparable, FusedMBConv, Head, MBConv, Stem, init_weights, make_act,
                        make_norm)
from nas.spec import ArchSpec, StageSpec


def _make_block(stage: StageSpec, in_ch: int, stride: int, drop_rate: float, norm, act) -> nn.Module:
    out_ch = stage.out_channels
    if stage.block == "mbconv":
        return MBConv(in_ch, out_ch, stage.kernel, stride, stage.expansion, stage.mid_channels(in_ch),
                      stage.se_ratio, stage.group_size, stage.skip, drop_rate, norm, act)
    if stage.block == "fused_mbconv":
        return FusedMBConv(in_ch, out_ch, stage.kernel, stride, stage.expansion, stage.mid_channels(in_ch),
                           stage.se_ratio, stage.skip, drop_rate, norm, act)
    if stage.block == "ds":
        return DepthwiseSeparable(in_ch, out_ch, stage.kernel, stride, stage.se_ratio, stage.group_size,
                                  stage.skip, drop_rate, norm, act)
    if stage.block == "conv":
        return ConvBlock(in_ch, out_ch, stage.kernel, stride, stage.skip, drop_rate, norm, act)
    raise ValueError(f"unknown block {stage.block!r}")  # the spec validated it already


class Network(nn.Module):
    """stem -> stages (each an ``nn.Sequential`` of blocks) -> head; returns logits."""

    def __init__(self, spec: ArchSpec, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.spec = spec
        norm = make_norm(spec.norm)
        self.stem = Stem(in_chans, spec.stem_channels, norm, make_act(spec.activation))
        stages = []
        index, total = 0, spec.num_blocks
        for stage, in_ch in zip(spec.stages, spec.stage_in_channels()):
            act = make_act(stage.activation)
            blocks = []
            for r in range(stage.repeats):
                rate = spec.drop_connect_rate * index / total
                blocks.append(_make_block(stage, in_ch if r == 0 else stage.out_channels,
                                          stage.stride if r == 0 else 1, rate, norm, act))
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = Head(spec.stages[-1].out_channels, spec.head_channels, num_classes, spec.dropout, norm,
                         make_act(spec.activation))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before dropout and the classifier."""
        return self.head.forward_features(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build_model(spec: ArchSpec, num_classes: int | None = None, in_chans: int | None = None,
                generator: torch.Generator | None = None) -> Network:
    """The network of ``spec`` with the official initialization.

    ``num_classes`` / ``in_chans`` override the spec's (a preset at 1000 classes trained on MNIST).
    Pass a seeded ``torch.Generator`` for reproducible weights without touching the global seed.
    """
    model = Network(spec, num_classes or spec.num_classes, in_chans or spec.in_chans)
    init_weights(model, generator)
    return model


__all__ = ["Network", "build_model"]
