"""Images/s of train_candidate against the training loop a user would write by hand.

Plain loop: float32 NCHW images already normalized and resized in memory, a TensorDataset and a
shuffling DataLoader, the same network built by build_model, AdamW, cross-entropy with label
smoothing. Toolkit: train_candidate with a step budget (uint8 on-device batches, augmentation,
channels_last, fused AdamW; bf16 autocast on CUDA). Both run the same number of steps of the same
batch size; the clock covers every step (data included) and nothing else. Three specs, CPU, and the
GPU as well when one is present.

    .venv/bin/python benchmarks/train_throughput.py [--steps 40] [--dataset digits]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nas.builder import build_model
from nas.data import load_dataset
from nas.data.augment import resize_images
from nas.presets import preset
from nas.scaling import scale_spec
from nas.training import TrainBudget, train_candidate

SPECS = {"b0 w0.25 d0.25": (0.25, 0.25), "b0 w0.5 d0.5 (search proxy)": (0.5, 0.5), "b0 w1.0 d0.5": (1.0, 0.5)}


def plain_loop(spec, data, steps: int, batch: int, device: torch.device) -> float:
    """Seconds for ``steps`` steps of the hand-written loop (fresh model, fixed seed)."""
    x = resize_images(data.train_x, spec.resolution).float().div(255)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    loader = DataLoader(TensorDataset((x - mean) / std, data.train_y), batch_size=batch, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(0))
    model = build_model(spec, generator=torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.016, weight_decay=0.05)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    done = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = criterion(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def toolkit(spec, data, steps: int, batch: int, device: torch.device) -> tuple[float, float]:
    m = train_candidate(spec, data, TrainBudget(steps=steps, batch_size=batch, seed=0), device)
    assert m.ok, m.error
    return m.train_time_s, m.accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, dataset {args.dataset}, "
          f"{args.steps} steps of batch {args.batch_size}, median of {args.repeats} interleaved repeats")
    for device in devices:
        print(f"\n{device}: | spec | plain img/s | toolkit img/s | ratio |")
        for label, (width, depth) in SPECS.items():
            spec = scale_spec(preset("efficientnet-b0"), width=width, depth=depth, resolution=32)
            spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
            plain, ours = [], []
            for _ in range(args.repeats):
                plain.append(plain_loop(spec, data, args.steps, args.batch_size, device))
                ours.append(toolkit(spec, data, args.steps, args.batch_size, device)[0])
            images = args.steps * args.batch_size
            p, t = images / statistics.median(plain), images / statistics.median(ours)
            print(f"| {label} | {p:,.0f} | {t:,.0f} | {t / p:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
