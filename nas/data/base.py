"""The in-memory dataset every reader produces and the trainer consumes.

Images stay uint8 (N, C, H, W) until a batch is augmented on the training device: a quarter of the
memory of float32, one host-to-device copy per run, and no decoding inside the training loop.
The minival split is carved out of the training set here, once, with a seeded generator, so that a
search never sees the test split; the test split is read only when someone asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from nas.data.sources import TensorSource
from nas.errors import DataError

if TYPE_CHECKING:
    from nas.data.sources import ImageSource

TestReader = Callable[[], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / minival uint8 images with int64 labels, and how to read the test split.

    ``mean`` / ``std`` are per-channel statistics of the training images on the [0, 1] scale, used
    for normalization. ``hflip`` is the dataset's default for horizontal-flip augmentation (off for
    digits, where a flip changes the meaning of some classes). ``crop_fraction`` is the default
    random-crop padding as a fraction of the training resolution: 1/8 for natural images, 0 for
    the digit and Fashion-MNIST sets, whose centred objects gain nothing from shifts in a brief
    proxy run (Fashion-MNIST, 2 epochs: 86% without the crop, 84% with 2 px; BENCHMARKS.md). ``test_reader`` is a picklable
    zero-argument callable (a :func:`functools.partial` of a reader function), so a dataset sent to a
    Ray worker carries a recipe for its test split, never the images.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    minival_x: torch.Tensor
    minival_y: torch.Tensor
    num_classes: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = True
    crop_fraction: float = 0.125
    test_reader: TestReader | None = field(default=None, repr=False)
    classes: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("minival", self.minival_x, self.minival_y)):
            check_images(x, y, f"{self.name} {split}", self.num_classes, self.in_chans)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def source(self, split: str, device: torch.device | str = "cpu") -> "ImageSource":
        """The split (``train``, ``minival`` or ``test``) as the trainer reads it: an
        :class:`~nas.data.sources.ImageSource` on ``device``. A dataset stored differently (a
        memory-mapped file) overrides this and nothing else in the trainer changes."""
        if split == "train":
            return TensorSource(self.train_x, self.train_y, device)
        if split == "minival":
            return TensorSource(self.minival_x, self.minival_y, device)
        if split == "test":
            return TensorSource(*self.test(), device)
        raise ValueError(f"unknown split {split!r}; valid: train, minival, test")

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out test split, read on request (it is never part of a search)."""
        if self.test_reader is None:
            raise DataError(f"dataset {self.name!r} has no test split")
        x, y = self.test_reader()
        check_images(x, y, f"{self.name} test", self.num_classes, self.in_chans)
        return x, y

    def __repr__(self) -> str:
        h, w = self.image_size
        return (f"Dataset({self.name!r}: train {len(self.train_y)}, minival {len(self.minival_y)}, "
                f"{self.in_chans}x{h}x{w}, {self.num_classes} classes)")


def check_images(x: torch.Tensor, y: torch.Tensor, what: str, num_classes: int, in_chans: int) -> None:
    """Readers build these tensors themselves; a mismatch here is a bug in a reader, not user input."""
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(f"{what}: images must be uint8 (N, {in_chans}, H, W), got {x.dtype} {tuple(x.shape)}")
    if y.dtype != torch.int64 or y.shape != (x.shape[0],):
        raise ValueError(f"{what}: labels must be int64 ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")


def channel_stats(x: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the [0, 1] scale, in chunks (float64 sums)."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].to(torch.float64).div_(255.0)
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.pow(2).sum(dim=(0, 2, 3))
    return stats_from_sums(total, total_sq, x.shape[0] * x.shape[2] * x.shape[3])


def stats_from_sums(total: torch.Tensor, total_sq: torch.Tensor,
                    count: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std from the float64 sums of values and of squared values (on the [0, 1]
    scale) over ``count`` pixels per channel; std is kept >= 1e-3 so normalization never divides by ~0."""
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(float(v) for v in mean), tuple(max(float(v), 1e-3) for v in std)


def split_minival(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified hold-out: about ``fraction`` of every class goes to minival.

    Stratification keeps the class balance of a small minival (digits: 360 images) equal to the
    training set's, so that a candidate's accuracy does not depend on which classes the seed drew.
    Returns sorted (train_indices, minival_indices).
    """
    rng = np.random.default_rng(seed)
    train_idx, minival_idx = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        k = int(round(fraction * len(members)))
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0
        minival_idx.append(members[:k])
        train_idx.append(members[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(minival_idx))


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Exactly ``n`` indices of ``labels``, seeded, every class in proportion (largest remainders
    round the shares to whole images, so ``--train-subset 500`` is 500 images, not 501).

    Each class's members are drawn as :func:`split_minival` draws them (one permutation per class,
    in class order, from ``default_rng(seed)``), so where the shares are whole numbers the subset is
    the one a hold-out of that fraction would give. Returns sorted indices.
    """
    classes, counts = np.unique(labels, return_counts=True)
    shares = n * counts / counts.sum()
    quotas = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - quotas), kind="stable")[: n - int(quotas.sum())]:
        quotas[i] += 1
    rng = np.random.default_rng(seed)
    kept = []
    for cls, quota in zip(classes, np.minimum(quotas, counts)):
        members = np.flatnonzero(labels == cls)
        kept.append(members[rng.permutation(len(members))][:quota])
    return np.sort(np.concatenate(kept))


__all__ = ["Dataset", "channel_stats", "check_images", "split_minival", "stats_from_sums", "stratified_subset"]
