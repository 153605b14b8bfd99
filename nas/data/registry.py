"""The dataset registry: each name with its reader and defaults (no torch: readers load on first use)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from nas.data.cache import chunked
from nas.errors import DataError
from nas.registry import Registry


@dataclass(frozen=True)
class DatasetSource:
    """How to read one named dataset and its defaults.

    ``hflip``: horizontal flips are off for digit datasets (a flipped 2 is no digit) and on for
    natural images. Fashion-MNIST keeps them on: a mirrored shoe or shirt is still a shoe or shirt,
    and the centred, upright garments stay in distribution.
    """

    name: str
    reader: str  # module under nas.data with a read(name, data_dir, split) function
    needs_dir: bool
    hflip: bool
    minival_fraction: float
    description: str
    crop_fraction: float = 0.125

    def read(self, data_dir: Path | None, split: str, **options) -> tuple:
        return self._module().read(self.name, data_dir, split, **options)

    def stream(self, data_dir: Path | None, split: str, chunk: int, **options) -> tuple:
        """One split as ``(count, channels, num_classes, classes, chunks)``, chunks being
        ``(uint8 images, int64 labels)`` numpy pairs: decoded a chunk at a time where the reader can
        (``imagefolder``), else read whole and cut up (the other sources are small)."""
        module = self._module()
        if hasattr(module, "stream"):
            return module.stream(self.name, data_dir, split, chunk=chunk, **options)
        x, y, num_classes, classes = module.read(self.name, data_dir, split, **options)
        return len(y), int(x.shape[1]), num_classes, classes, chunked(x, y, chunk)

    def _module(self):
        return importlib.import_module(f"nas.data.{self.reader}")


DATASETS: Registry = Registry("dataset", {
    "digits": DatasetSource("digits", "digits", False, False, 0.2,
                            "scikit-learn's 8x8 handwritten digits, bundled (1,797 images)", 0.0),
    "mnist": DatasetSource("mnist", "idx", True, False, 0.1, "MNIST IDX .gz files (60k train, 10k test)", 0.0),
    "fashion-mnist": DatasetSource("fashion-mnist", "idx", True, True, 0.1,
                                   "Fashion-MNIST IDX .gz files (60k train, 10k test)", 0.0),
    "cifar10": DatasetSource("cifar10", "cifar", True, True, 0.1, "CIFAR-10 python-version batches"),
    "cifar100": DatasetSource("cifar100", "cifar", True, True, 0.1, "CIFAR-100 python-version batches"),
    "imagefolder": DatasetSource("imagefolder", "imagefolder", True, True, 0.1,
                                 "one folder of images per class (Pillow), resized once"),
}, error=DataError)


__all__ = ["DATASETS", "DatasetSource"]
