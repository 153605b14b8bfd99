"""Analytic cost of a spec: multiply-adds, parameters and activation size, without torch.

A search counts thousands of candidates; building each one to count it would cost far more than
this arithmetic (see ``benchmarks/counting.py``). Each block kind adds its layers to a
:class:`Tally` in the order it builds them (:meth:`nas.kinds.block_kind.BlockKind.cost`); the stem and
the head are counted here:

* MACs are the multiply-adds of convolutions and linear layers only (the papers' "FLOPS"; norms,
  activations, pooling and the SE gate multiply are not counted, and neither is any statistic a
  norm kind computes from its parameters, for every norm kind alike: see :mod:`nas.kinds.norm_kind`).
  A conv producing an H x W x C_out map with kernel k and C_in / groups inputs per output costs
  H * W * C_out * k * k * C_in / groups.
* Params count every trainable tensor: conv weights (no bias except SE), what the spec's norm kind
  declares per norm (:meth:`nas.kinds.norm_kind.NormKind.params`; 2 per channel for batchnorm,
  groupnorm and layernorm), the classifier's weight and bias.
* Spatial size after a stride-s conv with 'same' padding is ceil(H / s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.errors import SpecError
from nas.kinds import BLOCKS, NORMS
from nas.kinds.tally import Tally, strided
from nas.spec import ArchSpec


@dataclass(frozen=True)
class StageCost:
    """Cost of one part of the network: ``stem``, ``stage1`` .. ``stageN`` or ``head`` (head conv
    and classifier). The parts add up to the totals of :class:`Cost`."""

    name: str
    macs: int
    params: int
    resolution_out: int
    channels_out: int


@dataclass(frozen=True)
class Cost:
    """Totals for one image; ``peak_activation`` is the element count of the largest feature map
    (including expanded tensors inside blocks)."""

    macs: int
    params: int
    stages: list[StageCost] = field(default_factory=list)
    peak_activation: int = 0


def count(spec: ArchSpec, resolution: int | None = None) -> Cost:
    """MACs, params, per-part breakdown and peak activation of ``spec`` at ``resolution`` (default:
    the spec's own). Params do not depend on the resolution."""
    size = spec.resolution if resolution is None else resolution
    if not (isinstance(size, int) and not isinstance(size, bool) and 8 <= size <= 4096):
        raise SpecError(f"resolution: must be an integer between 8 and 4096, got {size!r}")
    parts: list[StageCost] = []
    norm = NORMS[spec.norm]
    total = Tally(norm)
    total.peak = spec.in_chans * size * size

    def close(name: str, t: Tally, size_out: int, channels: int) -> None:
        parts.append(StageCost(name, t.macs, t.params, size_out, channels))
        total.macs += t.macs
        total.params += t.params
        total.peak = max(total.peak, t.peak)

    t = Tally(norm)
    size = strided(size, 2)
    t.conv(spec.in_chans, spec.stem_channels, 3, size)
    t.norm(spec.stem_channels)
    close("stem", t, size, spec.stem_channels)

    for i, (stage, in_ch) in enumerate(zip(spec.stages, spec.stage_in_channels())):
        t, kind = Tally(norm), BLOCKS[stage.block]
        for r in range(stage.repeats):
            size = kind.cost(t, stage, in_ch if r == 0 else stage.out_channels, stage.stride if r == 0 else 1, size)
        close(f"stage{i + 1}", t, size, stage.out_channels)

    t = Tally(norm)
    if spec.head_channels > 0:
        t.conv(spec.stages[-1].out_channels, spec.head_channels, 1, size)
        t.norm(spec.head_channels)
    features = spec.final_channels
    t.macs += features * spec.num_classes
    t.params += features * spec.num_classes + spec.num_classes
    close("head", t, 1, spec.num_classes)
    return Cost(macs=total.macs, params=total.params, stages=parts, peak_activation=total.peak)


__all__ = ["Cost", "StageCost", "Tally", "count"]
