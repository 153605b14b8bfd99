"""scalenas: neural architecture search for MBConv / Fused-MBConv networks.

``from nas import ArchSpec, StageSpec, preset, load_spec, build_model, count``. Torch is imported
only when :func:`build_model` is first used, so the command line starts fast.
"""

from __future__ import annotations

from typing import Any

from nas.api import load_spec
from nas.counting import Cost, count
from nas.errors import NasError, SpecError
from nas.presets import PRESETS, preset
from nas.scaling import round_filters, round_repeats, scale_spec
from nas.spec import ArchSpec, StageSpec

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "build_model":  # lazy: importing torch takes seconds
        from nas.builder import build_model  # torch: imported when used, not at module import

        return build_model
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = ["ArchSpec", "StageSpec", "Cost", "NasError", "SpecError", "PRESETS", "build_model", "count",
           "load_spec", "preset", "round_filters", "round_repeats", "scale_spec", "__version__"]
