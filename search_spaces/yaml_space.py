"""Search spaces written by users as YAML files.

Format (every key is checked; unknown keys are errors)::

    name: my-space              # optional, defaults to the file name
    stem_channels: 32
    head_channels: 1280
    resolution: 224
    activation: silu            # silu | relu
    se_on: [mbconv, fused_mbconv, ds]   # optional: block types that may carry SE
    choices:                    # default choice lists for every stage
      op: [conv, ds, mbconv3, mbconv6]   # conv | ds | mbconvN | fusedN (N = expansion)
      kernel: [3, 5]
      se: [0, 0.25]
      skip: [true, false]
      filters: [0.75, 1.0, 1.25]       # multipliers of the stage's base filters
      layers: [-1, 0, 1]               # offsets added to the base layer count
    stages:                     # the backbone: base values of each stage
      - {op: mbconv1, kernel: 3, stride: 1, filters: 16, layers: 1, se: 0.25}
      - {op: mbconv6, kernel: 3, stride: 2, filters: 24, layers: 2, se: 0.25,
         choices: {kernel: [3]}}       # a stage may override any choice list
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas.errors import SpaceError, SpecError
from search_spaces.base import AXES, FactorizedSpace, StageBase, parse_op

_TOP_KEYS = {"name", "stem_channels", "head_channels", "resolution", "activation", "se_on", "choices", "stages",
             "dropout", "drop_connect_rate", "description"}
_STAGE_KEYS = {"op", "kernel", "stride", "filters", "layers", "se", "skip", "expansion", "group_size", "choices"}
_REQUIRED_STAGE_KEYS = ("op", "kernel", "stride", "filters", "layers")


def load_yaml_space(path: str | Path) -> FactorizedSpace:
    """Read and validate a YAML space; every problem is a one-line SpaceError naming the file and key."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError(f"{where}: no such space file") from None
    except OSError as exc:
        raise SpaceError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpaceError(f"{where}: not valid YAML{at}") from None
    return space_from_dict(data, where=where, default_name=path.stem)


def _choice_lists(raw: Any, where: str) -> dict[str, tuple[Any, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: must be a mapping of decision -> list of options")
    out = {}
    for axis, options in raw.items():
        if axis not in AXES:
            raise SpaceError(f"{where}.{axis}: unknown decision; valid: {', '.join(AXES)}")
        if not isinstance(options, list) or not options:
            raise SpaceError(f"{where}.{axis}: must be a non-empty list")
        for option in options:
            if isinstance(option, (dict, list)) or option is None:
                raise SpaceError(f"{where}.{axis}: options must be plain values, got {option!r}")
        out[axis] = tuple(float(o) if axis == "se" and isinstance(o, int) and not isinstance(o, bool) else o
                          for o in options)
    return out


def space_from_dict(data: Any, where: str = "space", default_name: str = "custom") -> FactorizedSpace:
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: must be a YAML mapping with 'stages' and 'choices'")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_TOP_KEYS))}")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpaceError(f"{where}.stages: must be a non-empty list of stages")
    defaults = _choice_lists(data.get("choices"), f"{where}.choices")
    stages, choices = [], []
    for i, raw in enumerate(raw_stages):
        at = f"{where}.stages[{i}]"
        if not isinstance(raw, dict):
            raise SpaceError(f"{at}: must be a mapping")
        bad = sorted(set(raw) - _STAGE_KEYS)
        if bad:
            raise SpaceError(f"{at}: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(_STAGE_KEYS))}")
        missing = [k for k in _REQUIRED_STAGE_KEYS if k not in raw]
        if missing:
            raise SpaceError(f"{at}: missing {', '.join(missing)}")
        for key in ("kernel", "stride", "filters", "layers", "group_size"):
            if key in raw and not (isinstance(raw[key], int) and not isinstance(raw[key], bool) and raw[key] >= 1):
                raise SpaceError(f"{at}.{key}: must be a positive integer, got {raw[key]!r}")
        if raw["stride"] not in (1, 2):
            raise SpaceError(f"{at}.stride: must be 1 or 2, got {raw['stride']!r}")
        try:
            parse_op(raw["op"])
        except SpaceError as exc:
            raise SpaceError(f"{at}.op: {exc}") from None
        stages.append(StageBase(op=str(raw["op"]), kernel=raw["kernel"], stride=raw["stride"], filters=raw["filters"],
                                layers=raw["layers"], se=float(raw.get("se", 0.0)), skip=bool(raw.get("skip", True)),
                                expansion=raw.get("expansion", 1), group_size=raw.get("group_size", 1)))
        choices.append({**defaults, **_choice_lists(raw.get("choices"), f"{at}.choices")})
    activation = data.get("activation", "silu")
    try:
        return FactorizedSpace(
            name=str(data.get("name", default_name)), stages=tuple(stages), choices=tuple(choices),
            stem_channels=data.get("stem_channels", 32), head_channels=data.get("head_channels", 1280),
            resolution=data.get("resolution", 224), activation=activation,
            dropout=data.get("dropout", 0.2), drop_connect_rate=data.get("drop_connect_rate", 0.2),
            se_on=tuple(data.get("se_on", ("mbconv", "fused_mbconv", "ds"))),
            description=str(data.get("description", "")))
    except SpecError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}") from None
