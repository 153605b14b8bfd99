"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8, no download.

The default dataset of the README's first command: small enough that a proxy trains in seconds on a
laptop CPU, real enough that accuracy still separates good and bad architectures. scikit-learn ships
no test split, so a seeded, stratified fifth of the images (fixed seed, independent of the search
seed) is set aside as the test split before the minival split is drawn from the rest.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from nas.data.base import split_minival

TEST_FRACTION = 0.2
TEST_SEED = 20240917  # fixed: the test images must not depend on the search seed
NUM_CLASSES = 10


def bundled_file() -> Path | None:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing scikit-learn."""
    found = importlib.util.find_spec("sklearn")
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 images (N, 8, 8) in 0..16 and their labels, as ``sklearn.datasets.load_digits`` gives them.

    Why the file and not ``load_digits``: importing scikit-learn's datasets takes about 2 s, paid by every
    process that reads digits (each test that runs the command line, each Ray worker); the bundled CSV
    (64 pixel columns, then the label) reads in milliseconds. Another scikit-learn layout falls back to it.
    """
    path = bundled_file()
    if path is None:
        from sklearn.datasets import load_digits  # scikit-learn: imported only where its file is not found

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def read(name: str, data_dir: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """Images (N, 1, 8, 8) uint8 (the 0..16 gray levels stretched to 0..255) and int64 labels."""
    raw, target = digits_arrays()
    images = np.rint(raw * (255.0 / 16.0)).astype(np.uint8)
    labels = target.astype(np.int64)
    train_idx, test_idx = split_minival(labels, TEST_FRACTION, TEST_SEED)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx]).unsqueeze(1).contiguous()
    y = torch.from_numpy(labels[idx])
    return x, y, NUM_CLASSES, tuple(str(i) for i in range(NUM_CLASSES))


__all__ = ["bundled_file", "digits_arrays", "read"]
