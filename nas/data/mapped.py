"""A :class:`~nas.data.base.Dataset` whose images stay in the data cache's memory-mapped files.

:func:`open_cached_dataset` is ``load_dataset`` for data larger than memory: it builds the cache
files it needs (nas/data/cache.py) and returns a :class:`MappedDataset`, which the trainer reads a
batch at a time through :meth:`MappedDataset.source` (an ``ImageSource``: ``batch(index,
resolution)``). A batch reads only its rows, sorted for the page cache; labels, split indices and
normalization statistics are small and held in memory.

It is the same data as ``load_dataset`` gives, row for row: the training file keeps the source's
order, the minival split is carved out of it with the same seeded :func:`split_minival`, the images
are resized to the cache's resolution with the same :func:`resize_images`, and the mean and std
come from per-image sums at the source's size (so they equal ``channel_stats`` of the in-memory
training split). Asked for another resolution, a batch is resized from the cached one.

A ``MappedDataset`` pickles as the arguments that open it, so a Ray worker receives a few bytes and
maps the files itself (sharing them through the page cache with the other workers of its node);
a worker on a node without the files builds them there, once per node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.augment import resize_images
from nas.data.base import Dataset, split_minival, stats_from_sums
from nas.data.cache import (
    CHUNK,
    CacheFile,
    build_lock,
    map_file,
    read_header,
    source_fingerprint,
    split_path,
    write_file,
)
from nas.data.registry import DATASETS
from nas.errors import DataError


class MappedSource:
    """An ``ImageSource`` over rows of a cache file: ``batch(index, resolution)`` reads those rows.

    ``rows`` maps the source's positions to file rows (the training or minival split of the training
    file); None means the whole file in order.
    """

    def __init__(self, file: CacheFile, rows: np.ndarray | None, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._images = file.images
        self._rows = rows
        self.resolution = int(file.header.resolution)
        labels = file.labels if rows is None else file.labels[rows]
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The images at ``positions`` of this split as uint8 (n, C, R, R), read in file order."""
        rows = positions if self._rows is None else self._rows[positions]
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            return np.array(self._images[rows[0]:rows[-1] + 1])  # a contiguous run (evaluation): one read
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self._images.shape[1:]), dtype=np.uint8)
        out[order] = self._images[rows[order]]
        return out

    def batch(self, index: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (len(index), C, R, R) and int64 labels on the device, in ``index`` order."""
        positions = index.detach().to("cpu", torch.int64).numpy()
        images = torch.from_numpy(self.rows(positions)).to(self.device)
        if resolution != self.resolution:
            images = resize_images(images, resolution)
        return images, self.labels[index.to(self.device)]


class MappedDataset(Dataset):
    """The dataset of a data cache; see the module docstring.

    ``train_x`` / ``minival_x`` / ``test()`` still work (code written for in-memory datasets), but
    they read the whole split into memory: the trainer uses :meth:`source` instead.
    """

    def __init__(self, train: CacheFile, train_rows: np.ndarray, minival_rows: np.ndarray, *,
                 opener: dict[str, Any], **fields: Any) -> None:
        # Dataset is a frozen dataclass whose image fields are tensors; here they are properties.
        for key, value in {**fields, "test_reader": None}.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_train", train)
        object.__setattr__(self, "_rows", {"train": train_rows, "minival": minival_rows})
        object.__setattr__(self, "_opener", opener)

    @property
    def cache_dir(self) -> Path:
        return Path(self._opener["cache_dir"])

    @property
    def resolution(self) -> int:
        return int(self._train.header.resolution)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.resolution, self.resolution

    def source(self, split: str, device: torch.device | str = "cpu") -> MappedSource:
        """The split (``train``, ``minival`` or ``test``) as the trainer reads it, a batch at a time."""
        if split in self._rows:
            return MappedSource(self._train, self._rows[split], device)
        if split == "test":
            return MappedSource(self._test_file(), None, device)
        raise ValueError(f"unknown split {split!r}; valid: train, minival, test")

    def _test_file(self) -> CacheFile:
        opener = dict(self._opener)
        return ensure_split(split="test", **{k: opener[k] for k in ("cache_dir", "name", "data_dir", "resolution",
                                                                     "image_size", "rebuild_cache")})

    def _whole(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.source(split)
        return torch.from_numpy(source.rows(np.arange(len(source)))), source.labels

    train_x = property(lambda self: self._whole("train")[0])
    train_y = property(lambda self: self._whole("train")[1])
    minival_x = property(lambda self: self._whole("minival")[0])
    minival_y = property(lambda self: self._whole("minival")[1])

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._whole("test")

    def __reduce__(self) -> tuple:
        return _reopen, (self._opener,)

    def __repr__(self) -> str:
        r = self.resolution
        return (f"MappedDataset({self.name!r}: train {len(self._rows['train'])}, minival {len(self._rows['minival'])}, "
                f"{self.in_chans}x{r}x{r}, {self.num_classes} classes, cache {self.cache_dir})")


def _reopen(opener: dict[str, Any]) -> MappedDataset:
    return open_cached_dataset(**opener)


# --------------------------------------------------------------------------------- opening
def _expected(name: str, split: str, resolution: int, options: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    return {"dataset": name, "split": split, "resolution": resolution, "options": options, "source": fingerprint}


def _mismatch(path: Path, expected: dict[str, Any], data_dir: Path | None) -> str | None:
    """None when ``path`` is a cache of exactly ``expected``; else what is wrong, in words."""
    if not path.exists():
        return "missing"
    try:
        header = read_header(path)
    except DataError as exc:
        return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
    found = {"dataset": header.dataset, "split": header.split, "resolution": header.resolution,
             "options": dict(header.options), "source": header.source}
    if found == expected:
        return None
    if {k: v for k, v in found.items() if k != "source"} != {k: v for k, v in expected.items() if k != "source"}:
        wanted = f"{expected['dataset']} at {expected['resolution']} px" + "".join(
            f", {k} {v}" for k, v in sorted(expected["options"].items()))
        return f"it holds {header.describe()}, not {wanted}"
    where = f" in {data_dir}" if data_dir is not None else ""
    return f"the {header.dataset} source files{where} changed since it was built"


def ensure_split(*, cache_dir: str | Path, name: str, data_dir: str | Path | None, split: str, resolution: int,
                 image_size: int | None = None, rebuild_cache: bool = False,
                 fingerprint: str | None = None) -> CacheFile:
    """The cache file of ``split``, built first when it is missing (or, with ``rebuild_cache``, when
    it holds another dataset, resolution or an older source); :class:`DataError` otherwise."""
    cache_dir = Path(cache_dir).expanduser()
    source_dir = Path(data_dir).expanduser() if data_dir is not None else None
    options = {"image_size": image_size} if image_size is not None else {}
    fingerprint = fingerprint or source_fingerprint(name, source_dir, exclude=cache_dir)
    expected = _expected(name, split, resolution, options, fingerprint)
    path = split_path(cache_dir, split)
    if _mismatch(path, expected, source_dir) is None:
        return map_file(path)
    with build_lock(cache_dir):
        problem = _mismatch(path, expected, source_dir)  # another process may have built it meanwhile
        if problem is not None:
            if problem != "missing" and not rebuild_cache:
                raise DataError(f"rebuild_cache needed: data cache {cache_dir}: {problem}", field="rebuild_cache")
            count, channels, num_classes, classes, chunks = DATASETS[name].stream(source_dir, split, CHUNK, **options)
            write_file(path, count, channels, resolution, chunks,
                       {"dataset": name, "split": split, "options": options, "source": fingerprint,
                        "num_classes": int(num_classes), "classes": tuple(classes)})
    return map_file(path)


def open_cached_dataset(name: str, data_dir: str | Path | None, cache_dir: str | Path, resolution: int, *,
                        seed: int = 0, minival_fraction: float | None = None, image_size: int | None = None,
                        rebuild_cache: bool = False) -> MappedDataset:
    """``load_dataset`` through the data cache in ``cache_dir`` at ``resolution`` px; see the module docstring.

    The arguments are checked like ``load_dataset``'s (it calls this after its own checks).
    """
    if not (isinstance(resolution, int) and not isinstance(resolution, bool) and 8 <= resolution <= 1024):
        raise DataError(f"resolution of the data cache must be an integer between 8 and 1024, got {resolution!r}",
                        field="resolution")

    source = DATASETS[name]
    fraction = source.minival_fraction if minival_fraction is None else minival_fraction
    opener = {"name": name, "data_dir": str(data_dir) if data_dir is not None else None, "cache_dir": str(cache_dir),
              "resolution": resolution, "seed": seed, "minival_fraction": minival_fraction, "image_size": image_size,
              "rebuild_cache": rebuild_cache}
    train = ensure_split(split="train", **{k: opener[k] for k in ("cache_dir", "name", "data_dir", "resolution",
                                                                   "image_size", "rebuild_cache")})
    header = train.header
    if len(train.labels) < 2:
        raise DataError(f"{data_dir}: only {len(train.labels)} training image(s); need at least 2 for a minival split")
    train_rows, minival_rows = split_minival(train.labels, fraction, seed)
    # Training-split statistics at the source's size, as channel_stats computes them in memory.
    sums = train.row_sums[train_rows].sum(axis=0).astype(np.float64)  # (C, 2), summed exactly in int64
    height, width = header.source_size
    mean, std = stats_from_sums(torch.from_numpy(sums[:, 0] / 255.0), torch.from_numpy(sums[:, 1] / 255.0 ** 2),
                                len(train_rows) * height * width)
    return MappedDataset(train, train_rows, minival_rows, opener=opener, name=name, num_classes=header.num_classes,
                         in_chans=int(header.shape[1]), mean=mean, std=std, hflip=source.hflip,
                         crop_fraction=source.crop_fraction, classes=tuple(header.classes), seed=seed)


__all__ = ["MappedDataset", "MappedSource", "ensure_split", "open_cached_dataset"]
