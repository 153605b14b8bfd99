"""The data cache (nas/data/cache.py, nas/data/mapped.py): the same data as in memory, row for row,
read a batch at a time from memory-mapped files; foreign, stale and damaged caches refused in one
line; atomic, locked builds; ``imagefolder`` decoded in bounded memory."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolders import write_png_folder

from nas.data import DATASETS, load_dataset
from nas.data.augment import resize_images
from nas.data.cache import DATA_OFFSET, MAGIC, map_file, read_header, split_path
from nas.data.mapped import MappedDataset
from nas.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def assert_same_rows(mapped: MappedDataset, memory, resolution: int, seed: int = 0) -> None:
    """Every split of ``mapped`` equals the in-memory dataset resized to ``resolution``, in order."""
    assert (mapped.num_classes, mapped.in_chans, mapped.classes) == (memory.num_classes, memory.in_chans,
                                                                      memory.classes)
    assert mapped.mean == pytest.approx(memory.mean, rel=1e-12) and mapped.std == pytest.approx(memory.std, rel=1e-12)
    generator = torch.Generator().manual_seed(seed)
    for split, x, y in (("train", memory.train_x, memory.train_y), ("minival", memory.minival_x, memory.minival_y)):
        source = mapped.source(split)
        assert len(source) == len(y)
        index = torch.randperm(len(y), generator=generator)[:300]
        images, labels = source.batch(index, resolution)
        assert torch.equal(images, resize_images(x[index], resolution)) and torch.equal(labels, y[index])
        everything, _ = source.batch(torch.arange(len(y)), resolution)
        assert torch.equal(everything, resize_images(x, resolution))


def test_digits_cache_equals_memory_and_pickles_small(tmp_path):
    memory = load_dataset("digits", seed=4)
    mapped = load_dataset("digits", seed=4, cache_dir=tmp_path, resolution=16)
    assert isinstance(mapped, MappedDataset) and mapped.image_size == (16, 16)
    assert_same_rows(mapped, memory, 16)
    # another resolution is resized from the cached one, batch by batch
    small, _ = mapped.source("train").batch(torch.arange(5), 8)
    assert torch.equal(small, resize_images(resize_images(memory.train_x[:5], 16), 8))
    test_x, test_y = mapped.test()
    memory_test_x, memory_test_y = memory.test()
    assert torch.equal(test_x, resize_images(memory_test_x, 16)) and torch.equal(test_y, memory_test_y)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "test.nasdata", "train.nasdata"]  # no temp file
    blob = pickle.dumps(mapped)
    assert len(blob) < 1000  # a worker gets the recipe, not the images
    again = pickle.loads(blob)
    assert torch.equal(again.source("minival").batch(torch.arange(10), 16)[0],
                       mapped.source("minival").batch(torch.arange(10), 16)[0])


def test_fashion_mnist_cache_equals_memory(fashion_dir, tmp_path):
    memory = load_dataset("fashion-mnist", fashion_dir, seed=1)
    mapped = load_dataset("fashion-mnist", fashion_dir, seed=1, cache_dir=tmp_path, resolution=32)
    assert_same_rows(mapped, memory, 32)
    header = read_header(split_path(tmp_path, "train"))
    assert header.shape == (60000, 1, 32, 32) and header.source_size == (28, 28) and header.dataset == "fashion-mnist"
    # the images are mapped, not read: nothing of the 61 MB block is in this process's memory yet
    file = map_file(split_path(tmp_path, "train"))
    assert isinstance(file.images, np.memmap) and file.images.offset == DATA_OFFSET


def test_file_layout(tmp_path):
    load_dataset("digits", cache_dir=tmp_path, resolution=12)
    path = split_path(tmp_path, "train")
    raw = path.read_bytes()
    header = read_header(path)
    assert raw[:8] == MAGIC and header.resolution == 12 and header.dtype == "uint8"
    n, c, h, w = header.shape
    assert (c, h, w) == (1, 12, 12) and header.labels_offset >= DATA_OFFSET + n * c * h * w
    assert header.labels_offset % 8 == 0 and header.row_sums_offset == header.labels_offset + 8 * n
    labels = np.frombuffer(raw, dtype=np.int64, count=n, offset=header.labels_offset)
    source_x, source_y, _, _ = DATASETS["digits"].read(None, "train")
    assert labels.tolist() == source_y.tolist()  # the source's train split, in the source's order
    images = np.frombuffer(raw, dtype=np.uint8, count=n * 144, offset=DATA_OFFSET).reshape(n, 1, 12, 12)
    assert np.array_equal(images, resize_images(source_x, 12).numpy())
    sums = np.frombuffer(raw, dtype=np.int64, count=n * 2, offset=header.row_sums_offset).reshape(n, 1, 2)
    assert np.array_equal(sums[:, 0, 0], source_x.reshape(n, -1).sum(1).numpy())  # at the source's 8x8


@pytest.mark.parametrize("change, message", [
    (dict(name="mnist"), "it holds digits at 16 px, not mnist at 16 px"),
    (dict(resolution=24), "it holds digits at 16 px, not digits at 24 px"),
])
def test_foreign_cache_is_refused_in_one_line_and_rebuilt_on_request(tmp_path, change, message):
    load_dataset("digits", cache_dir=tmp_path / "c", resolution=16)
    args = {"name": "digits", "resolution": 16, **change}
    data_dir = None
    if args["name"] == "mnist":
        data_dir = tmp_path / "mnist"
        _write_idx(data_dir)
    with pytest.raises(DataError) as error:
        load_dataset(args["name"], data_dir, cache_dir=tmp_path / "c", resolution=args["resolution"])
    assert error.value.field == "rebuild_cache"
    assert str(error.value) == f"rebuild_cache needed: data cache {tmp_path / 'c'}: {message}"
    rebuilt = load_dataset(args["name"], data_dir, cache_dir=tmp_path / "c", resolution=args["resolution"],
                           rebuild_cache=True)
    assert rebuilt.name == args["name"] and rebuilt.image_size == (args["resolution"],) * 2
    # rebuild_cache only rebuilds what does not match: a second open with it keeps the file
    before = split_path(tmp_path / "c", "train").stat().st_ino
    load_dataset(args["name"], data_dir, cache_dir=tmp_path / "c", resolution=args["resolution"], rebuild_cache=True)
    assert split_path(tmp_path / "c", "train").stat().st_ino == before


def test_stale_and_damaged_caches_are_detected(tmp_path):
    data_dir = tmp_path / "mnist"
    _write_idx(data_dir)
    cache = tmp_path / "c"
    load_dataset("mnist", data_dir, cache_dir=cache, resolution=28)
    _write_idx(data_dir, seed=1)  # new files: other sizes or times
    with pytest.raises(DataError, match=f"data cache {cache}: the mnist source files in {data_dir} changed since it "
                                        "was built") as error:
        load_dataset("mnist", data_dir, cache_dir=cache, resolution=28)
    assert error.value.field == "rebuild_cache"
    fresh = load_dataset("mnist", data_dir, cache_dir=cache, resolution=28, rebuild_cache=True)
    assert torch.equal(fresh.train_x, load_dataset("mnist", data_dir).train_x)
    path = split_path(cache, "train")
    path.write_bytes(path.read_bytes()[:-50])  # a truncated file (a disk full, a copy cut short)
    with pytest.raises(DataError, match="rebuild_cache needed: .*(truncated|damaged)"):
        load_dataset("mnist", data_dir, cache_dir=cache, resolution=28)
    path.write_bytes(b"something else entirely")
    with pytest.raises(DataError, match="rebuild_cache needed: .*not a data cache file"):
        load_dataset("mnist", data_dir, cache_dir=cache, resolution=28)
    assert load_dataset("mnist", data_dir, cache_dir=cache, resolution=28, rebuild_cache=True).num_classes == 10


def test_failed_build_leaves_nothing_and_parallel_openers_build_once(tmp_path):
    folder = tmp_path / "images"
    write_png_folder(folder, 20, mode="L")
    (folder / "c1" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="broken.png: cannot decode image"):
        load_dataset("imagefolder", folder, cache_dir=tmp_path / "c", resolution=16)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [".lock"]  # no half-written file
    (folder / "c1" / "broken.png").unlink()
    results: list = []

    def open_it() -> None:
        results.append(load_dataset("imagefolder", folder, cache_dir=tmp_path / "c", resolution=16))

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len({r._train.path.stat().st_ino for r in results}) == 1


def test_imagefolder_cache_equals_memory_gray_and_mixed(tmp_path):
    gray = tmp_path / "gray"
    write_png_folder(gray, 30, mode="L")
    assert_same_rows(load_dataset("imagefolder", gray, cache_dir=tmp_path / "cg", resolution=16),
                     load_dataset("imagefolder", gray), 16)
    assert read_header(split_path(tmp_path / "cg", "train")).shape[1] == 1  # compacted to one channel
    mixed = tmp_path / "mixed"
    write_png_folder(mixed, 30, mode="L")
    write_png_folder(mixed, 3, mode="RGB", start=100)
    mapped = load_dataset("imagefolder", mixed, cache_dir=tmp_path / "cm", resolution=20, image_size=24)
    assert mapped.in_chans == 3
    assert_same_rows(mapped, load_dataset("imagefolder", mixed, image_size=24), 20)


@pytest.mark.slow(reason="12,000 image files decoded in a subprocess whose peak memory is read")
def test_imagefolder_is_decoded_in_bounded_memory(tmp_path):
    """12,000 files decoded with 256-image chunks: the builder's peak memory grows by less than the
    49 MB the images take (reading them whole, as in memory, holds them twice; the 147 MB RGB block
    they are first written as, before the gray compaction, never enters the process). The 100,000-file case is the same code for longer:
    benchmarks/data_cache.py runs it (it costs a minute, too long for the suite)."""
    folder = tmp_path / "images"
    write_png_folder(folder, 12000, mode="L", size=8)
    script = f"""
import sys
from pathlib import Path
import nas.data.cache as cache
import nas.data.mapped as mapped
from nas.data import DATASETS, load_dataset
cache.CHUNK = mapped.CHUNK = 256  # the builder reads its own binding
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
small = Path({str(tmp_path)!r}) / "warm"
load_dataset("imagefolder", Path({str(folder)!r}) / ".." / "warmup", cache_dir=small, resolution=64, image_size=64)
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current size
base = status("VmRSS")
data = load_dataset("imagefolder", Path({str(folder)!r}), cache_dir=Path({str(tmp_path)!r}) / "c", resolution=64,
                    image_size=64)
print(status("VmHWM") - base, len(data.train_y) + len(data.minival_y))
"""
    write_png_folder(tmp_path / "warmup", 300, mode="L", size=8)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    growth, count = (int(v) for v in result.stdout.split())
    assert count == 12000
    print("GROWTH", growth / 2**20)
    assert growth < 40 * 2**20, f"peak memory grew by {growth / 2**20:.0f} MB while building"


# ---------------------------------------------------------------------------------------- helpers
def _write_idx(folder: Path, seed: int = 0, n: int = 40) -> None:
    """A small valid MNIST-format folder (train and test IDX files)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        count = n + seed  # another size when the seed differs: the fingerprint sees it even within one mtime tick
        (folder / images).write_bytes(b"\x00\x00\x08\x03" + count.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
                                      + rng.integers(0, 256, count * 28 * 28, dtype=np.uint8).tobytes())
        (folder / labels).write_bytes(b"\x00\x00\x08\x01" + count.to_bytes(4, "big")
                                      + (np.arange(count) % 10).astype(np.uint8).tobytes())


def test_a_search_config_with_a_data_cache_gives_workers_the_mapped_dataset(tmp_path):
    from types import SimpleNamespace

    from nas.data.ref import DatasetRef, cached_dataset, dataset_ref

    plain = SimpleNamespace(dataset="digits", data_dir=None, seed=2, proxy_resolution=16)
    assert dataset_ref(plain) == DatasetRef("digits", None, 2)
    cached = SimpleNamespace(**vars(plain), data_cache=tmp_path, rebuild_cache=True)
    ref = dataset_ref(cached)
    assert ref == DatasetRef("digits", None, 2, cache_dir=str(tmp_path), resolution=16, rebuild_cache=True)
    data = cached_dataset(ref)
    assert isinstance(data, MappedDataset) and data.image_size == (16, 16) and data.seed == 2


def test_training_from_the_cache_equals_training_in_memory_and_reads_batches_only(tmp_path, monkeypatch, one_thread):
    """train_candidate reads a MappedDataset through its sources (never the whole split) and gets the
    same batches as from memory, hence the same trained network on the CPU."""
    from nas.presets import preset
    from nas.scaling import scale_spec
    from nas.training import TrainBudget, train_candidate

    spec = scale_spec(preset("efficientnet-b0"), 0.25, 0.25).with_(resolution=16)
    budget = TrainBudget(steps=12, batch_size=64, seed=3)
    memory = load_dataset("digits", seed=3)
    mapped = load_dataset("digits", seed=3, cache_dir=tmp_path, resolution=16)

    def whole_split(self, split):
        raise AssertionError(f"the trainer read the whole {split} split")

    monkeypatch.setattr(MappedDataset, "_whole", whole_split)
    from_cache = train_candidate(spec, mapped, budget, "cpu")
    from_memory = train_candidate(spec, memory, budget, "cpu")
    assert from_cache.ok and from_memory.ok
    assert from_cache.history == from_memory.history and from_cache.loss == from_memory.loss
    assert from_cache.correct == from_memory.correct


# ------------------------------------------------------------------------------------ the CLI
CLI_TINY = ["--controller", "random", "--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--quiet",
            "--seed", "5", "--trials", "3"]


def test_search_with_a_data_cache_matches_the_search_in_memory(tmp_path, one_thread):
    import json

    import pandas as pd

    from nas.cli import main

    cache = tmp_path / "cache"
    assert main(["search", "--data-cache", str(cache), "--proxy-resolution", "16", "--out", str(tmp_path / "c"),
                 *CLI_TINY]) == 0
    assert main(["search", "--proxy-resolution", "16", "--out", str(tmp_path / "m"), *CLI_TINY]) == 0
    assert read_header(split_path(cache, "train")).resolution == 16
    assert json.loads((tmp_path / "c" / "run.json").read_text())["data_cache"] == str(cache)
    cached, memory = pd.read_csv(tmp_path / "c" / "trials.csv"), pd.read_csv(tmp_path / "m" / "trials.csv")
    assert list(cached.key) == list(memory.key) and list(cached.accuracy) == list(memory.accuracy)


def test_a_cache_of_another_resolution_is_one_line_until_rebuild_cache(tmp_path, capsys, one_thread):
    from nas.cli import main

    cache = tmp_path / "cache"
    load_dataset("digits", cache_dir=cache, resolution=16)
    args = ["search", "--data-cache", str(cache), "--proxy-resolution", "24", *CLI_TINY]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --rebuild-cache needed: data cache {cache}: it holds digits at 16 px, not digits at "
                   "24 px\n")
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert main([*args, "--rebuild-cache", "--out", str(tmp_path / "b")]) == 0
    assert read_header(split_path(cache, "train")).resolution == 24
