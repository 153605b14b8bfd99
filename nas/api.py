"""One entry point for "give me a spec": ``load_spec`` accepts whatever a user is likely to hold.

A preset name, a spec JSON file, a trained ``model.pt``, any JSON output of ours that holds a spec under ``"spec"`` (a
search's ``b0.json``), or block strings pasted from a paper's code. The CLI's ``nas show`` and
``nas train`` take the same argument, so everything a user can name can be shown, counted and built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from nas.blockstrings import spec_from_block_strings
from nas.checkpoint import build_trained_model, load_model_checkpoint
from nas.errors import SpecError, StorageError
from nas.presets import PRESETS, preset
from nas.spec import ArchSpec


def _looks_like_block_strings(text: str) -> bool:
    return "_" in text and not text.lower().endswith(".json") and "/" not in text


def spec_from_json_data(data: Any, source: str) -> ArchSpec:
    """A spec from parsed JSON: the spec object itself or an object holding it under ``"spec"``."""
    if isinstance(data, Mapping) and "spec" in data and "stages" not in data:
        data = data["spec"]
    if not isinstance(data, Mapping) or "stages" not in data:
        raise SpecError(f"{source}: holds no spec (expected an object with 'stages', or one under the key 'spec')")
    try:
        return ArchSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(x: str | Path | ArchSpec | Mapping[str, Any]) -> ArchSpec:
    """Resolve ``x`` to an :class:`ArchSpec`, trying in order: a spec (returned as is), a mapping
    (spec dict or ``{"spec": ...}``), a preset name, a trained ``model.pt`` (its spec), an existing
    JSON file, block strings separated
    by spaces or commas (stem 32, head 1280, 224 px unless the official strings state the stem).
    """
    if isinstance(x, ArchSpec):
        return x
    if isinstance(x, Mapping):
        return spec_from_json_data(x, "spec")
    if not isinstance(x, (str, Path)):
        raise SpecError(f"spec: expected a preset name, a JSON file or block strings, got {type(x).__name__}")
    text = str(x).strip()
    if not text:
        raise SpecError("spec: empty (expected a preset name, a JSON file or block strings)")
    if text.lower() in PRESETS:
        return preset(text)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".pt":
        try:
            return load_model_checkpoint(path).spec
        except StorageError as exc:
            raise SpecError(str(exc)) from None
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SpecError(f"{text}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{text}: cannot read ({exc})") from None
        return spec_from_json_data(data, text)
    if path.suffix.lower() == ".json" or path.is_dir():
        raise SpecError(f"{text}: no such spec file")
    if _looks_like_block_strings(text):
        return spec_from_block_strings(text)
    raise SpecError(f"{text!r} is not a preset, a spec JSON file or block strings; presets: {', '.join(PRESETS)}")


def load_model(path: str | Path, ema: bool = False) -> Any:
    """The network of a trained ``model.pt`` with its weights (the EMA weights when ``ema``), in eval
    mode. Its inputs are normalized as in training: see :meth:`nas.checkpoint.ModelCheckpoint.normalization`."""
    return build_trained_model(load_model_checkpoint(path), ema=ema)


__all__ = ["load_model", "load_spec", "spec_from_json_data"]
