"""One calling convention for the runtimes a network ships on: eager PyTorch, TorchScript, ONNX Runtime.

:func:`build_runtime` turns a network into a :class:`Runtime`: ``runtime.prepare(x)`` converts a
float NCHW batch into what that runtime eats (a channels_last tensor, a numpy array) once, outside
any timing, and ``runtime.run(prepared)`` computes the logits. Benchmarks, latency tables and export
checks all go through it, so "ONNX Runtime with 2 threads" means the same session everywhere.

Thread counts: PyTorch's is process-wide (:func:`torch_threads` sets it for a block and restores
it); ONNX Runtime's belongs to the session (``intra_op_num_threads``, one inter-op thread).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from nas.deploy.formats import export_onnx, trace_torchscript
from nas.errors import ConfigError, unknown_name
from nas.registry import Registry


def check_runtime(name: str, field: str = "runtime") -> str:
    if name not in RUNTIMES:
        raise unknown_name("runtime", name, RUNTIMES.names, field=field)
    return name


def check_threads(threads: int, field: str = "threads") -> int:
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ConfigError(f"{field} must be an integer >= 1, got {threads!r}", field=field)
    return threads


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``threads`` inside the block, restored after."""
    import torch  # torch: imported when used, not at module import

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Runtime:
    """A network compiled for one runtime: ``run(prepare(x))`` -> logits (a tensor or an array)."""

    runtime: str
    threads: int
    prepare: Callable[[Any], Any]
    run: Callable[[Any], Any]
    int8: bool = False

    @property
    def label(self) -> str:
        return f"{self.runtime} int8" if self.int8 else self.runtime

    def logits(self, x: Any) -> Any:
        """Logits of a float NCHW tensor as a float32 numpy array (for comparisons)."""
        import torch  # torch: imported when used, not at module import

        out = self.run(self.prepare(x))
        return out.float().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=np.float32)


def ort_session(model_path: str | Path, threads: int) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and full graph optimization."""
    import onnxruntime as ort  # onnxruntime: imported when an ONNX file is used

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def onnx_runtime(model_path: str | Path, threads: int, int8: bool = False) -> Runtime:
    """A runtime running an ONNX file (ours: input ``images``, output ``logits``)."""
    session = ort_session(model_path, threads)
    input_name = session.get_inputs()[0].name

    def prepare(x: Any) -> Any:
        return {input_name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)}

    def run(feed: Any) -> Any:
        return session.run(None, feed)[0]

    return Runtime("onnxruntime", threads, prepare, run, int8=int8)


def torch_runtime(model: Any, threads: int) -> Runtime:
    """Eager PyTorch as the trainer evaluates: a private channels_last copy, ``inference_mode``."""
    import torch  # torch: imported when used, not at module import

    module = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)

    def prepare(x: Any) -> Any:
        return x.contiguous(memory_format=torch.channels_last)

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return module(x)

    return Runtime("torch", threads, prepare, _in_threads(run, threads), int8=False)


def torchscript_runtime(module: Any, threads: int) -> Runtime:
    """A TorchScript module (traced and frozen, or loaded from a file)."""
    import torch  # torch: imported when used, not at module import

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return module(x)

    return Runtime("torchscript", threads, lambda x: x.contiguous(), _in_threads(run, threads), int8=False)


def _in_threads(run: Callable[[Any], Any], threads: int) -> Callable[[Any], Any]:
    """``run`` under PyTorch's thread count ``threads``; setting it only when it differs keeps the
    common case (the caller already set it with :func:`torch_threads`) free of overhead."""
    import torch  # torch: imported when used, not at module import

    def wrapped(x: Any) -> Any:
        if torch.get_num_threads() == threads:
            return run(x)
        with torch_threads(threads):
            return run(x)

    return wrapped


def _torch_from_model(model: Any, example: Any, threads: int, onnx_path: Path | None, workdir: Path | None) -> Runtime:
    return torch_runtime(model, threads)


def _torchscript_from_model(model: Any, example: Any, threads: int, onnx_path: Path | None,
                            workdir: Path | None) -> Runtime:
    return torchscript_runtime(trace_torchscript(model, example), threads)


def _onnx_from_model(model: Any, example: Any, threads: int, onnx_path: Path | None, workdir: Path | None) -> Runtime:
    if onnx_path is None:
        if workdir is None:
            raise ValueError("build_runtime: onnxruntime needs onnx_path or workdir")
        onnx_path = Path(workdir) / "model.onnx"
        export_onnx(model, example, onnx_path)
    return onnx_runtime(onnx_path, threads)


# name -> (model, example, threads, onnx_path, workdir) -> Runtime
RUNTIMES: Registry = Registry("runtime", {"torch": _torch_from_model, "torchscript": _torchscript_from_model,
                                          "onnxruntime": _onnx_from_model}, field="runtime")


def build_runtime(runtime: str, model: Any, example: Any, threads: int = 1, workdir: str | Path | None = None,
                  onnx_path: str | Path | None = None) -> Runtime:
    """``model`` (eval mode) compiled for ``runtime`` with ``threads`` threads.

    ``example`` is a float NCHW batch used for tracing. ONNX Runtime needs an ONNX file: pass
    ``onnx_path`` to reuse one (sessions for several thread counts share it), else it is exported
    into ``workdir``.
    """
    check_runtime(runtime)
    check_threads(threads)
    return RUNTIMES[runtime](model, example, threads, None if onnx_path is None else Path(onnx_path),
                             None if workdir is None else Path(workdir))


__all__ = ["RUNTIMES", "Runtime", "build_runtime", "check_runtime", "check_threads",
           "onnx_runtime", "ort_session", "torch_runtime", "torch_threads", "torchscript_runtime"]
