"""TorchScript and ONNX files of a network, each checked against PyTorch right after writing.

* TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze`` (weights become constants, which lets
  the JIT fold BatchNorm and fuse the graph; about 1.6x faster than eager on B0, see BENCHMARKS.md).
* ONNX: the ``torch.export``-based exporter (the default since PyTorch 2.9; the TorchScript-based
  one is deprecated), opset 18+, one file (weights inside), input ``images`` with a dynamic batch
  axis, output ``logits``.

The check reloads the written file (``torch.jit.load``; an onnxruntime session) and compares its
logits with the eager network's on seeded inputs of batch 1 and 3, so a file that only works at the
traced batch size fails too. :class:`Parity` reports the largest absolute difference.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nas.errors import ConfigError, unknown_name
from nas.fileio import atomic_write_with

FORMATS = ("torchscript", "onnx")
CHECK_BATCHES = (1, 3)
EXPORT_BATCH = 2  # torch.export specializes a dimension of size 1; trace with 2 to keep batch dynamic


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


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporters' progress lines and deprecation chatter; errors still propagate."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise unknown_name("format", fmt, FORMATS)
    return fmt


def trace_torchscript(model: Any, example: Any) -> Any:
    """``model`` traced on ``example`` and frozen (eval mode, no autograd)."""
    import torch

    with torch.no_grad(), quiet_exporter():
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        return torch.jit.freeze(traced)


def export_torchscript(model: Any, example: Any, path: str | Path) -> None:
    """Write the traced, frozen network to ``path`` (atomically)."""
    import torch

    module = trace_torchscript(model, example)
    atomic_write_with(path, lambda tmp: torch.jit.save(module, tmp))


def export_onnx(model: Any, example: Any, path: str | Path) -> None:
    """Write ``model`` as one ONNX file (atomically): input ``images`` [batch, C, H, W] with a
    dynamic batch axis, output ``logits`` [batch, classes]."""
    import torch

    from nas.deploy.runtimes import ONNX_INPUT, ONNX_OUTPUT

    x = example[:1].expand(EXPORT_BATCH, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)

    def write(tmp: str) -> None:
        with quiet_exporter():
            torch.onnx.export(model.eval(), (x,), tmp, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                              dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False)

    atomic_write_with(path, write)


def check_inputs(example: Any, seed: int = 1) -> list[Any]:
    """Seeded standard-normal batches of :data:`CHECK_BATCHES` images shaped like ``example``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randn((b, *example.shape[1:]), generator=generator) for b in CHECK_BATCHES]


def compare(reference: Any, engine: Any, inputs: list[Any]) -> Parity:
    """Logits of ``engine`` (a runtimes.Engine) against the eager ``reference`` network."""
    import numpy as np
    import torch

    worst, scale = 0.0, 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = reference(x).float().numpy()
            got = engine.logits(x)
            if got.shape != expected.shape:
                raise ConfigError(f"exported model gives logits of shape {got.shape}, PyTorch {expected.shape}")
            worst = max(worst, float(np.abs(got - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
    return Parity(worst, scale, tuple(int(x.shape[0]) for x in inputs))


def check_torchscript_file(path: str | Path, reference: Any, example: Any, threads: int = 1) -> Parity:
    import torch

    from nas.deploy.runtimes import torchscript_engine

    module = torch.jit.load(str(path), map_location="cpu")
    return compare(reference, torchscript_engine(module, threads), check_inputs(example))


def check_onnx_file(path: str | Path, reference: Any, example: Any, threads: int = 1) -> Parity:
    """Validate the file with ``onnx.checker`` and compare onnxruntime's logits with PyTorch's."""
    import onnx

    from nas.deploy.runtimes import onnx_engine

    onnx.checker.check_model(str(path), full_check=True)
    return compare(reference, onnx_engine(path, threads), check_inputs(example))


def export_checked(model: Any, example: Any, fmt: str, path: str | Path) -> Parity:
    """Export in ``fmt`` to ``path`` and check the written file against ``model``."""
    check_format(fmt)
    if fmt == "torchscript":
        export_torchscript(model, example, path)
        return check_torchscript_file(path, model, example)
    export_onnx(model, example, path)
    return check_onnx_file(path, model, example)


__all__ = ["CHECK_BATCHES", "FORMATS", "Parity", "check_format", "check_inputs", "check_onnx_file",
           "check_torchscript_file", "compare", "export_checked", "export_onnx", "export_torchscript",
           "quiet_exporter", "trace_torchscript"]
