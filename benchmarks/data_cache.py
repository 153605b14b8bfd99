"""In-memory against memory-mapped data (the data cache): a training worker's images/s and memory,
and an ``imagefolder`` of 100,000+ files cached in bounded memory.

Part 1, Fashion-MNIST (the shared files). Each mode runs in a fresh worker process that loads the
data and trains the search proxy of EfficientNet-B0 (width 0.5, depth 0.5, 32 px) for ``--steps``
steps of ``--batch-size`` with ``train_candidate``, on one thread:

- ``memory``: ``load_dataset`` (every worker holds the images);
- ``mapped``: ``load_dataset(cache_dir=..., resolution=32)``, the cache built beforehand, so the
  worker only maps it and reads the rows of its batches.

Each worker reports images/s (steps x batch / training time), its peak resident set (VmHWM), and
the peaks of its two parts, sampled every 20 ms: RssAnon (memory of its own) and RssFile (pages of
mapped files: with the cache, shared by all workers of a node through the page cache and dropped
by the kernel under pressure). Modes alternate for ``--repeats`` rounds; medians are printed.

Part 2, ``--files N`` (default 100,000): N tiny PNGs in a temporary folder, cached at ``--resolution``
(decoded at that size); prints the build time, files/s and the builder's peak resident set growth
over its state before the build, next to the size of the images it wrote.

    .venv/bin/python benchmarks/data_cache.py                       # both parts
    .venv/bin/python benchmarks/data_cache.py --steps 20 --repeats 1 --files 2000   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def status(key: str) -> int:
    """A /proc/self/status field in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def peak_sampler(every_s: float = 0.02):
    """Peaks of RssAnon and RssFile, sampled on a thread (the kernel keeps a peak of their sum only):
    nas.deploy.measure.PeakRSS's sampling thread, recording the two parts."""
    from nas.deploy.measure import PeakRSS

    class PeakParts(PeakRSS):
        anon = file = 0

        def tick(self) -> None:
            self.anon, self.file = max(self.anon, status("RssAnon")), max(self.file, status("RssFile"))

    return PeakParts(every_s)


def worker(mode: str, data_dir: str, cache_dir: str, steps: int, batch: int) -> dict:
    """One training worker (runs in its own process); returns what it measured."""
    import torch

    from nas.data import load_dataset
    from nas.presets import preset
    from nas.scaling import scale_spec
    from nas.training import TrainBudget, train_candidate

    torch.set_num_threads(1)
    spec = scale_spec(preset("efficientnet-b0"), 0.5, 0.5).with_(resolution=32)
    with peak_sampler() as peaks:
        start = time.perf_counter()
        if mode == "memory":
            data = load_dataset("fashion-mnist", data_dir)
        else:
            data = load_dataset("fashion-mnist", data_dir, cache_dir=cache_dir, resolution=32)
        load_s = time.perf_counter() - start
        metrics = train_candidate(spec, data, TrainBudget(steps=steps, batch_size=batch, seed=0), "cpu")
    if not metrics.ok:
        raise SystemExit(f"training failed: {metrics.error}")
    return {"mode": mode, "load_s": load_s, "images_per_s": steps * batch / metrics.train_time_s,
            "peak_rss_mb": status("VmHWM") / 2**20, "peak_anon_mb": peaks.anon / 2**20,
            "peak_file_mb": peaks.file / 2**20, "accuracy": metrics.accuracy}


def fashion(args: argparse.Namespace) -> None:
    from nas.data import load_dataset
    from nas.data.shared import require_shared_dataset

    data_dir = require_shared_dataset("fashion-mnist", args.data_dir)
    with tempfile.TemporaryDirectory(prefix="nas-cache-", dir=args.tmp) as cache_dir:
        start = time.perf_counter()
        load_dataset("fashion-mnist", data_dir, cache_dir=cache_dir, resolution=32)
        build_s = time.perf_counter() - start
        runs: dict[str, list[dict]] = {"memory": [], "mapped": []}
        for _ in range(args.repeats):
            for mode in runs:
                command = [sys.executable, __file__, "--worker", mode, "--data-dir", str(data_dir), "--cache-dir",
                           cache_dir, "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"Fashion-MNIST, EfficientNet-B0 proxy (w0.5 d0.5, 32 px), {args.steps} steps of batch {args.batch_size}, "
          f"1 thread, median of {args.repeats}; cache built once in {build_s:.1f} s")
    print("| data | load (s) | images/s | peak RSS (MB) | peak own memory, RssAnon (MB) "
          "| peak mapped file pages, RssFile (MB) |")
    print("|---|---|---|---|---|---|")
    for mode, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0] if k != "mode"}
        print(f"| {mode} | {med['load_s']:.2f} | {med['images_per_s']:.0f} | {med['peak_rss_mb']:.0f} "
              f"| {med['peak_anon_mb']:.0f} | {med['peak_file_mb']:.0f} |")
    ratio = statistics.median(r["images_per_s"] for r in runs["mapped"]) / statistics.median(
        r["images_per_s"] for r in runs["memory"])
    print(f"mapped / memory images/s: {ratio:.2f}")


def folder(args: argparse.Namespace) -> None:
    from imagefolders import write_png_folder

    root = Path(tempfile.mkdtemp(prefix="nas-folder-", dir=args.tmp))
    try:
        start = time.perf_counter()
        write_png_folder(root / "images", args.files, mode="L", size=8, classes=10)
        write_s = time.perf_counter() - start
        command = [sys.executable, __file__, "--build", str(root / "images"), "--cache-dir", str(root / "cache"),
                   "--resolution", str(args.resolution)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    images_mb = args.files * args.resolution ** 2 / 2**20
    print(f"imagefolder: {args.files} PNGs of 8x8 (written in {write_s:.0f} s), cached at {args.resolution} px: "
          f"{result['build_s']:.1f} s ({args.files / result['build_s']:.0f} files/s); the builder's peak RSS grew "
          f"{result['growth_mb']:.0f} MB over its {result['base_mb']:.0f} MB before the build, for {images_mb:.0f} MB "
          f"of images ({3 * images_mb:.0f} MB as RGB while decoding)")


def build(images: str, cache_dir: str, resolution: int) -> dict:
    """Build one cache in this process (a fresh one), measuring its peak resident set growth."""
    from nas.data import load_dataset

    load_dataset("digits", cache_dir=Path(cache_dir) / "warm", resolution=resolution)  # imports, first torch ops
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM to the current resident set
    base = status("VmRSS")
    start = time.perf_counter()
    load_dataset("imagefolder", images, cache_dir=Path(cache_dir) / "folder", resolution=resolution,
                 image_size=resolution)
    return {"build_s": time.perf_counter() - start, "growth_mb": (status("VmHWM") - base) / 2**20,
            "base_mb": base / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the shared one)")
    parser.add_argument("--files", type=int, default=100_000, help="part 2: number of PNG files (0 skips it)")
    parser.add_argument("--resolution", type=int, default=64, help="part 2: cache resolution")
    parser.add_argument("--skip-fashion", action="store_true", help="run part 2 only")
    parser.add_argument("--tmp", default=None, help="folder for the temporary cache and files (default: $TMPDIR)")
    parser.add_argument("--worker", choices=("memory", "mapped"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.cache_dir, args.steps, args.batch_size)))
        return 0
    if args.build:
        print(json.dumps(build(args.build, args.cache_dir, args.resolution)))
        return 0
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if not args.skip_fashion:
        fashion(args)
    if args.files:
        folder(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
