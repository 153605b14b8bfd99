"""A network exported to TorchScript or ONNX, each file checked against PyTorch right after writing.

The writers are :mod:`nas.deploy.formats`. The check reloads the written file (``torch.jit.load``;
an onnxruntime session) and compares its logits with the eager network's on seeded inputs of batch
1 and 3, so a file that only works at the traced batch size fails too. :class:`Parity` reports the
largest absolute difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.deploy.formats import check_format, export_onnx, export_torchscript
from nas.deploy.runtimes import onnx_runtime, torchscript_runtime
from nas.errors import ConfigError

CHECK_BATCHES = (1, 3)


@dataclass(frozen=True)
class Parity:
    """The exported file against PyTorch: largest absolute logit difference over ``batches``, and
    the largest absolute logit, for scale."""

    max_abs_diff: float
    max_abs_logit: float
    batches: tuple[int, ...]

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.max_abs_logit, 1e-12)

    def describe(self, runner: str) -> str:
        return (f"checked with {runner} at batch {', '.join(map(str, self.batches))}: max abs difference "
                f"{self.max_abs_diff:.3g} (logits up to {self.max_abs_logit:.3g})")


def check_inputs(example: Any, seed: int = 1) -> list[Any]:
    """Seeded standard-normal batches of :data:`CHECK_BATCHES` images shaped like ``example``."""
    import torch  # torch: imported when used, not at module import

    generator = torch.Generator().manual_seed(seed)
    return [torch.randn((b, *example.shape[1:]), generator=generator) for b in CHECK_BATCHES]


def compare(reference: Any, runtime: Any, inputs: list[Any]) -> Parity:
    """Logits of ``runtime`` (a :class:`~nas.deploy.runtimes.Runtime`) against the eager ``reference`` network."""
    import torch  # torch: imported when used, not at module import

    worst, scale = 0.0, 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = reference(x).float().numpy()
            got = runtime.logits(x)
            if got.shape != expected.shape:
                raise ConfigError(f"exported model gives logits of shape {got.shape}, PyTorch {expected.shape}")
            worst = max(worst, float(np.abs(got - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
    return Parity(worst, scale, tuple(int(x.shape[0]) for x in inputs))


def check_torchscript_file(path: str | Path, reference: Any, example: Any, threads: int = 1) -> Parity:
    import torch  # torch: imported when used, not at module import

    module = torch.jit.load(str(path), map_location="cpu")
    return compare(reference, torchscript_runtime(module, threads), check_inputs(example))


def check_onnx_file(path: str | Path, reference: Any, example: Any, threads: int = 1) -> Parity:
    """Validate the file with ``onnx.checker`` and compare onnxruntime's logits with PyTorch's."""
    import onnx  # onnxruntime: imported when an ONNX file is used

    onnx.checker.check_model(str(path), full_check=True)
    return compare(reference, onnx_runtime(path, threads), check_inputs(example))


def export_checked(model: Any, example: Any, fmt: str, path: str | Path) -> Parity:
    """Export in ``fmt`` to ``path`` and check the written file against ``model``."""
    check_format(fmt)
    if fmt == "torchscript":
        export_torchscript(model, example, path)
        return check_torchscript_file(path, model, example)
    export_onnx(model, example, path)
    return check_onnx_file(path, model, example)


__all__ = ["CHECK_BATCHES", "Parity", "check_inputs", "check_onnx_file", "check_torchscript_file", "compare",
           "export_checked"]
