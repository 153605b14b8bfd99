"""Dataset readers, splits and on-device augmentation, on real and deliberately broken files."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import DATASETS, load_dataset
from nas.data.cifar import load_batch
from nas.errors import DataError



# ------------------------------------------------------------------------------------------ digits
def test_digits_read_from_the_bundled_file_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    from nas.data.digits import bundled_file, digits_arrays

    assert bundled_file() is not None  # else every process pays scikit-learn's 1-2 s import to read them
    images, labels = digits_arrays()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(labels, bunch.target)


def test_digits_split_is_seeded_stratified_and_disjoint_from_test():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape[1:] == (1, 8, 8)
    assert a.num_classes == 10 and a.in_chans == 1 and a.hflip is False
    assert torch.equal(a.minival_y, b.minival_y) and torch.equal(a.minival_x, b.minival_x)
    assert not torch.equal(a.minival_x, c.minival_x)
    counts = torch.bincount(a.minival_y, minlength=10)
    assert counts.max() - counts.min() <= 1  # stratified
    test_x, _ = a.test()
    assert len(a.train_y) + len(a.minival_y) + len(test_x) == 1797
    flat = {bytes(img.numpy()) for img in torch.cat([a.train_x, a.minival_x])}
    overlap = sum(bytes(img.numpy()) in flat for img in test_x)
    assert overlap < 10  # a handful of digit images are exact duplicates in the source data


def test_unknown_dataset_and_missing_dir():
    with pytest.raises(DataError, match="unknown dataset 'svhn'; valid: .*cifar10.*digits"):
        load_dataset("svhn")
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="data folder not found"):
        load_dataset("mnist", "/nonexistent/folder")
    assert set(DATASETS) >= {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}


# --------------------------------------------------------------------------------------------- IDX
def _idx_images(n: int, rows: int = 28, magic: int = 0x803) -> bytes:
    rng = np.random.default_rng(0)
    return struct.pack(">IIII", magic, n, rows, 28) + rng.integers(0, 256, n * rows * 28, dtype=np.uint8).tobytes()


def _idx_labels(n: int, magic: int = 0x801, top: int = 10) -> bytes:
    return struct.pack(">II", magic, n) + (np.arange(n) % top).astype(np.uint8).tobytes()


def _write_idx(folder: Path, images: bytes, labels: bytes, split: str = "train") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


def test_idx_valid_files_load(tmp_path):
    _write_idx(tmp_path, _idx_images(50), _idx_labels(50))
    _write_idx(tmp_path, _idx_images(20), _idx_labels(20), "test")
    data = load_dataset("mnist", tmp_path, minival_fraction=0.2)
    assert len(data.train_y) == 40 and len(data.minival_y) == 10
    assert data.train_x.shape[1:] == (1, 28, 28)
    x, y = data.test()
    assert x.shape == (20, 1, 28, 28) and y.dtype == torch.int64


@pytest.mark.parametrize("case, pattern", [
    ("wrong_magic", r"train-images-idx3-ubyte.gz: wrong magic number 0x00000801, expected 0x00000803"),
    ("truncated_data", r"train-images-idx3-ubyte.gz: truncated: .* header promises 39200"),
    ("truncated_header", r"train-labels-idx1-ubyte.gz: truncated header"),
    ("truncated_gzip", r"train-images-idx3-ubyte.gz: not a complete gzip file"),
    ("not_gzip", r"train-images-idx3-ubyte.gz: not a complete gzip file"),
    ("count_mismatch", r"train-labels-idx1-ubyte.gz: 49 labels for the 50 images"),
    ("label_range", r"train-labels-idx1-ubyte.gz: label 11 outside 0..9"),
    ("wrong_shape", r"train-images-idx3-ubyte.gz: images of 32x28, expected 28x28"),
    ("trailing", r"train-images-idx3-ubyte.gz: 7 trailing bytes"),
    ("missing", r"train-labels-idx1-ubyte.gz: file not found"),
])
def test_idx_broken_files(tmp_path, case, pattern):
    images, labels = _idx_images(50), _idx_labels(50)
    if case == "wrong_magic":
        images = _idx_images(50, magic=0x801)
    elif case == "truncated_data":
        images = images[:-100]
    elif case == "truncated_header":
        labels = labels[:6]
    elif case == "count_mismatch":
        labels = _idx_labels(49)
    elif case == "label_range":
        labels = _idx_labels(50, top=12)
    elif case == "wrong_shape":
        images = _idx_images(50, rows=32)
    elif case == "trailing":
        images = images + b"\0" * 7
    _write_idx(tmp_path, images, labels)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    if case == "truncated_gzip":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    elif case == "not_gzip":
        target.write_bytes(b"this is not gzip data at all")
    elif case == "missing":
        (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=pattern):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets(name, shared_data):
    folder = shared_data(name)
    data = load_dataset(name, folder, seed=3)
    assert len(data.train_y) + len(data.minival_y) == 60000 and abs(len(data.minival_y) - 6000) <= 5
    ratio = torch.bincount(data.minival_y) / (torch.bincount(data.minival_y) + torch.bincount(data.train_y))
    assert bool(((ratio - 0.1).abs() < 0.001).all())  # stratified: a tenth of every class
    assert data.hflip is (name == "fashion-mnist")
    assert 0.1 < data.mean[0] < 0.4
    x, y = data.test()
    assert x.shape == (10000, 1, 28, 28) and int(y.max()) == 9


# ------------------------------------------------------------------------------------------- CIFAR
def _cifar_batch(n: int, classes: int = 10, label_key: bytes = b"labels", protocol: int = 2) -> bytes:
    rng = np.random.default_rng(n)
    batch = {b"batch_label": b"training batch", label_key: [int(v) for v in rng.integers(0, classes, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    return pickle.dumps(batch, protocol=protocol)


def _write_cifar10(folder: Path, n: int = 12, protocol: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(n, protocol=protocol))
    (folder / "test_batch").write_bytes(_cifar_batch(n, protocol=protocol))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_valid_batches(tmp_path, protocol):
    _write_cifar10(tmp_path / "cifar-10-batches-py", protocol=protocol)
    data = load_dataset("cifar10", tmp_path, minival_fraction=0.2)
    assert data.train_x.shape[1:] == (3, 32, 32) and data.in_chans == 3
    assert len(data.train_y) + len(data.minival_y) == 60
    assert data.classes[0] == "airplane"
    assert data.test()[0].shape == (12, 3, 32, 32)


def test_cifar100_valid_batches(tmp_path):
    (tmp_path / "train").write_bytes(_cifar_batch(40, 100, b"fine_labels"))
    (tmp_path / "test").write_bytes(_cifar_batch(10, 100, b"fine_labels"))
    data = load_dataset("cifar100", tmp_path)
    assert data.num_classes == 100 and len(data.train_y) + len(data.minival_y) == 40


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_batch_that_executes_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    evil = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": _Exploit(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3: refused: global (posix|os)\.system is not allowed"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()
    # An object array could carry any object inside it: refused too.
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, protocol=2))
    with pytest.raises(DataError, match="refused: object arrays are not allowed"):
        load_batch(folder / "data_batch_3")


@pytest.mark.parametrize("case, pattern", [
    ("missing", r"data_batch_1: file not found \(expected the cifar10 python-version batches"),
    ("missing_later", r"data_batch_4: file not found"),
    ("truncated", r"data_batch_2: not a complete CIFAR python-version batch"),
    ("garbage", r"data_batch_2: (not a complete CIFAR|refused)"),
    ("wrong_shape", r"data_batch_2: 'data' must be a uint8 array of shape \(N, 3072\), got \(4, 100\)"),
    ("label_count", r"data_batch_2: 3 labels for 4 images"),
    ("label_range", r"data_batch_2: label 10 outside 0..9"),
    ("not_dict", r"data_batch_2: expected a dict, found list"),
    ("missing_key", r"data_batch_2: missing key 'labels'"),
])
def test_cifar_broken_batches(tmp_path, case, pattern):
    _write_cifar10(tmp_path)
    bad = tmp_path / "data_batch_2"
    if case == "missing":
        for f in tmp_path.iterdir():
            f.unlink()
    elif case == "missing_later":
        (tmp_path / "data_batch_4").unlink()
    elif case == "truncated":
        bad.write_bytes(bad.read_bytes()[:500])
    elif case == "garbage":
        bad.write_bytes(b"\x80\x02garbage that is not a pickle")
    elif case == "wrong_shape":
        bad.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    elif case == "label_count":
        bad.write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}))
    elif case == "label_range":
        bad.write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}))
    elif case == "not_dict":
        bad.write_bytes(pickle.dumps([1, 2, 3]))
    elif case == "missing_key":
        bad.write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8)}))
    with pytest.raises(DataError, match=pattern):
        load_dataset("cifar10", tmp_path)


# -------------------------------------------------------------------------------------- imagefolder
def _write_images(root: Path, classes: dict[str, int], mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image, ignored")


def test_imagefolder_train_test_layout(tmp_path):
    _write_images(tmp_path / "train", {"cat": 6, "dog": 5})
    _write_images(tmp_path / "val", {"cat": 2, "dog": 2})
    data = load_dataset("imagefolder", tmp_path, image_size=16, minival_fraction=0.2)
    assert data.classes == ("cat", "dog") and data.in_chans == 3
    assert data.train_x.shape[1:] == (3, 16, 16) and len(data.train_y) + len(data.minival_y) == 11
    x, y = data.test()
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]


def test_imagefolder_gray_and_errors(tmp_path):
    _write_images(tmp_path / "a", {"zero": 4, "one": 4}, mode="L")
    data = load_dataset("imagefolder", tmp_path / "a", image_size=12)
    assert data.in_chans == 1
    with pytest.raises(DataError, match="has no test split|no test split"):
        data.test()
    (tmp_path / "a" / "one" / "9.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"one/9.png: cannot decode image"):
        load_dataset("imagefolder", tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("imagefolder", tmp_path / "empty")
    (tmp_path / "empty" / "x").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_dataset("imagefolder", tmp_path / "empty")
