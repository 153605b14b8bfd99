"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8, no download.

The default dataset of the README's first command: small enough that a proxy trains in seconds on a
laptop CPU, real enough that accuracy still separates good and bad architectures. scikit-learn ships
no test split, so a seeded, stratified fifth of the images (fixed seed, independent of the search
seed) is set aside as the test split before the minival split is drawn from the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.base import split_minival

TEST_FRACTION = 0.2
TEST_SEED = 20240917  # fixed: the test images must not depend on the search seed
NUM_CLASSES = 10


def read(name: str, data_dir: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
    """Images (N, 1, 8, 8) uint8 (the 0..16 gray levels stretched to 0..255) and int64 labels."""
    from sklearn.datasets import load_digits  # scikit-learn: imported only to read its bundled digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = split_minival(labels, TEST_FRACTION, TEST_SEED)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx]).unsqueeze(1).contiguous()
    y = torch.from_numpy(labels[idx])
    return x, y, NUM_CLASSES, tuple(str(i) for i in range(NUM_CLASSES))


__all__ = ["read"]
