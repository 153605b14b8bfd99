"""The resumable state of a training: ``last.pt``, written atomically after every epoch.

A run killed at any moment (even ``kill -9``) continues from its last completed epoch and ends
with the weights and metrics an uninterrupted run gives, bit for bit on the CPU. That needs every
piece of state the following steps read:

- the model's and the optimizer's state dicts (the optimizer's groups carry their peak learning
  rate; the schedule is a function of the step);
- the moving average of the weights and its update count;
- the generator of batch order and augmentation;
- torch's global generator(s), which dropout and drop-connect draw from (the trainer runs inside
  ``fork_rng``; this is the forked state, not the caller's): the CPU one and, on CUDA, the device's;
- the step counter, the per-epoch history rows and the training time so far;
- the spec and the training configuration, so that a resume with another architecture or other
  settings is refused instead of producing a chimera.

The file holds only tensors and plain data and is read with ``weights_only=True``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import torch

from nas.checkpoint import first_mismatch, read_format
from nas.errors import StorageError
from nas.fileio import atomic_torch_save
from nas.training.ema import WeightAverage
from nas.training.loop import TrainState

STATE_FORMAT = "scalenas-train-state"
STATE_VERSION = 1
PHASES = ("training", "done")


def global_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng_state(state: Mapping[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def captured(state: TrainState, ema: WeightAverage | None, device: torch.device) -> dict[str, Any]:
    """What :func:`restore_train_state` puts back: weights, optimizer, average, generators, step (call it
    between epochs, inside the training's ``fork_rng``)."""
    return {"step": state.step, "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "generator": state.generator.get_state(),
            "global_rng": global_rng_state(device)}


def save_train_state(path: str | Path, *, spec: Mapping[str, Any], config: Mapping[str, Any], state: TrainState,
                     ema: WeightAverage | None, history: list[dict[str, Any]], device: torch.device,
                     train_time_s: float, phase: str = "training") -> None:
    """Write ``last.pt`` atomically (call it between epochs, inside the training's ``fork_rng``)."""
    atomic_torch_save({
        "format": STATE_FORMAT, "version": STATE_VERSION, "phase": phase, "spec": dict(spec),
        "config": dict(config), **captured(state, ema, device), "history": list(history),
        "train_time_s": float(train_time_s)}, path)


def state_to_bytes(data: Mapping[str, Any]) -> bytes:
    """A training state (tensors and plain data) as bytes: what a rung's checkpoint travels as."""
    buffer = io.BytesIO()
    torch.save(dict(data), buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes, what: str = "rung checkpoint") -> dict[str, Any]:
    """The inverse of :func:`state_to_bytes`, read with ``weights_only=True``; StorageError if unreadable."""
    try:
        return dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means the same: unusable
        raise StorageError(f"{what}: unreadable ({' '.join(str(exc).split())[:200]})") from None


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Read and check ``last.pt``; one StorageError line for anything unusable."""
    data = read_format(path, "training state", STATE_FORMAT, STATE_VERSION, "the last.pt written by nas train")
    missing = [k for k in ("phase", "spec", "config", "step", "model", "optimizer", "generator", "global_rng",
                           "history") if k not in data]
    if missing or data["phase"] not in PHASES:
        raise StorageError(f"{path}: incomplete training state (missing {', '.join(missing) or 'a valid phase'})")
    return dict(data)


def restore_train_state(stored: Mapping[str, Any], state: TrainState, ema: WeightAverage | None,
                        device: torch.device, path: str | Path = "last.pt") -> None:
    """Put a loaded ``last.pt`` back into a freshly prepared training (inside its ``fork_rng``)."""
    problem = first_mismatch(state.model.state_dict(), stored["model"])
    if problem is not None:
        raise StorageError(f"{path}: does not fit this network: {problem}")
    if (ema is None) != (stored.get("ema") is None):
        raise StorageError(f"{path}: written {'with' if stored.get('ema') else 'without'} a weight average, "
                           f"this training is configured {'with' if ema else 'without'}")
    try:
        state.model.load_state_dict(stored["model"])
        state.optimizer.load_state_dict(stored["optimizer"])
        if ema is not None:
            ema.load_state_dict(stored["ema"])
        state.generator.set_state(stored["generator"])
        set_global_rng_state(stored["global_rng"], device)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise StorageError(f"{path}: cannot restore the training state ({reason})") from None
    state.step = int(stored["step"])


__all__ = ["PHASES", "STATE_FORMAT", "STATE_VERSION", "captured", "global_rng_state", "load_train_state",
           "restore_train_state", "save_train_state", "set_global_rng_state", "state_from_bytes", "state_to_bytes"]
