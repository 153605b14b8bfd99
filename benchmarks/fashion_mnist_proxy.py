"""Fashion-MNIST acceptance: the search's B0-like proxy (width 0.5, depth 0.5, 32 px), 2 epochs.

Reports minival accuracy, time per epoch and training images/s.

    .venv/bin/python benchmarks/fashion_mnist_proxy.py [--data-dir ../shared/data/fashion-mnist]
"""

from __future__ import annotations

import argparse
import time

import torch

from nas.data import load_dataset
from nas.data.shared import shared_data_root
from nas.presets import preset
from nas.scaling import scale_spec
from nas.training import TrainBudget, train_candidate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(shared_data_root() / "fashion-mnist"))
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="other TrainBudget fields, e.g. --set bn_momentum=0.05")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = load_dataset("fashion-mnist", args.data_dir)
    load_s = time.perf_counter() - start
    spec = scale_spec(preset("efficientnet-b0"), width=0.5, depth=0.5, resolution=32)
    spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
    budget = TrainBudget(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=0.1,
                         **{k: eval(v) for k, v in (item.split("=", 1) for item in args.set)})
    m = train_candidate(spec, data, budget, "cpu", on_epoch=lambda e, a: print(f"epoch {e}: minival {a:.4f}",
                                                                                 flush=True))
    images = int(round(m.epochs * (len(data.train_y) // args.batch_size))) * args.batch_size
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; load {load_s:.1f} s")
    print(f"status {m.status} {m.error}")
    print(f"minival accuracy {m.accuracy:.4f} after {m.epochs:g} epochs; history {[round(a, 4) for a in m.history]}")
    print(f"time per epoch {m.train_time_s / m.epochs:.1f} s (training steps only), wall {m.wall_time_s:.1f} s, "
          f"{images / m.train_time_s:,.0f} images/s, step {m.step_time_ms:.1f} ms median, "
          f"latency {m.latency_ms:.2f} ms (batch 1)")


if __name__ == "__main__":
    main()
