"""A trained model on disk: ``model.pt``, the one file training writes and deployment reads.

The file is a plain dict that ``torch.load(path, weights_only=True)`` reads without running any
code from it (tensors, strings, numbers, lists, dicts only)::

    {"format": "scalenas-model", "version": 1,
     "spec": ArchSpec.to_dict() of the trained network (its classes and input channels; its
             resolution is the one it is evaluated at),
     "state_dict": {name: tensor},            # the raw weights
     "ema_state_dict": {name: tensor} | None, # the exponential moving average of the weights
     "config": {...},                          # how it was trained (JSON-like); nas train writes
                                               # "normalization": {"mean": [...], "std": [...]} (per
                                               # channel, on the 0..1 scale), "classes", "dataset",
                                               # "flat" (every training setting), "transfer"
     "metrics": {...}}                         # final measurements (JSON-like)

Everything that reads a checkpoint goes through :func:`load_model_checkpoint`, so a missing,
truncated, foreign or mismatched file is one clear :class:`~nas.errors.StorageError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nas.errors import SpecError, StorageError
from nas.fileio import atomic_torch_save
from nas.spec import ArchSpec

MODEL_FORMAT = "scalenas-model"
MODEL_VERSION = 1


@dataclass(frozen=True)
class ModelCheckpoint:
    """The contents of a ``model.pt``."""

    spec: ArchSpec
    state_dict: Mapping[str, Any]
    ema_state_dict: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def weights(self, ema: bool = False) -> Mapping[str, Any]:
        """The raw weights, or the EMA weights when ``ema`` (StorageError if the file has none)."""
        if not ema:
            return self.state_dict
        if self.ema_state_dict is None:
            raise StorageError(f"{self.path or 'checkpoint'}: holds no EMA weights (trained with ema_decay 0)")
        return self.ema_state_dict

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """Per-channel (mean, std) on the 0..1 scale that inputs were normalized with in training:
        ``x = (pixel / 255 - mean) / std``. None when the file does not say."""
        norm = self.config.get("normalization") if isinstance(self.config, Mapping) else None
        if not isinstance(norm, Mapping) or "mean" not in norm or "std" not in norm:
            return None
        return tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"])


def save_model_checkpoint(path: str | Path, spec: ArchSpec, state_dict: Mapping[str, Any],
                          config: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                          ema_state_dict: Mapping[str, Any] | None = None) -> None:
    """Write ``model.pt`` atomically (a reader never sees half a file)."""

    def plain(weights: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return None if weights is None else {k: v.detach().cpu().clone() for k, v in weights.items()}

    atomic_torch_save({"format": MODEL_FORMAT, "version": MODEL_VERSION, "spec": spec.to_dict(),
                       "state_dict": plain(state_dict), "ema_state_dict": plain(ema_state_dict),
                       "config": dict(config or {}), "metrics": dict(metrics or {})}, path)


def read_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one StorageError line."""
    import torch  # torch: imported when used, not at module import

    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle refused, not a torch file: all unreadable
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StorageError(f"{path}: unreadable {what} ({reason})") from None


def read_format(path: str | Path, what: str, fmt: str, version: int, expected: str) -> Mapping[str, Any]:
    """A torch file that must be a dict tagged ``{"format": fmt, "version": version}``; ``what`` and
    ``expected`` (which file it should have been) word the StorageError."""
    data = read_torch_file(path, what)
    if not isinstance(data, Mapping) or data.get("format") != fmt:
        raise StorageError(f"{path}: not a scalenas {what} (no format {fmt!r}); expected {expected}")
    if data.get("version") != version:
        raise StorageError(f"{path}: {what} version {data.get('version')!r} is not supported "
                           f"(this toolkit reads version {version})")
    return data


def load_model_checkpoint(path: str | Path) -> ModelCheckpoint:
    """Read and check a ``model.pt``; one StorageError line for anything that is not a usable model."""
    path = Path(path)
    data = read_format(path, "model checkpoint", MODEL_FORMAT, MODEL_VERSION, "the model.pt written by nas train")
    try:
        spec = ArchSpec.from_dict(data.get("spec"))
    except SpecError as exc:
        raise StorageError(f"{path}: its spec is invalid ({exc})") from None
    state = data.get("state_dict")
    if not isinstance(state, Mapping) or not state:
        raise StorageError(f"{path}: holds no weights (state_dict missing or empty)")
    ema = data.get("ema_state_dict")
    return ModelCheckpoint(spec=spec, state_dict=state, ema_state_dict=ema if isinstance(ema, Mapping) else None,
                           config=data.get("config") or {}, metrics=data.get("metrics") or {}, path=path)


def first_mismatch(expected: Mapping[str, Any], given: Mapping[str, Any]) -> str | None:
    """A sentence naming the first tensor of ``expected`` (a model's state dict) that ``given`` lacks
    or holds with another shape, or an unexpected extra tensor; None when they fit."""
    for name, tensor in expected.items():
        if name not in given:
            return f"tensor {name!r} is missing"
        if tuple(given[name].shape) != tuple(tensor.shape):
            return (f"tensor {name!r} has shape {tuple(given[name].shape)}, the model needs "
                    f"{tuple(tensor.shape)}")
    extra = [name for name in given if name not in expected]
    return f"tensor {extra[0]!r} is not in the model" if extra else None


def build_trained_model(checkpoint: ModelCheckpoint, ema: bool = False) -> Any:
    """The checkpoint's network with its weights loaded, in eval mode."""
    from nas.builder import build_model  # torch: imported when used, not at module import

    model = build_model(checkpoint.spec)
    weights = checkpoint.weights(ema)
    problem = first_mismatch(model.state_dict(), weights)
    if problem is not None:
        raise StorageError(f"{checkpoint.path or 'checkpoint'}: does not fit its own spec: {problem}")
    model.load_state_dict(weights)
    return model.eval()


__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "ModelCheckpoint", "build_trained_model", "first_mismatch",
           "load_model_checkpoint", "read_format", "read_torch_file", "save_model_checkpoint"]
