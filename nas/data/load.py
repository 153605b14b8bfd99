"""Reading a named dataset into memory (or through its data cache) with its seeded minival split."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from nas.data.base import Dataset, channel_stats, split_minival, stratified_subset
from nas.data.mapped import open_cached_dataset
from nas.data.registry import DATASETS
from nas.errors import DataError


def _match_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    if x.shape[1] == in_chans:
        return x
    if x.shape[1] == 1 and in_chans == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if x.shape[1] == 3 and in_chans == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise DataError(f"test images have {x.shape[1]} channels, the training images {in_chans}")


def _read_test(source_name: str, data_dir: str | None, in_chans: int, options: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _, _ = DATASETS[source_name].read(Path(data_dir) if data_dir else None, "test", **dict(options))
    return _match_channels(x, in_chans), y


def load_dataset(name: str, data_dir: str | Path | None = None, *, seed: int = 0,
                 minival_fraction: float | None = None, image_size: int | None = None,
                 cache_dir: str | Path | None = None, resolution: int | None = None,
                 rebuild_cache: bool = False, train_subset: int | None = None) -> Dataset:
    """Read a dataset's training split and hold out a seeded, stratified minival split from it.

    ``minival_fraction`` defaults to the dataset's (0.2 for the small digits set, 0.1 otherwise).
    ``image_size`` applies to ``imagefolder`` only (the square size images are decoded at).

    With ``cache_dir`` the images are not held in memory: the splits are decoded once into
    memory-mapped files at ``resolution`` px in that folder (built when missing; rebuilt when they
    hold another dataset, resolution or source only with ``rebuild_cache``) and the result is a
    :class:`~nas.data.mapped.MappedDataset` with the same rows, split and statistics.

    ``train_subset`` keeps that many training images (a seeded, stratified draw, made after the
    minival split, so minival is the same with or without it): quick experiments and benchmarks
    on a documented part of a large dataset. Not available with a data cache.
    """
    source = DATASETS[name]
    if source.needs_dir and data_dir is None:
        raise DataError(f"dataset {name!r} needs --data-dir (the folder holding its files)")
    fraction = source.minival_fraction if minival_fraction is None else minival_fraction
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise DataError(f"minival fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    options: dict = {}
    if image_size is not None:
        if name != "imagefolder":
            raise DataError(f"image_size applies to the imagefolder dataset only, not {name!r}")
        if not (isinstance(image_size, int) and 8 <= image_size <= 1024):
            raise DataError(f"image_size must be an integer between 8 and 1024, got {image_size!r}")
        options["image_size"] = image_size
    path = Path(data_dir).expanduser() if data_dir is not None else None
    if path is not None and not path.exists():
        raise DataError(f"{path}: data folder not found")
    if train_subset is not None and not (isinstance(train_subset, int) and not isinstance(train_subset, bool)
                                         and train_subset >= 2):
        raise DataError(f"train_subset must be an integer >= 2, got {train_subset!r}", field="train_subset")
    if cache_dir is not None:
        if train_subset is not None:
            raise DataError("train_subset is not available with a data cache", field="train_subset")
        if resolution is None:
            raise DataError("resolution is needed with a data cache (the images are stored at it)", field="resolution")
        return open_cached_dataset(name, path, cache_dir, resolution, seed=seed, minival_fraction=minival_fraction,
                                   image_size=image_size, rebuild_cache=rebuild_cache)
    x, y, num_classes, classes = source.read(path, "train", **options)
    if len(y) < 2:
        raise DataError(f"{path}: only {len(y)} training image(s); need at least 2 for a minival split")
    train_idx, minival_idx = split_minival(y.numpy(), fraction, seed)
    if train_subset is not None:
        if train_subset >= len(train_idx):
            raise DataError(f"train_subset {train_subset} is not below the {len(train_idx)} training images",
                            field="train_subset")
        train_idx = train_idx[stratified_subset(y.numpy()[train_idx], train_subset, seed + 1)]
    train_idx_t, minival_idx_t = torch.from_numpy(train_idx), torch.from_numpy(minival_idx)
    train_x = x[train_idx_t].contiguous()
    mean, std = channel_stats(train_x)
    reader = functools.partial(_read_test, name, str(path) if path is not None else None, int(x.shape[1]),
                               tuple(sorted(options.items())))
    return Dataset(name=name, train_x=train_x, train_y=y[train_idx_t].contiguous(),
                   minival_x=x[minival_idx_t].contiguous(), minival_y=y[minival_idx_t].contiguous(),
                   num_classes=num_classes, in_chans=int(x.shape[1]), mean=mean, std=std, hflip=source.hflip,
                   crop_fraction=source.crop_fraction,
                   test_reader=reader, classes=classes, seed=seed)


__all__ = ["load_dataset"]
