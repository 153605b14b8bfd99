"""Any labelled image collection laid out as one folder per class, decoded once with Pillow.

Layouts: ``DIR/<class>/<image>`` (everything is training data; no test split), or
``DIR/train/<class>/...`` with ``DIR/test/<class>/...`` (or ``DIR/val/...``) as the test split.
Each image is centre-cropped to a square and resized once to ``image_size`` (``ImageOps.fit``), so
the training loop never decodes a file. Gray images give a 1-channel dataset when every image is
gray; otherwise all images are converted to RGB.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from nas.errors import DataError

DEFAULT_IMAGE_SIZE = 64
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _image_suffixes() -> set[str]:
    from PIL import Image

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


def _decode(path: Path, size: int):
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in GRAY_MODES else "RGB"
            image = image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None
    return np.asarray(ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR))


def read_folder(root: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image under ``root/<class>/`` as uint8 (N, C, size, size) and int64 labels."""
    suffixes = _image_suffixes()
    files, labels = [], []
    for index, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"{folder}: class folder missing (the training split has class {name!r})")
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                       and not p.name.startswith("."))
        files += found
        labels += [index] * len(found)
    if not files:
        raise DataError(f"{root}: no image files in the class folders ({', '.join(classes[:5])}...)")
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _decode(p, size), files))
    gray = all(a.ndim == 2 for a in arrays)
    if gray:
        stacked = np.stack(arrays)[:, None]
    else:
        stacked = np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays])
        stacked = stacked.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stacked)), torch.tensor(labels, dtype=torch.int64)


def read(name: str, data_dir: Path, split: str,
         image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """One split of an image folder; the class list always comes from the training folder."""
    train_root, test_root = _layout(data_dir)
    classes = _classes(train_root)
    if split == "test":
        if test_root is None:
            raise DataError(f"{data_dir}: no test split (expected {data_dir}/test/<class>/ or {data_dir}/val/)")
        extra = sorted(set(_classes(test_root)) - set(classes))
        if extra:
            raise DataError(f"{test_root}: class folder(s) {', '.join(extra)} not in the training split")
        root = test_root
    else:
        root = train_root
    x, y = read_folder(root, classes if split == "train" else
                       [c for c in classes if (root / c).is_dir()], image_size)
    if split == "test":  # labels must index the training class list even if some class has no test images
        present = [c for c in classes if (root / c).is_dir()]
        y = torch.tensor([classes.index(present[i]) for i in y.tolist()], dtype=torch.int64)
    return x, y, len(classes), tuple(classes)


__all__ = ["read", "read_folder", "DEFAULT_IMAGE_SIZE"]
