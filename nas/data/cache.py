"""The data cache: a dataset decoded once into uint8 files that every worker memory-maps.

Why: the in-memory readers hold a whole split as one tensor in every worker, which caps the data a
search can use (an ImageNet-sized proxy does not fit, even at 64 px). Here a split is decoded once,
at the proxy resolution, into a file; each worker maps it read-only, so the workers of a node share
one copy through the page cache and read only the rows of their batches.

A cache folder (``--data-cache DIR``) holds one file per split of the source, ``train.nasdata`` and
``test.nasdata`` (written the first time the test split is asked for); the minival split is carved
out of the training file when it is opened, with the same seeded split as in memory. A file is::

    [0, 4096)            preamble: MAGIC, then the header's offset and length (little-endian uint64)
    [4096, +N*C*R*R)     images, uint8 (N, C, R, R) C-contiguous, page aligned so that it maps as is
    8-aligned            labels, int64 (N,)
    then                 row sums, int64 (N, C, 2): per image and channel, the sum of its pixel values
                         and of their squares *at the source's own size* (normalization statistics
                         of any subset of rows, identical to the in-memory dataset's, without a pass
                         over the images)
    then                 the header, JSON (:class:`CacheHeader`): dataset, split, resolution, reader
                         options, shape, dtypes, offsets, classes, and a fingerprint of the source

The header comes last because the images are streamed in as they are decoded (``imagefolder`` with
any number of files decodes a chunk at a time into the mapped file). A file is built under a
temporary name in the folder and moved into place with ``os.replace`` once complete, under a lock
(``DIR/.lock``) so that workers starting together build it once. A file whose header names another
dataset, resolution, reader option or source fingerprint is refused with one line, unless the
caller allows a rebuild (``rebuild_cache``; ``--rebuild-cache`` on the command line).

The source fingerprint is a SHA-256 of every source file's relative path, size and modification
time (reading 100,000 files' contents at every open would defeat the cache), or of the bundled
dataset's package version for ``digits``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from nas.errors import DataError

MAGIC = b"NASDATA\x00"
FORMAT = 1
DATA_OFFSET = 4096
SUFFIX = ".nasdata"
SPLITS = ("train", "test")
CHUNK = 1024  # images decoded, resized and written at a time


@dataclass(frozen=True)
class CacheHeader:
    """What a cache file holds and what it was built from (stored as JSON at the file's end)."""

    dataset: str
    split: str
    resolution: int
    options: Mapping[str, Any]  # reader options (imagefolder: image_size)
    source: str  # fingerprint of the source files (see the module docstring)
    shape: tuple[int, int, int, int]  # (N, C, R, R)
    source_size: tuple[int, int]  # (H, W) the images had before resizing; the row sums are at this size
    num_classes: int
    classes: tuple[str, ...]
    labels_offset: int
    row_sums_offset: int
    dtype: str = "uint8"
    labels_dtype: str = "int64"
    format: int = FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["options"], data["extra"] = dict(self.options), dict(self.extra)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CacheHeader":
        data = json.loads(raw)
        data["shape"] = tuple(data["shape"])
        data["source_size"] = tuple(data["source_size"])
        data["classes"] = tuple(data["classes"])
        return cls(**data)

    def describe(self) -> str:
        options = "".join(f", {k} {v}" for k, v in sorted(self.options.items()))
        return f"{self.dataset} at {self.resolution} px{options}"


@dataclass(frozen=True)
class CacheFile:
    """One split's file, mapped read-only: ``images`` is a ``numpy.memmap`` (nothing is read until
    rows are indexed); labels and row sums are small and read into memory."""

    path: Path
    header: CacheHeader
    images: np.ndarray
    labels: np.ndarray
    row_sums: np.ndarray  # int64 (N, C, 2)


# ------------------------------------------------------------------------------ fingerprints
def source_fingerprint(name: str, data_dir: Path | None, exclude: Path | None = None) -> str:
    """SHA-256 of the source's files (relative path, size, mtime), skipping ``exclude`` (a cache
    folder kept inside the data folder)."""
    digest = hashlib.sha256(f"{name}\n".encode())
    if data_dir is None:
        try:
            digest.update(f"scikit-learn {version('scikit-learn')}".encode())
        except PackageNotFoundError:
            digest.update(b"bundled")
        return digest.hexdigest()
    skip = exclude.resolve() if exclude is not None else None
    for relpath, size, mtime in _walk(data_dir.resolve(), "", skip):
        digest.update(f"{relpath}\t{size}\t{mtime}\n".encode())
    return digest.hexdigest()


def _walk(folder: Path, prefix: str, skip: Path | None) -> Iterator[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``folder``, depth first in name order,
    holding one folder's entries at a time (a folder of 100,000 images costs a few MB, not more)."""
    if skip is not None and folder == skip:
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the data folder ({exc.strerror})") from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            yield from _walk(Path(entry.path), f"{prefix}{entry.name}/", skip)
        elif entry.is_file(follow_symlinks=True):
            stat = entry.stat(follow_symlinks=True)
            yield f"{prefix}{entry.name}", stat.st_size, stat.st_mtime_ns


# ------------------------------------------------------------------------------------ reading
def split_path(cache_dir: Path, split: str) -> Path:
    return Path(cache_dir) / f"{split}{SUFFIX}"


def read_header(path: Path) -> CacheHeader:
    """The header of a cache file; :class:`DataError` (field ``data_cache``) for a damaged one."""
    try:
        with open(path, "rb") as handle:
            preamble = handle.read(24)
            if len(preamble) < 24 or preamble[:8] != MAGIC:
                raise DataError(f"data_cache {path}: not a data cache file", field="data_cache")
            offset = int.from_bytes(preamble[8:16], "little")
            length = int.from_bytes(preamble[16:24], "little")
            handle.seek(offset)
            raw = handle.read(length)
        if len(raw) != length:
            raise DataError(f"data_cache {path}: truncated file", field="data_cache")
        header = CacheHeader.from_json(raw)
    except OSError as exc:
        raise DataError(f"data_cache {path}: cannot read ({exc.strerror})", field="data_cache") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"data_cache {path}: damaged header ({exc})", field="data_cache") from None
    if header.format != FORMAT:
        raise DataError(f"data_cache {path}: format {header.format}, this toolkit reads {FORMAT}", field="data_cache")
    return header


def map_file(path: Path, header: CacheHeader | None = None) -> CacheFile:
    """Map a cache file read-only (the images stay on disk / in the page cache)."""
    header = header or read_header(path)
    n, c, h, w = header.shape
    images = np.memmap(path, dtype=np.uint8, mode="r", offset=DATA_OFFSET, shape=(n, c, h, w))
    labels = np.fromfile(path, dtype=np.int64, count=n, offset=header.labels_offset)
    row_sums = np.fromfile(path, dtype=np.int64, count=n * c * 2, offset=header.row_sums_offset).reshape(n, c, 2)
    if len(labels) != n or row_sums.shape[0] != n:
        raise DataError(f"data_cache {path}: truncated file", field="data_cache")
    return CacheFile(path, header, images, labels, row_sums)


# ----------------------------------------------------------------------------------- building
@contextmanager
def build_lock(cache_dir: Path) -> Iterator[None]:
    """Held while a cache file is checked and built: workers starting together build it once."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle = open(cache_dir / ".lock", "a+")
    except OSError as exc:
        raise DataError(f"data_cache {cache_dir}: cannot create the cache folder ({exc.strerror})",
                        field="data_cache") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_file(path: Path, count: int, channels: int, resolution: int,
               chunks: Iterable[tuple[np.ndarray, np.ndarray]], header_fields: Mapping[str, Any]) -> CacheHeader:
    """Write ``count`` images streamed as ``(images, labels)`` chunks into a cache file at ``path``,
    atomically. Chunks hold uint8 (n, c, H, W) images at the source size, ``c`` 1 or ``channels``;
    they are resized to ``resolution`` here. With ``channels`` 3 and every chunk gray, the file is
    compacted to one channel at the end (the ``imagefolder`` rule: gray only if every image is).

    Written with plain positioned writes, not through a mapping: the pages go to the page cache
    and never count in this process's memory, which stays at a few chunks.
    """
    import torch  # torch: imported when used, not at module import

    from nas.data.augment import resize_images  # torch: imported when used, not at module import

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "r+b") as handle:
            row = channels * resolution * resolution
            labels = np.empty(count, dtype=np.int64)
            row_sums = np.empty((count, channels, 2), dtype=np.int64)
            position, all_gray, source_size = 0, True, None
            for x, y in chunks:
                n = len(x)
                if position + n > count:
                    raise DataError(f"data_cache: the source changed while it was read (more than {count} images)",
                                    field="data_cache")
                all_gray = all_gray and x.shape[1] == 1
                source_size = source_size or (int(x.shape[2]), int(x.shape[3]))
                flat = x.reshape(n, x.shape[1], -1)  # sums before a gray chunk is repeated to RGB (equal channels)
                row_sums[position:position + n, :, 0] = flat.sum(axis=2, dtype=np.int64)
                row_sums[position:position + n, :, 1] = np.square(flat, dtype=np.uint16).sum(axis=2, dtype=np.int64)
                resized = resize_images(torch.from_numpy(np.ascontiguousarray(x)), resolution).numpy()
                if resized.shape[1] != channels:
                    resized = np.repeat(resized, channels, axis=1)
                os.pwrite(handle.fileno(), np.ascontiguousarray(resized), DATA_OFFSET + position * row)
                labels[position:position + n] = y
                position += n
            if position != count:
                raise DataError(f"data_cache: the source changed while it was read ({position} of {count} images)",
                                field="data_cache")
            if channels == 3 and all_gray and count:
                _compact_to_gray(handle.fileno(), count, resolution)
                channels, row_sums = 1, np.ascontiguousarray(row_sums[:, :1])
            labels_offset = _align(DATA_OFFSET + count * channels * resolution * resolution, 8)
            row_sums_offset = labels_offset + labels.nbytes
            header = CacheHeader(shape=(count, channels, resolution, resolution), resolution=resolution,
                                 source_size=source_size or (resolution, resolution), labels_offset=labels_offset,
                                 row_sums_offset=row_sums_offset, **header_fields)
            raw = header.to_json()
            handle.seek(labels_offset)
            handle.write(labels.tobytes())
            handle.write(row_sums.tobytes())
            header_offset = handle.tell()
            handle.write(raw)
            handle.truncate()
            handle.seek(0)
            handle.write(MAGIC + header_offset.to_bytes(8, "little") + len(raw).to_bytes(8, "little"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return header
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _compact_to_gray(fd: int, count: int, resolution: int) -> None:
    """Keep channel 0 of a 3-channel image block, moving rows forward in place (row i's new place
    never lies after its old one, so a forward pass never overwrites a row it still has to read)."""
    plane = resolution * resolution
    step = max(1, (4 << 20) // (3 * plane))
    for start in range(0, count, step):
        n = min(step, count - start)
        raw = os.pread(fd, n * 3 * plane, DATA_OFFSET + start * 3 * plane)
        rgb = np.frombuffer(raw, dtype=np.uint8).reshape(n, 3, plane)
        os.pwrite(fd, np.ascontiguousarray(rgb[:, 0]).tobytes(), DATA_OFFSET + start * plane)


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def chunked(x: Any, y: Any, size: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An in-memory split (tensors or arrays) as the chunks :func:`write_file` takes."""
    for start in range(0, len(y), size):
        yield np.asarray(x[start:start + size]), np.asarray(y[start:start + size])


__all__ = ["CHUNK", "CacheFile", "CacheHeader", "DATA_OFFSET", "FORMAT", "MAGIC", "SPLITS", "SUFFIX", "build_lock",
           "chunked", "map_file", "read_header", "source_fingerprint", "split_path", "write_file"]
