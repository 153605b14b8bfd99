"""A network cut into the pieces a latency table times: stem, one entry per block, head.

A block's latency depends on its layers and on the tensor it receives, so a :class:`Piece` holds
exactly that: block kind, input size, input and output width, kernel, stride, expansion, SE ratio,
group size, activation, whether the residual add exists, and the norm. Two blocks with equal
pieces run the same operations on the same shapes. A stage's first block (which may stride and
change width) and its repeated blocks (stride 1, width kept, residual when ``skip``) are
different pieces.

Pieces are built through the public builder (:func:`nas.builder.build_model` on a one-stage spec,
then ``.stem``, ``.stages[0][0]`` or ``.head``), so a new block kind registered with the model layer
is timed without any change here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from nas.errors import SpecError
from nas.spec import ArchSpec, StageSpec


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Piece:
    """One timed unit: ``kind`` is ``stem``, ``head`` or a (canonical) block type.

    Stem: ``in_ch`` image channels -> ``out_ch`` at input ``size`` (the resolution). Head:
    ``in_ch`` -> optional 1x1 conv to ``out_ch`` (0 = none), pooling, ``classes`` logits, at input
    ``size``. Blocks: every field.
    """

    kind: str
    size: int
    in_ch: int
    out_ch: int
    kernel: int = 0
    stride: int = 1
    expansion: float = 1
    se_ratio: float = 0.0
    group_size: int = 1
    activation: str = "silu"
    residual: bool = False
    classes: int = 0
    norm: str = "batchnorm"

    @property
    def key(self) -> str:
        """A readable unique name, e.g. ``mbconv_r56_i24_o40_k5_s2_e6_se0.25_g1_silu_res0_batchnorm``."""
        if self.kind == "stem":
            return f"stem_r{self.size}_i{self.in_ch}_o{self.out_ch}_{self.activation}_{self.norm}"
        if self.kind == "head":
            return f"head_r{self.size}_i{self.in_ch}_o{self.out_ch}_n{self.classes}_{self.activation}_{self.norm}"
        return (f"{self.kind}_r{self.size}_i{self.in_ch}_o{self.out_ch}_k{self.kernel}_s{self.stride}"
                f"_e{_num(self.expansion)}_se{_num(self.se_ratio)}_g{self.group_size}_{self.activation}"
                f"_res{int(self.residual)}_{self.norm}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _host_spec(self) -> ArchSpec:
        """A small valid network containing this piece (stem, one single-block stage, head)."""
        resolution = max(8, 2 * self.size)
        if self.kind == "stem":
            stage = StageSpec("conv", 1, 1, 1, 1, self.out_ch, skip=False, activation=self.activation)
            return ArchSpec(self.out_ch, (stage,), 0, resolution=max(8, self.size), norm=self.norm,
                            in_chans=self.in_ch, num_classes=1, activation=self.activation)
        if self.kind == "head":
            stage = StageSpec("conv", 1, 1, 1, 1, self.in_ch, skip=False, activation=self.activation)
            return ArchSpec(self.in_ch, (stage,), self.out_ch, resolution=resolution, norm=self.norm,
                            num_classes=self.classes, activation=self.activation)
        stage = StageSpec(self.kind, 1, self.kernel, self.stride, self.expansion, self.out_ch, self.se_ratio,
                          skip=self.residual, group_size=self.group_size, activation=self.activation)
        return ArchSpec(self.in_ch, (stage,), 0, resolution=resolution, norm=self.norm, num_classes=1,
                        activation=self.activation)

    def is_valid(self) -> bool:
        """False when no network can hold this piece (a group size that does not divide its width)."""
        try:
            self._host_spec()
        except SpecError:
            return False
        return True

    def module(self, seed: int = 0) -> Any:
        """The piece as a module in eval mode (seeded weights)."""
        import torch  # torch: imported when used, not at module import

        from nas.builder import build_model  # torch: imported when used, not at module import

        model = build_model(self._host_spec(), generator=torch.Generator().manual_seed(seed))
        part = model.stem if self.kind == "stem" else model.head if self.kind == "head" else model.stages[0][0]
        return part.eval()

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_ch, self.size, self.size)

    @property
    def boundary_elements(self) -> int:
        """Elements of the piece's input and output at batch 1. Timed alone, a piece pays for moving
        these into and out of its runtime's internal layout (ONNX Runtime reorders NCHW to blocked
        NCHWc and back around every piece); inside a network that happens once, so the calibration
        weighs this count (:func:`nas.deploy.latency_table.fit_calibration`)."""
        out = self.classes if self.kind == "head" else math.ceil(self.size / self.stride) ** 2 * self.out_ch
        return self.size ** 2 * self.in_ch + out


def canonical_block(stage: StageSpec) -> str:
    """The block type whose layers ``stage`` builds: ``ds`` is an MBConv of expansion 1, and a
    Fused-MBConv of expansion 1 without SE is a plain conv (as :meth:`ArchSpec.canonical` says)."""
    if stage.block == "ds":
        return "mbconv"
    if stage.block == "fused_mbconv" and stage.expansion == 1 and stage.se_ratio == 0:
        return "conv"
    return stage.block


def block_piece(stage: StageSpec, in_ch: int, size: int, first: bool, norm: str) -> Piece:
    """The piece of ``stage``'s first block (``first``) or of one of its repeated blocks."""
    cin = in_ch if first else stage.out_channels
    stride = stage.stride if first else 1
    return Piece(kind=canonical_block(stage), size=size, in_ch=cin, out_ch=stage.out_channels, kernel=stage.kernel,
                 stride=stride, expansion=stage.expansion, se_ratio=stage.se_ratio, group_size=stage.group_size,
                 activation=stage.activation, residual=stage.skip and stride == 1 and cin == stage.out_channels,
                 norm=norm)


def stem_piece(resolution: int, in_chans: int, stem_channels: int, activation: str, norm: str) -> Piece:
    return Piece("stem", resolution, in_chans, stem_channels, kernel=3, stride=2, activation=activation, norm=norm)


def head_piece(size: int, last_channels: int, head_channels: int, classes: int, activation: str, norm: str) -> Piece:
    return Piece("head", size, last_channels, head_channels, kernel=1, classes=classes, activation=activation,
                 norm=norm)


def spec_pieces(spec: ArchSpec) -> Iterator[tuple[str, Piece]]:
    """``(where, piece)`` for the stem, every block in order and the head; ``where`` reads
    ``stem``, ``stage 3 block 2``, ``head``."""
    yield "stem", stem_piece(spec.resolution, spec.in_chans, spec.stem_channels, spec.activation, spec.norm)
    size = math.ceil(spec.resolution / 2)
    for i, (stage, in_ch) in enumerate(zip(spec.stages, spec.stage_in_channels())):
        for r in range(stage.repeats):
            yield f"stage {i + 1} block {r + 1}", block_piece(stage, in_ch, size, r == 0, spec.norm)
            if r == 0:
                size = math.ceil(size / stage.stride)
    yield "head", head_piece(size, spec.stages[-1].out_channels, spec.head_channels, spec.num_classes,
                             spec.activation, spec.norm)


__all__ = ["Piece", "block_piece", "canonical_block", "head_piece", "spec_pieces", "stem_piece"]
