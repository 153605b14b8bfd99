"""``nas train``: train one architecture briefly (or for longer) and print its metrics."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    from nas.data import DATASETS
    from nas.training import OPTIMIZERS

    p = sub.add_parser(
        "train", help="train one architecture and print its metrics",
        description="Train one architecture on a dataset with the proxy trainer and print accuracy, cost and "
                    "timings. SPEC is a preset name, a spec JSON file, a run's b0.json or block strings. "
                    "Without flags it trains the spec as given (at its own resolution); --width/--depth/"
                    "--resolution shrink it first, as a search's proxy does.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="preset name, spec JSON file, b0.json or block strings")
    p.add_argument("--dataset", default="digits", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    p.add_argument("--epochs", type=float, default=None, help="training epochs (default: the search's budget, 20)")
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    p.add_argument("--optimizer", default=None, help=f"one of: {', '.join(OPTIMIZERS)} (default adamw)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per optimizer, scaled "
                                                         "with the batch size)")
    p.add_argument("--resolution", type=int, default=None, help="training image size (default: the spec's, or "
                                                                "32 with --width/--depth)")
    p.add_argument("--width", type=float, default=None, help="width multiplier applied to the spec first")
    p.add_argument("--depth", type=float, default=None, help="depth multiplier applied to the spec first")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order, augmentation and "
                                                       "the minival split")
    p.add_argument("--test", action="store_true", help="report accuracy on the test split (never used by a search)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--json", action="store_true", help="print the metrics (and spec) as JSON")
    p.set_defaults(func=run)


def _budget(args: argparse.Namespace):
    from nas.training import TrainBudget

    options: dict[str, Any] = {"seed": args.seed, "compile": args.compile}
    for name in ("epochs", "steps", "batch_size", "optimizer", "lr"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    return TrainBudget(**options)


def _train_spec(args: argparse.Namespace, data: Any):
    from nas.api import load_spec
    from nas.errors import ConfigError

    spec = load_spec(args.spec)
    if args.width is not None or args.depth is not None:
        from nas.scaling import scale_spec

        resolution = args.resolution or 32
        spec = scale_spec(spec, width=args.width or 1.0, depth=args.depth or 1.0, resolution=resolution)
    elif args.resolution is not None:
        if not 8 <= args.resolution <= 4096:
            raise ConfigError(f"--resolution must be between 8 and 4096, got {args.resolution}")
        spec = spec.with_(resolution=args.resolution)
    return spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)


def run(args: argparse.Namespace) -> int:
    from nas.data import load_dataset
    from nas.device import resolve_device
    from nas.training import train_candidate

    budget = _budget(args)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    spec = _train_spec(args, data)
    metrics = train_candidate(spec, data, budget, device, evaluate_on="test" if args.test else "minival")
    if args.json:
        json.dump({"spec": spec.to_dict(), "dataset": args.dataset, "device": str(device),
                   "budget": budget.to_dict(), "evaluated_on": "test" if args.test else "minival",
                   "metrics": metrics.to_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(spec, data, device, metrics, args.test)
    return 0 if metrics.ok else 1


def _print_table(spec: Any, data: Any, device: Any, metrics: Any, test: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from nas.reporting import fmt_count, fmt_float

    split = "test" if test else "minival"
    table = Table(title=f"{spec.name or 'spec'} {spec.key()} on {data.name} ({device})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("status", metrics.status),
        (f"{split} accuracy", fmt_float(metrics.accuracy)),
        (f"{split} loss", fmt_float(metrics.loss)),
        ("params", fmt_count(metrics.params)),
        (f"MACs at {spec.resolution} px (multiply-adds)", fmt_count(metrics.macs)),
        ("MACs at the training resolution", fmt_count(metrics.proxy_macs)),
        ("train step ms (median)", fmt_float(metrics.step_time_ms, 2)),
        ("latency ms, batch 1", fmt_float(metrics.latency_ms, 2)),
        ("latency ms, training batch", fmt_float(metrics.latency_batch_ms, 2)),
        ("epochs", f"{metrics.epochs:g}"),
        ("train time s", fmt_float(metrics.train_time_s, 2)),
        ("wall time s", fmt_float(metrics.wall_time_s, 2)),
        ("peak memory MB", fmt_float(metrics.peak_memory_mb, 1)),
        ("minival history", " ".join(f"{a:.3f}" for a in metrics.history[-8:])),
    ]
    if metrics.error:
        rows.append(("error", metrics.error))
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
