"""CIFAR-10 and CIFAR-100, "python version" batch files, read with a restricted unpickler.

These files are pickles, and ``pickle.load`` on a file from the internet runs whatever code the file
names. :class:`CifarUnpickler` resolves only the few globals that numpy arrays need (and refuses
object arrays, whose elements could smuggle in anything else), so a crafted batch raises
:class:`~nas.errors.DataError` instead of executing.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import DataError

IMAGE_BYTES = 3 * 32 * 32
LAYOUT = {
    "cifar10": {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)],
                "test": ["test_batch"], "labels": b"labels", "classes": 10, "meta": ("batches.meta", b"label_names")},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "test": ["test"], "labels": b"fine_labels",
                 "classes": 100, "meta": ("meta", b"fine_label_names")},
}


class Refused(pickle.UnpicklingError):
    """The batch names something outside the allowed set."""


def _safe_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(obj, bool(align), bool(copy))
    if dtype.hasobject:
        raise Refused("object arrays are not allowed")
    return dtype


def _safe_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric  # numpy 2; numpy.core is a deprecated alias

    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _safe_encode,
    }


class CifarUnpickler(pickle.Unpickler):
    """Accepts dicts, lists, strings, bytes, numbers and numeric numpy arrays; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed()[(module, name)]
        except KeyError:
            raise Refused(f"global {module}.{name} is not allowed in a CIFAR batch") from None

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("persistent ids are not allowed in a CIFAR batch")


def load_batch(path: Path) -> dict:
    """One batch file as a dict with bytes keys, or :class:`DataError` saying what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a CIFAR python-version batch)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        batch = CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Refused as exc:
        raise DataError(f"{path}: refused: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError) as exc:
        raise DataError(f"{path}: not a complete CIFAR python-version batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict, found {type(batch).__name__}")
    return {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}


def _locate(name: str, data_dir: Path) -> Path:
    folder = LAYOUT[name]["folder"]
    first = LAYOUT[name]["train"][0]
    for candidate in (data_dir, data_dir / folder):
        if (candidate / first).is_file():
            return candidate
    raise DataError(f"{data_dir / first}: file not found (expected the {name} python-version batches in "
                    f"{data_dir} or {data_dir / folder})")


def _batch_arrays(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = load_batch(path)
    if b"data" not in batch or label_key not in batch:
        raise DataError(f"{path}: missing key {'data' if b'data' not in batch else label_key.decode()!r}")
    data, labels = batch[b"data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {IMAGE_BYTES}), got {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: labels must be a list of integers") from None
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: label {int(labels.max() if labels.max() >= num_classes else labels.min())} "
                        f"outside 0..{num_classes - 1}")
    return data, labels


def _class_names(root: Path, name: str, num_classes: int) -> tuple[str, ...]:
    meta_file, key = LAYOUT[name]["meta"]
    path = root / meta_file
    if path.is_file():
        try:
            names = load_batch(path).get(key)
            if isinstance(names, list) and len(names) == num_classes:
                return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        except DataError:
            pass
    return tuple(str(i) for i in range(num_classes))


def read(name: str, data_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """Images (N, 3, 32, 32) uint8 and int64 labels of one split of ``cifar10`` or ``cifar100``."""
    layout = LAYOUT[name]
    root = _locate(name, data_dir)
    xs, ys = [], []
    for file in layout[split]:
        data, labels = _batch_arrays(root / file, layout["labels"], layout["classes"])
        xs.append(data)
        ys.append(labels)
    x = torch.from_numpy(np.concatenate(xs).reshape(-1, 3, 32, 32).copy())
    y = torch.from_numpy(np.concatenate(ys))
    return x, y, layout["classes"], _class_names(root, name, layout["classes"])


__all__ = ["CifarUnpickler", "load_batch", "read"]
