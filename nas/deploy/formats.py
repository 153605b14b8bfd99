"""The file formats a network is exported to, and the writers (unchecked): TorchScript and ONNX.

* TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze`` (weights become constants, which lets
  the JIT fold BatchNorm and fuse the graph; about 1.6x faster than eager on B0, see BENCHMARKS.md).
* ONNX: the ``torch.export``-based exporter (the default since PyTorch 2.9; the TorchScript-based
  one is deprecated), opset 18+, one file (weights inside), input ``images`` with a dynamic batch
  axis, output ``logits``.

The runtimes (:mod:`nas.deploy.runtimes`) compile a network through these writers; the checked
export (:mod:`nas.deploy.export`) writes with them and compares the file with PyTorch.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

from nas.errors import unknown_name
from nas.fileio import atomic_write_with

FORMATS = ("torchscript", "onnx")
EXPORT_BATCH = 2  # torch.export specializes a dimension of size 1; trace with 2 to keep batch dynamic
ONNX_INPUT = "images"
ONNX_OUTPUT = "logits"


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
    import torch  # torch: imported when used, not at module import

    with torch.no_grad(), quiet_exporter():
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        return torch.jit.freeze(traced)


def export_torchscript(model: Any, example: Any, path: str | Path) -> None:
    """Write the traced, frozen network to ``path`` (atomically)."""
    import torch  # torch: imported when used, not at module import

    module = trace_torchscript(model, example)
    atomic_write_with(path, lambda tmp: torch.jit.save(module, tmp))


def export_onnx(model: Any, example: Any, path: str | Path) -> None:
    """Write ``model`` as one ONNX file (atomically): input ``images`` [batch, C, H, W] with a
    dynamic batch axis, output ``logits`` [batch, classes]."""
    import torch  # torch: imported when used, not at module import

    x = example[:1].expand(EXPORT_BATCH, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)

    def write(tmp: str) -> None:
        with quiet_exporter():
            torch.onnx.export(model.eval(), (x,), tmp, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                              dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False)

    atomic_write_with(path, write)


__all__ = ["EXPORT_BATCH", "FORMATS", "ONNX_INPUT", "ONNX_OUTPUT", "check_format", "export_onnx",
           "export_torchscript", "quiet_exporter", "trace_torchscript"]
