"""Compact block strings: read and write the notations people paste from papers' code.

One string describes one stage. Three notations are understood (see :func:`decode_block`), so the
official EfficientNet, MnasNet and EfficientNetV2 configurations can be pasted as they are, and
the type-prefixed notation writes every stage field, so any spec survives a round trip.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, NamedTuple, Sequence

from nas.errors import SpecError
from nas.kinds import BLOCKS
from nas.kinds.block_kind import BlockKind
from nas.spec import ACTIVATIONS, ArchSpec, StageSpec

STYLES = ("efficientnet", "v2", "typed")
OFFICIAL_STYLES = ("efficientnet", "v2")
FLAG_ACTIVATION = {"nre": "relu", "nsw": "silu"}
ACTIVATION_FLAG = {act: flag for flag, act in FLAG_ACTIVATION.items()}
_TOKEN = re.compile(r"([a-z]+)(.*)")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][-+]?\d+)?")


class DecodedBlock(NamedTuple):
    """One decoded block string: its stage, the ``i`` input width it states (official notations),
    which notation it used, and whether it named its activation."""

    stage: StageSpec
    in_channels: int | None
    style: str
    explicit_activation: bool


def _by_prefix() -> dict[str, BlockKind]:
    """Typed-notation prefix -> block kind, from the registry."""
    return {kind.prefix: kind for kind in BLOCKS.entries()}


def _by_code(style: str) -> dict[int, BlockKind]:
    """Conv-type code -> block kind in an official notation (EfficientNetV2: 0 MBConv, 1 Fused-MBConv)."""
    return {kind.official[style]: kind for kind in BLOCKS.entries() if style in kind.official}


def _fail(text: str, field: str, message: str) -> SpecError:
    return SpecError(f"block string {text!r}: {field}: {message}")


def _int(text: str, key: str, value: str) -> int:
    if not value.isdigit():
        raise _fail(text, key, f"expected an integer after {key!r}, got {value!r}")
    return int(value)


def _num(text: str, key: str, value: str) -> float:
    if not _NUMBER.fullmatch(value):
        raise _fail(text, key, f"expected a number after {key!r}, got {value!r}")
    return float(value)


def decode_block(text: str, activation: str = "silu") -> DecodedBlock:
    """Decode one stage from a block string.

    Grammar: options joined by ``_``; each option is a key and a value (``k5``, ``se0.25``) or a bare
    flag (``noskip``); option order is free, each key at most once.

    * EfficientNet / MnasNet official, e.g. ``r1_k3_s11_e1_i32_o16_se0.25[_noskip]``: ``r`` repeats,
      ``k`` kernel, ``s`` stride written twice (``s11``, ``s22``), ``e`` integer expansion, ``i``
      input and ``o`` output channels, optional ``se`` ratio, flag ``noskip``. Always an MBConv
      (expansion 1 is MnasNet's depthwise-separable block, which builds the same layers).
    * EfficientNetV2 official, e.g. ``r2_k3_s1_e1_i24_o24_c1``: as above with a one-digit stride and
      ``c1`` for Fused-MBConv (``c0`` or no ``c``: MBConv).
    * Type-prefixed, e.g. ``ir_r2_k3_s2_e6_c24_se0.25``: the block kind's prefix (``ir_`` MBConv,
      ``er_`` Fused-MBConv, ``ds_`` depthwise-separable, ``cn_`` plain conv: :data:`nas.kinds.BLOCKS`),
      then ``r``, ``k``, ``s`` (one digit), ``e`` (required for kinds with an expansion, 1 and
      optional for ds/cn; may be fractional),
      ``c`` output channels, optional ``se`` ratio, ``gs`` group size of the k x k conv (default 1 =
      depthwise), flags ``noskip``, ``nre`` (ReLU) or ``nsw`` (SiLU). ``i`` is not used: the input
      width is the previous stage's output.

    Without an activation flag a stage takes ``activation``. Field values are then validated by
    :class:`~nas.spec.StageSpec` (stride 1 or 2, odd kernel, ...). Raises :class:`SpecError` naming
    the string and the offending option.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"block string {text!r}: empty")
    text = text.strip()
    parts = text.split("_")
    prefix = _by_prefix().get(parts[0])
    options: dict[str, str] = {}
    flags: set[str] = set()
    for part in parts[1:] if prefix else parts:
        match = _TOKEN.fullmatch(part)
        if not match:
            raise _fail(text, part or "_", "malformed option (expected a letter key and a value, e.g. k3)")
        key, value = match.groups()
        if key in options or key in flags:
            raise _fail(text, key, "given twice")
        if value == "":
            flags.add(key)
        else:
            options[key] = value
    if prefix:
        return _decode_typed(text, prefix, options, flags, activation)
    return _decode_official(text, options, flags, activation)


def _check_keys(text: str, options: dict[str, str], flags: set[str], allowed: set[str], allowed_flags: set[str],
                required: Sequence[str], notation: str) -> None:
    for key in options:
        if key not in allowed:
            raise _fail(text, key, f"unknown option in the {notation} notation; valid: {', '.join(sorted(allowed))}")
    for flag in flags:
        if flag not in allowed_flags:
            key = max((k for k in allowed if flag.startswith(k)), key=len, default=None)
            if key is not None:
                raise _fail(text, key, f"expected a number after {key!r}, got {flag[len(key):]!r}")
            hint = f"; valid flags: {', '.join(sorted(allowed_flags))}" if allowed_flags else ""
            raise _fail(text, flag, f"unknown flag or option without a value{hint}")
    for key in required:
        if key not in options:
            raise _fail(text, key, f"missing (the {notation} notation needs {', '.join(required)})")


def _stage(text: str, **values: Any) -> StageSpec:
    try:
        return StageSpec(**values)
    except SpecError as exc:
        raise SpecError(f"block string {text!r}: {str(exc)[len('stage.'):]}") from None


def _decode_official(text: str, options: dict[str, str], flags: set[str], activation: str) -> DecodedBlock:
    if "s" not in options:
        raise _fail(text, "s", "missing (and no type prefix ir_/er_/ds_/cn_)")
    stride_text = options["s"]
    if len(stride_text) == 2 and stride_text.isdigit():
        if stride_text[0] != stride_text[1]:
            raise _fail(text, "s", f"non-square stride {stride_text} is not supported")
        style, allowed = "efficientnet", {"r", "k", "s", "e", "i", "o", "se"}
    elif len(stride_text) == 1:
        style, allowed = "v2", {"r", "k", "s", "e", "i", "o", "se", "c"}
    else:
        raise _fail(text, "s", f"expected s1/s2 (V2) or s11/s22 (EfficientNet), got s{stride_text}")
    _check_keys(text, options, flags, allowed, {"noskip"}, ("r", "k", "s", "e", "i", "o"),
                "EfficientNet" if style == "efficientnet" else "EfficientNetV2")
    kinds = _by_code(style)
    conv_type = _int(text, "c", options["c"]) if "c" in options else 0
    if conv_type not in kinds:
        valid = " or ".join(f"{code} ({kind.title})" for code, kind in sorted(kinds.items()))
        raise _fail(text, "c", f"conv type must be {valid}, got {conv_type}")
    stage = _stage(text, block=kinds[conv_type].name, repeats=_int(text, "r", options["r"]), kernel=_int(text, "k", options["k"]),
                   stride=int(stride_text[0]), expansion=_int(text, "e", options["e"]),
                   out_channels=_int(text, "o", options["o"]),
                   se_ratio=_num(text, "se", options["se"]) if "se" in options else 0.0,
                   skip="noskip" not in flags, activation=activation)
    in_channels = _int(text, "i", options["i"])
    if in_channels < 1:
        raise _fail(text, "i", f"must be >= 1, got {in_channels}")
    return DecodedBlock(stage, in_channels, style, False)


def _decode_typed(text: str, kind: BlockKind, options: dict[str, str], flags: set[str],
                  activation: str) -> DecodedBlock:
    required = ("r", "k", "s", "e", "c") if kind.has_expansion else ("r", "k", "s", "c")
    _check_keys(text, options, flags, {"r", "k", "s", "e", "c", "se", "gs"}, {"noskip", *FLAG_ACTIVATION},
                required, f"{kind.prefix}_")
    act_flags = flags & set(FLAG_ACTIVATION)
    if len(act_flags) > 1:
        raise _fail(text, "activation", "both nre and nsw given")
    explicit = bool(act_flags)
    if explicit:
        activation = FLAG_ACTIVATION[act_flags.pop()]
    if len(options["s"]) != 1:
        raise _fail(text, "s", f"the typed notation writes the stride as one digit, got s{options['s']}")
    expansion = _num(text, "e", options["e"]) if "e" in options else 1
    stage = _stage(text, block=kind.name, repeats=_int(text, "r", options["r"]), kernel=_int(text, "k", options["k"]),
                   stride=_int(text, "s", options["s"]), expansion=expansion,
                   out_channels=_int(text, "c", options["c"]),
                   se_ratio=_num(text, "se", options["se"]) if "se" in options else 0.0,
                   skip="noskip" not in flags,
                   group_size=_int(text, "gs", options["gs"]) if "gs" in options else 1,
                   activation=activation)
    return DecodedBlock(stage, None, "typed", explicit)


def _fmt(value: float) -> str:
    """Shortest text that reads back to the same number (6, 4.5, 0.25)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def encode_block(stage: StageSpec, in_channels: int, style: str = "typed", activation: str = "silu") -> str:
    """Encode one stage; ``in_channels`` is its input width, ``activation`` the spec's.

    The official notations cannot say everything a spec can: they raise :class:`SpecError` for a
    group size other than 1, a fractional expansion, a stage activation other than the spec's, and
    (EfficientNet notation) Fused-MBConv or plain conv blocks. A ``ds`` block is written as an
    expansion-1 MBConv and a V2 ``conv`` block as an expansion-1 Fused-MBConv, which build the same
    layers. The typed notation writes the activation flag whenever it is ReLU or differs from the
    spec's, so strings pasted without the spec keep their activation.
    """
    kind = BLOCKS[stage.block]
    if style == "typed":
        parts = [kind.prefix, f"r{stage.repeats}", f"k{stage.kernel}", f"s{stage.stride}"]
        if kind.has_expansion:
            parts.append(f"e{_fmt(stage.expansion)}")
        parts.append(f"c{stage.out_channels}")
        if stage.se_ratio > 0:
            parts.append(f"se{_fmt(stage.se_ratio)}")
        if stage.group_size != 1:
            parts.append(f"gs{stage.group_size}")
        if not stage.skip:
            parts.append("noskip")
        if stage.activation != activation or stage.activation != "silu":
            parts.append(ACTIVATION_FLAG[stage.activation])
        return "_".join(parts)
    if style not in STYLES:
        raise SpecError(f"block string style {style!r} unknown; valid: {', '.join(STYLES)}")
    where = f"cannot write stage {stage.block} r{stage.repeats} c{stage.out_channels} in the {style} notation"
    if stage.group_size != 1:
        raise SpecError(f"group_size: {where}: it has no group size (use style 'typed')")
    if not float(stage.expansion).is_integer():
        raise SpecError(f"expansion: {where}: it needs an integer expansion (use style 'typed')")
    if stage.activation != activation:
        raise SpecError(f"activation: {where}: it cannot give a stage its own activation (use style 'typed')")
    written = kind if kind.official or kind.official_alias is None else BLOCKS[kind.official_alias]
    if style not in written.official:
        able = [s for s in OFFICIAL_STYLES if s in written.official] + ["typed"]
        raise SpecError(f"block: {where}: it has no {stage.block} blocks (use style "
                        f"{' or '.join(repr(s) for s in able)})")
    stride = f"{stage.stride}{stage.stride}" if style == "efficientnet" else f"{stage.stride}"
    parts = [f"r{stage.repeats}", f"k{stage.kernel}", f"s{stride}", f"e{int(stage.expansion)}", f"i{in_channels}",
             f"o{stage.out_channels}"]
    if written.official[style]:
        parts.append(f"c{written.official[style]}")
    if stage.se_ratio > 0:
        parts.append(f"se{_fmt(stage.se_ratio)}")
    if not stage.skip:
        parts.append("noskip")
    return "_".join(parts)


def split_block_strings(strings: str | Iterable[str]) -> list[str]:
    """Accept one string of block strings separated by spaces and/or commas, or any iterable of them
    (nested lists, as in timm's per-stage lists, are flattened)."""
    if isinstance(strings, str):
        return [s for s in re.split(r"[\s,]+", strings.strip().strip("[]")) if s.strip("'\"")]
    out: list[str] = []
    for item in strings:
        out.extend(split_block_strings(item))
    return out


def spec_from_block_strings(strings: str | Iterable[str], **spec_fields: Any) -> ArchSpec:
    """Build an :class:`ArchSpec` from block strings plus any ArchSpec fields (stem_channels,
    head_channels, resolution, activation, norm, ...).

    Defaults: the stem is the first official string's ``i`` (else 32), the head 1280. Each official
    string's ``i`` must equal the previous stage's output (or the stem). The spec's activation
    defaults to ``silu``, or to the typed strings' common activation when every one names it.
    """
    texts = [s.strip("'\"") for s in split_block_strings(strings)]
    if not texts:
        raise SpecError("block strings: none given")
    default_act = spec_fields.get("activation", "silu")
    if default_act not in ACTIVATIONS:
        raise SpecError(f"activation: unknown activation {default_act!r}; valid: {', '.join(ACTIVATIONS)}")
    decoded = [decode_block(t, default_act) for t in texts]
    fields = dict(spec_fields)
    if "stem_channels" not in fields:
        fields["stem_channels"] = decoded[0].in_channels or 32
    fields.setdefault("head_channels", 1280)
    if "activation" not in fields:
        acts = {d.stage.activation for d in decoded}
        if all(d.explicit_activation for d in decoded) and len(acts) == 1:
            fields["activation"] = acts.pop()
    previous, previous_name = fields["stem_channels"], "the stem"
    for i, (text, d) in enumerate(zip(texts, decoded)):
        if d.in_channels is not None and d.in_channels != previous:
            raise SpecError(f"block string {i + 1} {text!r}: i: input width i{d.in_channels} does not match "
                            f"the output of {previous_name} ({previous})")
        previous, previous_name = d.stage.out_channels, f"block string {i + 1}"
    try:
        return ArchSpec(stages=tuple(d.stage for d in decoded), **fields)
    except TypeError as exc:
        raise SpecError(f"spec: {exc}") from None


def spec_to_block_strings(spec: ArchSpec, style: str = "typed") -> list[str]:
    """One block string per stage of ``spec`` in the chosen notation (see :func:`encode_block`)."""
    if style not in STYLES:
        raise SpecError(f"block string style {style!r} unknown; valid: {', '.join(STYLES)}")
    return [encode_block(stage, in_ch, style, spec.activation)
            for stage, in_ch in zip(spec.stages, spec.stage_in_channels())]


__all__ = ["DecodedBlock", "STYLES", "decode_block", "encode_block", "spec_from_block_strings",
           "spec_to_block_strings", "split_block_strings"]
