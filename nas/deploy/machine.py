"""What a measurement was taken on: latencies mean nothing without the machine and the versions."""

from __future__ import annotations

import os
import platform
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """Platform, CPU model and logical CPU count, and the versions of the runtimes measured."""
    import torch  # torch: imported when used, not at module import

    info: dict[str, Any] = {"platform": platform.platform(), "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                            "python": platform.python_version(), "torch": torch.__version__}
    try:
        import onnxruntime  # onnxruntime: imported when an ONNX file is used

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # measuring eager PyTorch alone does not need it
        info["onnxruntime"] = None
    return info


def same_machine(recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """None when two machine records describe the same CPU and runtime versions, else a sentence
    naming the first difference (a table measured elsewhere must not be silently extended here)."""
    for key in ("cpu", "logical_cpus", "torch", "onnxruntime"):
        if recorded.get(key) != current.get(key):
            return f"{key} {recorded.get(key)!r} there, {current.get(key)!r} here"
    return None


__all__ = ["cpu_model", "machine_info", "same_machine"]
