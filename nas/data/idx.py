"""MNIST and Fashion-MNIST from the original IDX files (``train-images-idx3-ubyte.gz`` ...).

The IDX format is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), the
dimensions as big-endian uint32, then the raw values. Every field is checked, because a truncated
download or a file of the other split otherwise turns into a silent shape error far from its cause.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from nas.errors import DataError

UBYTE = 0x08
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (count)
NUM_CLASSES = 10
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}


def _find(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{data_dir / (stem + '.gz')}: file not found (expected the IDX file {stem}.gz or {stem})")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_idx(path: Path, magic: int, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    """The array stored in one IDX file, after checking its magic number, dimensions and length."""
    raw = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes; an IDX file with {ndim} dimension(s) "
                        f"starts with {header})")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: wrong magic number 0x{found:08x}, expected 0x{magic:08x} "
                        f"(uint8 IDX with {ndim} dimension(s))")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape_tail is not None and dims[1:] != shape_tail:
        raise DataError(f"{path}: images of {'x'.join(map(str, dims[1:]))}, expected "
                        f"{'x'.join(map(str, shape_tail))}")
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header
    if body < expected:
        raise DataError(f"{path}: truncated: {body} data bytes, header promises {expected} for shape {dims}")
    if body > expected:
        raise DataError(f"{path}: {body - expected} trailing bytes after the {expected} that shape {dims} holds")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read(name: str, data_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """Images (N, 1, 28, 28) uint8 and labels int64 of one split of ``mnist`` or ``fashion-mnist``."""
    images_stem, labels_stem = FILES[split]
    images_path, labels_path = _find(data_dir, images_stem), _find(data_dir, labels_stem)
    images = read_idx(images_path, IMAGES_MAGIC, (28, 28))
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path.name}")
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..{NUM_CLASSES - 1}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y, NUM_CLASSES, CLASSES.get(name, CLASSES["mnist"])


__all__ = ["read", "read_idx", "IMAGES_MAGIC", "LABELS_MAGIC"]
