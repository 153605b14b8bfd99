"""What the training benchmarks share: the shared datasets (optionally a seeded subset), the search's
proxy spec, the common flags, and one timed call of ``train_model``.

Not a benchmark itself; the scripts beside it import it (run them from the repository root).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

import torch

from nas.data import load_dataset
from nas.data.base import Dataset
from nas.data.shared import require_shared_dataset
from nas.presets import preset
from nas.scaling import scale_spec


def parser(doc: str, epochs: float, subset: int = 0) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--epochs", type=float, default=epochs)
    p.add_argument("--subset", type=int, default=subset,
                   help="train on this many images of the training split (seeded; 0: all)")
    p.add_argument("--width", type=float, default=0.5, help="proxy width of EfficientNet-B0 (the search's: 0.5)")
    p.add_argument("--depth", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return p


def sweep_parser(doc: str, epochs: str, seeds: str) -> argparse.ArgumentParser:
    """The flags of a sweep over budgets on the digits proxy: comma lists of epochs and seeds, threads."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--epochs", default=epochs, help="comma-separated epoch counts")
    p.add_argument("--seeds", default=seeds, help="comma-separated seeds")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return p


def comma_list(text: str, kind: type = float) -> list:
    """``"1,2,4"`` as ``[1.0, 2.0, 4.0]`` (or of ``kind``)."""
    return [kind(part) for part in text.split(",") if part]


def digits_proxy() -> tuple[Dataset, Any]:
    """The embedded digits dataset and the search's B0-like proxy (width 0.5, depth 0.5, 32 px) for it."""
    data = load_dataset("digits", seed=0)
    return data, proxy_spec(0.5, 0.5, 32).with_(num_classes=data.num_classes, in_chans=data.in_chans)


def setup(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {' '.join(sys.argv)}", flush=True)


def shared(name: str, subset: int = 0, seed: int = 0) -> Dataset:
    """The shared dataset ``name`` (mnist, fashion-mnist); ``subset`` > 0 keeps that many training
    images (a seeded random choice; minival and test stay whole)."""
    folder = require_shared_dataset(name)
    data = load_dataset(name, folder, seed=seed)
    if 0 < subset < len(data.train_y):
        keep = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:subset].sort().values
        data = replace(data, train_x=data.train_x[keep].contiguous(), train_y=data.train_y[keep].contiguous())
    print(f"{data!r}", flush=True)
    return data


def proxy_spec(width: float, depth: float, resolution: int):
    return scale_spec(preset("efficientnet-b0"), width=width, depth=depth, resolution=resolution)


def timed_train(spec: Any, config: Any, data: Dataset, out: Any) -> tuple[Any, float]:
    """``train_model`` on the CPU into ``out``, one line per epoch; returns (result, wall seconds).

    Benchmarks keep ``config.test`` off (the test split would be evaluated after every epoch and
    dominate the wall time) and read the test accuracy from model.pt at the end (:func:`test_accuracy`).
    """
    from nas.training import train_model

    start = time.perf_counter()
    result = train_model(spec, config, out, device="cpu", data=data, progress=True)
    return result, time.perf_counter() - start


def test_accuracy(model_pt: Any, data: Dataset, resolution: int | None = None) -> dict[str, float]:
    """Test accuracy of the raw and (when saved) EMA weights of a model.pt, at its own resolution."""
    from nas.checkpoint import build_trained_model, load_model_checkpoint
    from nas.data.augment import Augmenter
    from nas.training.evaluate import evaluate

    checkpoint = load_model_checkpoint(model_pt)
    augmenter = Augmenter(data.mean, data.std, "cpu")
    source = data.source("test")
    out = {}
    for name, ema in (("raw", False), ("ema", True)):
        if ema and checkpoint.ema_state_dict is None:
            continue
        model = build_trained_model(checkpoint, ema=ema)
        out[name] = evaluate(model, source, resolution or checkpoint.spec.resolution, augmenter, 512).accuracy
    return out


__all__ = ["parser", "proxy_spec", "setup", "shared", "test_accuracy", "timed_train"]
