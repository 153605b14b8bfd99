"""Any labelled image collection laid out as one folder per class, decoded once with Pillow.

Layouts: ``DIR/<class>/<image>`` (everything is training data; no test split), or
``DIR/train/<class>/...`` with ``DIR/test/<class>/...`` (or ``DIR/val/...``) as the test split.
Each image is centre-cropped to a square and resized once to ``image_size`` (``ImageOps.fit``), so
the training loop never decodes a file. Gray images give a 1-channel dataset when every image is
gray; otherwise all images are converted to RGB.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from nas.errors import DataError

DEFAULT_IMAGE_SIZE = 64
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _image_suffixes() -> set[str]:
    from PIL import Image  # Pillow: imported only by the image-folder reader

    return {ext.lower() for ext in Image.registered_extensions()}


def _layout(data_dir: Path) -> tuple[Path, Path | None]:
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: folder not found (expected one sub-folder of images per class)")
    train = data_dir / "train"
    if train.is_dir():
        for name in ("test", "val"):
            if (data_dir / name).is_dir():
                return train, data_dir / name
        return train, None
    return data_dir, None


def _classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image files>)")
    return classes


def _decode(path: str | Path, size: int):
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow: imported only by the image-folder reader

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in GRAY_MODES else "RGB"
            image = image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None
    return np.asarray(ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR))


def list_images(root: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    """Every image file under ``root/<class>/`` (sorted per class) and its class index. Paths are
    kept as strings: a list of 100,000 ``Path`` objects costs several times their text."""
    suffixes = _image_suffixes()
    files: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"{folder}: class folder missing (the training split has class {name!r})")
        found = sorted(entry.path for entry in os.scandir(folder)
                       if entry.is_file() and not entry.name.startswith(".")
                       and os.path.splitext(entry.name)[1].lower() in suffixes)
        files += found
        labels += [index] * len(found)
    if not files:
        raise DataError(f"{root}: no image files in the class folders ({', '.join(classes[:5])}...)")
    return files, labels


def decode_chunks(files: list[str], size: int, chunk: int = 1024) -> Iterator[np.ndarray]:
    """Decode ``files`` in order, ``chunk`` at a time, as uint8 (n, C, size, size): C is 1 when every
    image of the chunk is gray, else 3 (gray images among colour ones are repeated to RGB).

    Memory stays at a few chunks whatever the number of files: the streaming half of the
    ``imagefolder`` reader, used whole by :func:`read_folder` and chunk by chunk by the data cache.
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(files), chunk):
            arrays = list(pool.map(lambda p: _decode(p, size), files[start:start + chunk]))
            if all(a.ndim == 2 for a in arrays):
                yield np.stack(arrays)[:, None]
            else:
                rgb = np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays])
                yield np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """A decoded chunk with ``channels`` channels (a gray chunk repeated to RGB when needed)."""
    return x if x.shape[1] == channels else np.repeat(x, channels, axis=1)


def read_folder(root: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image under ``root/<class>/`` as uint8 (N, C, size, size) and int64 labels."""
    files, labels = list_images(root, classes)
    parts = list(decode_chunks(files, size))
    channels = max(part.shape[1] for part in parts)
    stacked = np.concatenate([to_channels(part, channels) for part in parts])
    return torch.from_numpy(stacked), torch.tensor(labels, dtype=torch.int64)


def split_root(data_dir: Path, split: str) -> tuple[Path, list[str], list[str]]:
    """The folder of ``split``, the training split's class list, and the classes present in it."""
    train_root, test_root = _layout(data_dir)
    classes = _classes(train_root)
    if split != "test":
        return train_root, classes, classes
    if test_root is None:
        raise DataError(f"{data_dir}: no test split (expected {data_dir}/test/<class>/ or {data_dir}/val/)")
    extra = sorted(set(_classes(test_root)) - set(classes))
    if extra:
        raise DataError(f"{test_root}: class folder(s) {', '.join(extra)} not in the training split")
    return test_root, classes, [c for c in classes if (test_root / c).is_dir()]


def read(name: str, data_dir: Path, split: str,
         image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """One split of an image folder; the class list always comes from the training folder."""
    root, classes, present = split_root(data_dir, split)
    x, y = read_folder(root, present, image_size)
    if present != classes:  # labels must index the training class list even if some class has no test images
        y = torch.tensor([classes.index(present[i]) for i in y.tolist()], dtype=torch.int64)
    return x, y, len(classes), tuple(classes)


def stream(name: str, data_dir: Path, split: str, image_size: int = DEFAULT_IMAGE_SIZE,
           chunk: int = 1024) -> tuple[int, int, int, tuple[str, ...], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """:func:`read` a chunk at a time, for the data cache: ``(count, channels, num_classes, classes,
    chunks)``. ``channels`` is 3 (gray chunks come as 1 channel; the cache keeps one channel when
    every image was gray), and each chunk is ``(images, labels)`` with labels of the training classes."""
    root, classes, present = split_root(data_dir, split)
    files, labels = list_images(root, present)
    index = np.array([classes.index(c) for c in present], dtype=np.int64)[np.asarray(labels, dtype=np.int64)]

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        start = 0
        for x in decode_chunks(files, image_size, chunk):
            yield x, index[start:start + len(x)]
            start += len(x)

    return len(files), 3, len(classes), tuple(classes), chunks()


__all__ = ["DEFAULT_IMAGE_SIZE", "decode_chunks", "list_images", "read", "read_folder", "split_root",
           "stream", "to_channels"]
