"""Where the trainer reads images from: the one seam between a dataset's storage and the loop.

The training loop and evaluation never touch a dataset's tensors. They ask an :class:`ImageSource`
for a batch by index, at a resolution::

    images, labels = source.batch(index, resolution)   # uint8 (B, C, R, R) and int64 (B,), on the device

:class:`TensorSource` implements it for images held in memory (what every reader produces today):
the whole split is copied to the device once and resized once per resolution, so a batch is one
gather. A source for data bigger than RAM (a memory-mapped uint8 file per split) implements the same
two methods: read the rows at ``index`` (sorting them helps the page cache), copy them to the device,
resize if the stored size differs from ``resolution``. The loop draws the permutation, so any
source gives the same batches for the same seed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from nas.data.augment import resize_images


@runtime_checkable
class ImageSource(Protocol):
    """Images and labels of one split, read by index at a given resolution on one device."""

    device: torch.device

    def __len__(self) -> int:
        """Number of images."""

    def batch(self, index: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (len(index), C, R, R) and int64 labels, on ``device``, in ``index`` order."""


class TensorSource:
    """An in-memory split: uint8 images and labels copied to the device once.

    Keeps one resized copy (the last resolution asked for): schedules change resolution a few times
    per run, evaluation at several resolutions visits each once.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self._resized: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def at(self, resolution: int) -> torch.Tensor:
        """The whole split at ``resolution`` (cached)."""
        if self._resized is None or self._resized[0] != resolution:
            self._resized = None  # free the previous copy before making the next
            self._resized = (resolution, resize_images(self.images, resolution))
        return self._resized[1]

    def batch(self, index: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.at(resolution)[index], self.labels[index]


def ordered_batches(source: ImageSource, batch_size: int, resolution: int):
    """Yield ``(images, labels)`` over the whole split in order (evaluation)."""
    for start in range(0, len(source), batch_size):
        index = torch.arange(start, min(start + batch_size, len(source)), device=source.device)
        yield source.batch(index, resolution)


__all__ = ["ImageSource", "TensorSource", "ordered_batches"]
