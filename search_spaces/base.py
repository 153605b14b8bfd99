"""MnasNet-style factorized hierarchical search spaces.

A network is a fixed list of stages (the backbone). Each stage owns a few independent decisions
(operator, kernel, squeeze-and-excitation, skip, width multiplier, layer offset...), shared by all of
the stage's layers. The space is the product of those choices, so a controller sees a flat list of
categorical :class:`~nas.controllers.base.Decision` and the space turns indices into an
:class:`~nas.spec.ArchSpec` and back.

Every built-in space (``mnasnet``, ``efficientnet``, ``efficientnetv2``) and every YAML space is one
:class:`FactorizedSpace`: only the backbone table and the choice lists differ.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from nas.decisions import Decision
from nas.errors import ConfigError, SpaceError, SpecError
from nas.kinds import BLOCKS
from nas.scaling import round_filters, scale_spec
from nas.spec import ArchSpec, StageSpec

# The per-stage decisions a space may expose, in the order they appear to a controller.
AXES = ("op", "kernel", "expansion", "se", "skip", "filters", "layers")

_NUMBER = r"(\d+(?:\.\d+)?)?"


def parse_op(op: str) -> tuple[str, float | None]:
    """Split an operator name into (block type, expansion or None).

    Each block kind names its operator (:attr:`nas.kinds.block_kind.BlockKind.op`): ``conv`` regular conv,
    ``ds`` depthwise-separable conv (MnasNet's SepConv), ``mbconvN`` MBConv with expansion N,
    ``fusedN`` Fused-MBConv with expansion N; ``mbconv`` and ``fused`` without N take the expansion
    from the stage's ``expansion`` decision. Kinds without an expansion give 1.
    """
    kinds = sorted(BLOCKS.entries(), key=lambda k: -len(k.op))  # longest first: mbconv before conv
    match = re.fullmatch("(" + "|".join(re.escape(k.op) for k in kinds) + ")" + _NUMBER, str(op))
    if not match:
        names = ", ".join(k.op + ("N" if k.has_expansion else "") for k in BLOCKS.entries())
        raise SpaceError(f"unknown operator {op!r}; use {names} (N = expansion)")
    name, expansion = match.groups()
    kind = next(k for k in kinds if k.op == name)
    if not kind.has_expansion:
        if expansion not in (None, "1"):
            raise SpaceError(f"operator {op!r}: {name} has no expansion")
        return kind.name, 1
    return kind.name, (float(expansion) if expansion is not None else None)


def _se_kinds() -> tuple[str, ...]:
    """Block kinds that may carry squeeze-excite: every kind that has it."""
    return tuple(kind.name for kind in BLOCKS.entries() if kind.has_se)


@dataclass(frozen=True)
class StageBase:
    """One backbone stage: the base value of each decision plus the fixed stride."""

    op: str
    kernel: int
    stride: int
    filters: int
    layers: int
    se: float = 0.0
    skip: bool = True
    expansion: float = 1
    group_size: int = 1


@dataclass(frozen=True)
class ProxyConfig:
    """How candidates are shrunk for brief training: width and depth multipliers and resolution.

    The reward's cost terms are computed on the full-size candidate at ``target_resolution``
    (``None``: the space's own resolution), as the papers train a proxy but count the real model.
    ``role`` names the settings in errors: ``proxy`` (``proxy_width``...), ``rerank``
    (``rerank_width``...), or ``""`` (``width``...) for a command that has its own flags.
    """

    width: float = 0.5
    depth: float = 0.5
    resolution: int = 32
    target_resolution: int | None = None
    role: str = field(default="proxy", compare=False, repr=False)

    def __post_init__(self) -> None:
        def name(what: str) -> str:
            return f"{self.role}_{what}" if self.role else what

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not (number(self.width) and 0 < self.width <= 4):
            raise ConfigError(f"{name('width')} must be in (0, 4], got {self.width}", field=name("width"))
        if not (number(self.depth) and 0 < self.depth <= 4):
            raise ConfigError(f"{name('depth')} must be in (0, 4], got {self.depth}", field=name("depth"))
        if not (integer(self.resolution) and 8 <= self.resolution <= 1024):
            raise ConfigError(f"{name('resolution')} must be an integer between 8 and 1024, got {self.resolution}",
                              field=name("resolution"))
        if self.target_resolution is not None and not (integer(self.target_resolution)
                                                       and 8 <= self.target_resolution <= 4096):
            raise ConfigError(f"target_resolution must be an integer between 8 and 4096, got "
                              f"{self.target_resolution}", field="target_resolution")


@dataclass(frozen=True)
class FactorizedSpace:
    """A factorized hierarchical space over a fixed backbone.

    ``choices[i][axis]`` lists the options of stage ``i`` for ``axis``; an axis with a single option
    is fixed and not shown to the controller. ``filters`` options are width multipliers of the base
    filters (rounded to a multiple of 8 as ``round_filters`` does); ``layers`` options are offsets
    added to the base layer count (never below 1). ``se_on`` restricts squeeze-and-excitation to the
    listed block types (EfficientNetV2 puts SE only on MBConv): on other blocks SE is 0.
    """

    name: str
    stages: tuple[StageBase, ...]
    choices: tuple[Mapping[str, tuple[Any, ...]], ...]
    stem_channels: int = 32
    head_channels: int = 1280
    resolution: int = 224
    activation: str = "silu"
    dropout: float = 0.2
    drop_connect_rate: float = 0.2
    se_on: tuple[str, ...] = field(default_factory=_se_kinds)
    description: str = ""
    decisions: tuple[Decision, ...] = field(init=False, repr=False, compare=False)
    _slots: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.stages) != len(self.choices):
            raise SpaceError(f"space {self.name!r}: {len(self.stages)} stages but {len(self.choices)} choice sets")
        decisions, slots = [], []
        for i, (stage, opts) in enumerate(zip(self.stages, self.choices)):
            unknown = sorted(set(opts) - set(AXES))
            if unknown:
                raise SpaceError(f"space {self.name!r}, stage {i}: unknown decision(s) {', '.join(unknown)}; "
                                 f"valid: {', '.join(AXES)}")
            for axis in AXES:
                options = tuple(opts.get(axis, ()))
                if len(options) != len(set(map(repr, options))):
                    raise SpaceError(f"space {self.name!r}, stage {i}: duplicate options in {axis}: {list(options)}")
                if len(options) > 1:
                    decisions.append(Decision(f"s{i + 1}_{axis}", options))
                    slots.append((i, axis))
        object.__setattr__(self, "decisions", tuple(decisions))
        object.__setattr__(self, "_slots", tuple(slots))
        self._validate()

    # --------------------------------------------------------------------------------- basics
    @property
    def size(self) -> int:
        return math.prod(len(d.options) for d in self.decisions)

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(len(d.options))) for d in self.decisions)

    def base_choices(self) -> tuple[int, ...]:
        """The choices that reproduce the backbone where its base values are among the options."""
        return self.encode(self.backbone())

    # ------------------------------------------------------------------------- decode / encode
    def _stage_values(self, choices: Sequence[int]) -> list[dict[str, Any]]:
        if len(choices) != len(self.decisions):
            raise SpaceError(f"space {self.name!r} has {len(self.decisions)} decisions, got {len(choices)} choices")
        values = [dict() for _ in self.stages]
        for (stage_index, axis), decision, choice in zip(self._slots, self.decisions, choices):
            if not (isinstance(choice, (int, np.integer)) and 0 <= choice < len(decision.options)):
                raise SpaceError(f"{decision.name}: choice {choice!r} outside 0..{len(decision.options) - 1}")
            values[stage_index][axis] = decision.options[int(choice)]
        for stage_index, opts in enumerate(self.choices):
            for axis, options in opts.items():
                if len(options) == 1:
                    values[stage_index][axis] = options[0]
        return values

    def _stage_spec(self, base: StageBase, value: Mapping[str, Any]) -> StageSpec:
        op = value.get("op", base.op)
        block, op_expansion = parse_op(op)
        kind = BLOCKS[block]
        expansion = op_expansion if op_expansion is not None else value.get("expansion", base.expansion)
        se = value.get("se", base.se) if block in self.se_on and kind.has_se else 0.0
        filters = round_filters(base.filters, value["filters"]) if "filters" in value else base.filters
        layers = max(1, base.layers + int(value.get("layers", 0)))
        return StageSpec(block=block, repeats=layers, kernel=int(value.get("kernel", base.kernel)), stride=base.stride,
                         expansion=expansion, out_channels=filters, se_ratio=float(se),
                         skip=bool(value.get("skip", base.skip)),
                         group_size=base.group_size if kind.has_group_size else 1,
                         activation=self.activation)

    def decode(self, choices: Sequence[int]) -> ArchSpec:
        """The full-size candidate for one point of the space."""
        values = self._stage_values(choices)
        try:
            stages = tuple(self._stage_spec(base, value) for base, value in zip(self.stages, values))
            return ArchSpec(stem_channels=self.stem_channels, stages=stages, head_channels=self.head_channels,
                            resolution=self.resolution, dropout=self.dropout,
                            drop_connect_rate=self.drop_connect_rate, activation=self.activation,
                            name=f"{self.name}-candidate")
        except SpecError as exc:
            raise SpaceError(f"space {self.name!r}: choices {list(choices)} give an invalid network: {exc}") from None

    def backbone(self) -> ArchSpec:
        """The backbone itself (every decision at its base value), even where a base value is not an option."""
        stages = tuple(self._stage_spec(b, {}) for b in self.stages)
        return ArchSpec(stem_channels=self.stem_channels, stages=stages, head_channels=self.head_channels,
                        resolution=self.resolution, dropout=self.dropout, drop_connect_rate=self.drop_connect_rate,
                        activation=self.activation, name=f"{self.name}-backbone")

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """The choices whose decoding builds ``spec``'s network; SpaceError if it is not in the space.

        Only the searched structure is compared (stages, stem, head, activation); resolution, classes
        and regularization are not decisions of the space.
        """
        if len(spec.stages) != len(self.stages):
            raise SpaceError(f"space {self.name!r} has {len(self.stages)} stages, the spec has {len(spec.stages)}")
        choices: list[int] = []
        for stage_index, (base, target) in enumerate(zip(self.stages, spec.stages)):
            slots = [k for k, (i, _) in enumerate(self._slots) if i == stage_index]
            found = self._encode_stage(base, stage_index, slots, target)
            if found is None:
                raise SpaceError(f"space {self.name!r}: stage {stage_index + 1} ({target}) is not in the space")
            choices.extend(found)
        decoded = self.decode(choices)
        if (decoded.stem_channels, decoded.head_channels, decoded.activation) != \
                (spec.stem_channels, spec.head_channels, spec.activation):
            raise SpaceError(f"space {self.name!r}: stem, head or activation of the spec differ from the space's")
        return tuple(choices)

    def _encode_stage(self, base: StageBase, stage_index: int, slots: list[int],
                      target: StageSpec) -> list[int] | None:

        fixed = {axis: opts[0] for axis, opts in self.choices[stage_index].items() if len(opts) == 1}
        ranges = [range(len(self.decisions[k].options)) for k in slots]
        for combo in itertools.product(*ranges):
            value = dict(fixed)
            for k, c in zip(slots, combo):
                value[self._slots[k][1]] = self.decisions[k].options[c]
            try:
                candidate = self._stage_spec(base, value)
            except (SpecError, SpaceError):
                continue
            if candidate == target:
                return list(combo)
        return None

    def stage_variants(self, stage_index: int) -> tuple[StageSpec, ...]:
        """Every distinct stage that stage ``stage_index`` can decode to, its own decisions varied
        (its input width is the previous stage's choice). Latency tables enumerate blocks from it."""
        fixed = {axis: opts[0] for axis, opts in self.choices[stage_index].items() if len(opts) == 1}
        slots = [k for k, (i, _) in enumerate(self._slots) if i == stage_index]
        variants: dict[StageSpec, None] = {}
        for combo in itertools.product(*(self.decisions[k].options for k in slots)):
            value = {**fixed, **{self._slots[k][1]: option for k, option in zip(slots, combo)}}
            try:
                variants.setdefault(self._stage_spec(self.stages[stage_index], value), None)
            except (SpecError, SpaceError):
                continue
        return tuple(variants)

    # ------------------------------------------------------------------------------ proxy
    def full_size(self, choices: Sequence[int], proxy: ProxyConfig, num_classes: int, in_chans: int) -> ArchSpec:
        """The candidate at full size, for the dataset's classes and channels, at the target resolution."""
        spec = self.decode(choices)
        return spec.with_(num_classes=num_classes, in_chans=in_chans,
                          resolution=proxy.target_resolution or self.resolution)

    def proxy(self, spec: ArchSpec, proxy: ProxyConfig, num_classes: int | None = None,
              in_chans: int | None = None) -> ArchSpec:
        """The smaller network that is actually trained: width/depth multipliers and proxy resolution."""
        scaled = scale_spec(spec, width=proxy.width, depth=proxy.depth, resolution=proxy.resolution)
        return scaled.with_(num_classes=num_classes or spec.num_classes, in_chans=in_chans or spec.in_chans,
                            name=(spec.name + "-proxy") if spec.name else "proxy")

    # ------------------------------------------------------------------------- validation
    def _validate(self) -> None:
        """Every single option must give a valid network with the others at their base value."""
        base = self.backbone()  # raises SpecError for an invalid backbone
        del base
        for (stage_index, axis), decision in zip(self._slots, self.decisions):
            for option in decision.options:
                value = {a: opts[0] for a, opts in self.choices[stage_index].items() if len(opts) == 1}
                value[axis] = option
                try:
                    self._check_option(axis, option)
                    self._stage_spec(self.stages[stage_index], value)
                except (SpecError, SpaceError) as exc:
                    raise SpaceError(f"space {self.name!r}, {decision.name} = {option!r}: {exc}") from None

    @staticmethod
    def _check_option(axis: str, option: Any) -> None:
        if axis == "filters" and not (isinstance(option, (int, float)) and option > 0):
            raise SpaceError(f"filters multiplier must be > 0, got {option!r}")
        if axis == "layers" and not isinstance(option, int):
            raise SpaceError(f"layers offset must be an integer, got {option!r}")
        if axis == "skip" and not isinstance(option, bool):
            raise SpaceError(f"skip must be true or false, got {option!r}")
        if axis == "op":
            parse_op(option)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.stages)} stages, {len(self.decisions)} decisions, "
                f"{self.size:.3g} architectures")
