"""Build a PyTorch network from an :class:`~nas.spec.ArchSpec`.

The builder reads only the spec, so two specs with the same key build the same network; the
analytic counter (:mod:`nas.counting`) walks the same spec and must agree with it exactly. Each
stage's blocks come from its block kind (:data:`nas.kinds.BLOCKS`), with the spec's norm kind and
the stage's activation passed by name.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import Head, Stem, init_weights
from nas.kinds import BLOCKS
from nas.spec import ArchSpec


class Network(nn.Module):
    """stem -> stages (each an ``nn.Sequential`` of blocks) -> head; returns logits."""

    def __init__(self, spec: ArchSpec, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.spec = spec
        self.stem = Stem(in_chans, spec.stem_channels, norm=spec.norm, activation=spec.activation)
        stages = []
        index, total = 0, spec.num_blocks
        for stage, in_ch in zip(spec.stages, spec.stage_in_channels()):
            kind = BLOCKS[stage.block]
            blocks = []
            for r in range(stage.repeats):
                rate = spec.drop_connect_rate * index / total
                blocks.append(kind.build(stage, in_ch if r == 0 else stage.out_channels, stage.stride if r == 0 else 1,
                                         rate, spec.norm, stage.activation))
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = Head(spec.stages[-1].out_channels, spec.head_channels, num_classes, spec.dropout, norm=spec.norm,
                         activation=spec.activation)

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
