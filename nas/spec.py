"""The declarative description of a network: :class:`ArchSpec` made of :class:`StageSpec`.

A spec is plain data: frozen dataclasses, validated on construction, that round-trip through JSON.
Everything else (the builder, the analytic counter, search spaces, scaling) reads a spec and never a
module, so two specs with the same :meth:`ArchSpec.key` always build, count and train identically.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any, Mapping

from nas.errors import SpecError
from nas.kinds import ACTIVATIONS, BLOCKS, NORMS
from nas.limits import MAX_CHANNELS, MAX_CLASSES, MAX_EXPANSION, MAX_LAYERS

KERNELS_MAX = 15


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise SpecError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _normalize_number(value: float) -> float | int:
    """Keep integral expansion ratios as ints so that 6 and 6.0 give one key and one JSON."""
    return int(value) if float(value).is_integer() else float(value)


def expanded_width(in_channels: int, expansion: float) -> int:
    """Width of a block's expanded (hidden) tensor, as the official code computes it."""
    return in_channels * expansion if isinstance(expansion, int) else int(in_channels * expansion)


def se_width(in_channels: int, se_ratio: float) -> int:
    """Squeeze-excite bottleneck width: a ratio of the block's *input* width (official code), at least 1."""
    return max(1, int(in_channels * se_ratio))


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` identical blocks; only the first one strides and changes width.

    ``group_size`` is the number of channels per group of the spatial (k x k) convolution of
    ``mbconv`` and ``ds`` blocks: 1 is depthwise, 16 gives the G16 variant of "Making EfficientNet
    More Efficient". ``skip`` allows the identity residual, which exists only on blocks with stride 1
    and equal input and output width.
    """

    block: str
    repeats: int
    kernel: int
    stride: int
    expansion: float
    out_channels: int
    se_ratio: float = 0.0
    skip: bool = True
    group_size: int = 1
    activation: str = "silu"

    def __post_init__(self) -> None:
        where = "stage"
        _check(self.block in BLOCKS, f"{where}.block",
               f"unknown block type {self.block!r}; valid: {', '.join(BLOCKS)}")
        _check(_is_int(self.repeats) and 1 <= self.repeats <= MAX_LAYERS, f"{where}.repeats",
               f"must be an integer between 1 and {MAX_LAYERS}, got {self.repeats!r}")
        _check(_is_int(self.kernel) and self.kernel >= 1 and self.kernel % 2 == 1 and self.kernel <= KERNELS_MAX,
               f"{where}.kernel", f"must be an odd integer between 1 and {KERNELS_MAX}, got {self.kernel!r}")
        _check(_is_int(self.stride) and self.stride in (1, 2), f"{where}.stride",
               f"must be 1 or 2, got {self.stride!r}")
        _check(_is_number(self.expansion) and 1 <= self.expansion <= MAX_EXPANSION, f"{where}.expansion",
               f"must be a number between 1 and {MAX_EXPANSION}, got {self.expansion!r}")
        object.__setattr__(self, "expansion", _normalize_number(self.expansion))
        _check(_is_int(self.out_channels) and 1 <= self.out_channels <= MAX_CHANNELS, f"{where}.out_channels",
               f"must be an integer between 1 and {MAX_CHANNELS}, got {self.out_channels!r}")
        _check(_is_number(self.se_ratio) and 0.0 <= self.se_ratio <= 1.0, f"{where}.se_ratio",
               f"must be in [0, 1], got {self.se_ratio!r}")
        object.__setattr__(self, "se_ratio", float(self.se_ratio))
        _check(isinstance(self.skip, bool), f"{where}.skip", f"must be true or false, got {self.skip!r}")
        _check(_is_int(self.group_size) and self.group_size >= 1, f"{where}.group_size",
               f"must be an integer >= 1, got {self.group_size!r}")
        _check(self.activation in ACTIVATIONS, f"{where}.activation",
               f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        BLOCKS[self.block].validate(self)

    def mid_channels(self, in_channels: int) -> int:
        """Width of the expanded (hidden) tensor, as the official code computes it."""
        return expanded_width(in_channels, self.expansion)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem, stages, head, and how it is trained and evaluated.

    ``name`` is a label only; it is not part of :meth:`key`. ``scale_head`` says whether width
    scaling (:func:`nas.scaling.scale_spec`) rounds the head width too: EfficientNet and V2 scale it,
    MnasNet keeps its 1280-wide head at every multiplier. It travels with the spec (and so with a
    search's ``b0.json``) because it is a property of the network family, not of one scaling call;
    it does not change the network built from this spec, so it is not part of :meth:`key` either.
    """

    stem_channels: int
    stages: tuple[StageSpec, ...]
    head_channels: int
    resolution: int = 224
    dropout: float = 0.2
    drop_connect_rate: float = 0.2
    norm: str = "batchnorm"
    num_classes: int = 1000
    in_chans: int = 3
    activation: str = "silu"
    name: str = ""
    scale_head: bool = True

    def __post_init__(self) -> None:
        stages = self.stages
        if isinstance(stages, list):
            stages = tuple(stages)
            object.__setattr__(self, "stages", stages)
        _check(isinstance(stages, tuple) and len(stages) >= 1, "stages", "must hold at least one stage")
        for i, stage in enumerate(stages):
            _check(isinstance(stage, StageSpec), f"stages[{i}]", f"must be a StageSpec, got {type(stage).__name__}")
        _check(_is_int(self.stem_channels) and 1 <= self.stem_channels <= MAX_CHANNELS, "stem_channels",
               f"must be an integer between 1 and {MAX_CHANNELS}, got {self.stem_channels!r}")
        _check(_is_int(self.head_channels) and 0 <= self.head_channels <= MAX_CHANNELS, "head_channels",
               f"must be an integer between 0 (no head conv) and {MAX_CHANNELS}, got {self.head_channels!r}")
        _check(_is_int(self.resolution) and 8 <= self.resolution <= 4096, "resolution",
               f"must be an integer between 8 and 4096, got {self.resolution!r}")
        _check(_is_number(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout",
               f"must be in [0, 1), got {self.dropout!r}")
        _check(_is_number(self.drop_connect_rate) and 0.0 <= self.drop_connect_rate < 1.0, "drop_connect_rate",
               f"must be in [0, 1), got {self.drop_connect_rate!r}")
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "drop_connect_rate", float(self.drop_connect_rate))
        _check(self.norm in NORMS, "norm", f"unknown normalization {self.norm!r}; valid: {', '.join(NORMS)}")
        _check(_is_int(self.num_classes) and 1 <= self.num_classes <= MAX_CLASSES, "num_classes",
               f"must be an integer between 1 and {MAX_CLASSES}, got {self.num_classes!r}")
        _check(_is_int(self.in_chans) and 1 <= self.in_chans <= MAX_CHANNELS, "in_chans",
               f"must be an integer between 1 and {MAX_CHANNELS}, got {self.in_chans!r}")
        _check(self.activation in ACTIVATIONS, "activation",
               f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        _check(isinstance(self.name, str), "name", "must be a string")
        _check(isinstance(self.scale_head, bool), "scale_head", f"must be true or false, got {self.scale_head!r}")
        # Group sizes must divide the width of the grouped convolution of every block.
        for i, (stage, in_ch) in enumerate(zip(stages, self.stage_in_channels())):
            if stage.group_size > 1:
                widths = {stage.mid_channels(in_ch)}
                if stage.repeats > 1:
                    widths.add(stage.mid_channels(stage.out_channels))
                for width in sorted(widths):
                    _check(width % stage.group_size == 0, f"stages[{i}].group_size",
                           f"{stage.group_size} does not divide the {width} channels of the grouped convolution")

    # ----------------------------------------------------------------------------------- structure
    def stage_in_channels(self) -> list[int]:
        """Input width of each stage's first block."""
        widths = [self.stem_channels]
        for stage in self.stages[:-1]:
            widths.append(stage.out_channels)
        return widths

    @property
    def num_blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)

    @property
    def final_channels(self) -> int:
        """Width of the features that reach the classifier."""
        return self.head_channels if self.head_channels > 0 else self.stages[-1].out_channels

    def with_(self, **changes: Any) -> "ArchSpec":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stages"}
        data["stages"] = [stage.to_dict() for stage in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchSpec":
        if not isinstance(data, Mapping):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"spec: unknown field(s) {', '.join(unknown)}")
        for required in ("stem_channels", "stages", "head_channels"):
            if required not in data:
                raise SpecError(f"{required}: missing")
        raw_stages = data["stages"]
        if not isinstance(raw_stages, (list, tuple)):
            raise SpecError("stages: must be a list of stage objects")
        stage_known = {f.name for f in fields(StageSpec)}
        stages = []
        for i, raw in enumerate(raw_stages):
            if not isinstance(raw, Mapping):
                raise SpecError(f"stages[{i}]: must be an object, got {type(raw).__name__}")
            bad = sorted(set(raw) - stage_known)
            if bad:
                raise SpecError(f"stages[{i}]: unknown field(s) {', '.join(bad)}")
            missing = [f.name for f in fields(StageSpec) if f.default is MISSING and f.name not in raw]
            if missing:
                raise SpecError(f"stages[{i}].{missing[0]}: missing")
            try:
                stages.append(StageSpec(**raw))
            except SpecError as exc:
                raise SpecError(f"stages[{i}]" + str(exc)[len("stage"):]) from None
        return cls(**{**{k: v for k, v in data.items() if k != "stages"}, "stages": tuple(stages)})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    # -------------------------------------------------------------------------------- identity
    def canonical(self) -> dict[str, Any]:
        """The spec reduced to what determines the built network.

        Equivalences folded here: each block kind names its canonical kind
        (:meth:`nas.kinds.block_kind.BlockKind.canonical`: a ``ds`` block is an ``mbconv`` with expansion
        1, a ``fused_mbconv`` with expansion 1 and no SE is a ``conv`` block); ``skip`` is dropped on stages where no block can have a residual, and the
        drop-connect rate where no block has one; the label ``name`` and ``scale_head`` (which only
        matters to later scaling) are dropped.
        """
        stages = []
        for stage, in_ch in zip(self.stages, self.stage_in_channels()):
            block = BLOCKS[stage.block].canonical(stage)
            residual_possible = stage.repeats > 1 or (stage.stride == 1 and in_ch == stage.out_channels)
            stages.append({
                "block": block, "repeats": stage.repeats, "kernel": stage.kernel, "stride": stage.stride,
                "expansion": stage.expansion, "out_channels": stage.out_channels,
                "se_ratio": stage.se_ratio, "skip": stage.skip and residual_possible,
                "group_size": stage.group_size, "activation": stage.activation,
            })
        data = self.to_dict()
        data.pop("name")
        data.pop("scale_head")
        data["stages"] = stages
        if not any(s["skip"] for s in stages):
            data["drop_connect_rate"] = 0.0
        return data

    def key(self) -> str:
        """A short stable hash: equal for two specs that build the same network."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


__all__ = ["ACTIVATIONS", "ArchSpec", "BLOCKS", "NORMS", "StageSpec", "expanded_width", "se_width"]
