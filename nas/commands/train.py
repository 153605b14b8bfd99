"""``nas train``: train one architecture into a model (``--out DIR``), or briefly measure it (no ``--out``)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from rich.console import Console
from rich.table import Table

from nas.api import load_spec
from nas.commands.console import fmt_count, fmt_float, make_console, seeds_table
from nas.commands.runner_flags import add_runner_flags, check_runner_flags
from nas.data import DATASETS
from nas.errors import ConfigError
from nas.scaling import scale_spec
from nas.training import OPTIMIZERS

# Flags whose argparse dest is a TrainConfig field (see TrainConfig.flat). They default to None so
# that a resumed training can tell a flag that was given (and must agree) from one that was not.
CONFIG_DESTS = ("epochs", "steps", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs",
                "label_smoothing", "seed", "compile", "scale_min", "magnitude", "ra_layers", "mixup_alpha", "cutmix_alpha",
                "ema_decay", "progressive", "ibase", "min_magnitude", "dataset", "data_dir", "test",
                "test_resolutions", "finetune_at", "finetune_epochs", "init", "freeze", "resolution_scale")

EXAMPLES = """examples:
  nas train efficientnet-b0 --width 0.5 --depth 0.5 --resolution 32            # measure a proxy (nothing saved)
  nas train runs/s1/b0.json --dataset fashion-mnist --data-dir DATA --epochs 30 --test --out models/b0
  nas train runs/s1/b0.json --out models/b0 --resume                            # continue after a kill
  nas train runs/s1/b0.json --test --seeds 3 --out models/b0-seeds              # seed-0..2 and summary.json
  nas train runs/s1/b0.json --test --seeds 5 --runner ray --address HEAD:6379 --gpus-per-trial 1 --out /shared/b0
  nas train B0.json --epochs 30 --progressive 4 --magnitude 10 --mixup-alpha 0.2 --out models/prog
  nas train B0.json --resolution 24 --test-resolutions 24,28,32 --finetune-at 32 --out models/fixres
  nas train B1.json --width 0.5 --depth 0.5 --resolution-scale 32/224 --seeds 3 --out models/b1   # B1 at 240*32/224 px
  nas train models/mnist/model.pt --dataset cifar10 --data-dir DATA --init models/mnist/model.pt --out models/tl
"""


def add_parser(sub: Any) -> None:
    from nas.training.config import DEFAULT_EMA_DECAY  # torch: the library loads when the command runs, not for --help
    from nas.training.progressive import RELEASED_MIN_MAGNITUDE

    p = sub.add_parser(
        "train", help="train one architecture into a model (checkpoints, resume, recipes, learning curves)",
        description=textwrap.fill(
            "Train one architecture on a dataset. SPEC is a preset name, a spec JSON file, a run's b0.json, "
            "a trained model.pt or block strings. With --out DIR it writes model.pt (weights, spec, "
            "configuration, metrics), last.pt after every epoch (for --resume), history.csv and curves.png; "
            "without --out it trains and prints the metrics. --width/--depth/--resolution shrink the spec "
            "first, as a search's proxy does. --seeds N trains N seeds into DIR/seed-0 ... DIR/seed-<N-1> and "
            "writes DIR/summary.json (mean accuracy with its 95% interval over the seeds; nas compare reads it "
            "all).", 100),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="preset name, spec JSON file, b0.json, model.pt or block strings")
    data = p.add_argument_group("data and output")
    data.add_argument("--dataset", default=None, help=f"one of: {', '.join(DATASETS)} (default digits)")
    data.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    data.add_argument("--out", default=None, metavar="DIR", help="write model.pt, last.pt, history.csv, curves.png here")
    data.add_argument("--resume", action="store_true", help="continue the training whose last.pt is in --out")
    data.add_argument("--seeds", type=int, default=1, metavar="N",
                      help="train seeds SEED..SEED+N-1 into --out/seed-K and summarize them (default 1: no seed "
                           "folders)")
    data.add_argument("--test", action="store_const", const=True, default=None,
                      help="also evaluate the test split (after every epoch and at the end)")
    data.add_argument("--json", action="store_true", help="print the results (and spec) as JSON")
    shape = p.add_argument_group("network")
    shape.add_argument("--resolution", type=int, default=None, help="(final) training image size (default: the "
                                                                    "spec's, or 32 with --width/--depth)")
    shape.add_argument("--resolution-scale", default=None, metavar="F",
                       help="train at the spec's own resolution times F (a number or A/B, e.g. 32/224): the proxy "
                            "of a scaled family, where each model keeps its resolution; nas compare then asks for "
                            "the same F instead of the same size")
    shape.add_argument("--width", type=float, default=None, help="width multiplier applied to the spec first")
    shape.add_argument("--depth", type=float, default=None, help="depth multiplier applied to the spec first")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--epochs", type=float, default=None, help="training epochs (default 20)")
    opt.add_argument("--steps", type=int, default=None, help="training steps (overrides --epochs)")
    opt.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    opt.add_argument("--optimizer", default=None, help=f"one of: {', '.join(OPTIMIZERS)} (default adamw)")
    opt.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per optimizer, scaled "
                                                           "with the batch size)")
    opt.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: per optimizer)")
    opt.add_argument("--warmup-epochs", type=float, default=None,
                     help="linear warm-up (default 1 epoch, at most a quarter of the steps)")
    opt.add_argument("--label-smoothing", type=float, default=None, help="default 0.1")
    opt.add_argument("--ema-decay", type=float, default=None,
                     help=f"moving average of the weights, evaluated and saved beside them (default "
                          f"{DEFAULT_EMA_DECAY}; 0 turns it off)")
    opt.add_argument("--seed", type=int, default=None, help="seed of the weights, batch order, augmentation and "
                                                           "the minival split (default 0)")
    reg = p.add_argument_group("augmentation and progressive learning")
    reg.add_argument("--scale-min", type=float, default=None,
                     help="random-resized crop of area SCALE_MIN..1 of the image (default 1: off)")
    reg.add_argument("--magnitude", type=float, default=None,
                     help="RandAugment magnitude, 0..30 (default 0: off); with --progressive the last stage's")
    reg.add_argument("--ra-layers", type=int, default=None, help="RandAugment operations per image (default 2)")
    reg.add_argument("--mixup-alpha", type=float, default=None, help="mixup alpha (default 0: off)")
    reg.add_argument("--cutmix-alpha", type=float, default=None, help="cutmix alpha (default 0: off)")
    reg.add_argument("--progressive", type=int, default=None, metavar="M",
                     help="EfficientNetV2 progressive learning in M stages: image size, magnitude and alphas grow")
    reg.add_argument("--ibase", type=int, default=None, help="first stage's base image size (default: half)")
    reg.add_argument("--min-magnitude", type=float, default=None,
                     help=f"first stage's RandAugment magnitude (default {RELEASED_MIN_MAGNITUDE:g}, as released)")
    fix = p.add_argument_group("FixRes and transfer learning")
    fix.add_argument("--test-resolutions", default=None, metavar="R,R,...",
                     help="evaluate the trained model at these image sizes and report the best")
    fix.add_argument("--finetune-at", type=int, default=None, metavar="R",
                     help="fine-tune the classifier and BatchNorm statistics at this size after training")
    fix.add_argument("--finetune-epochs", type=float, default=None, help="epochs of that fine-tuning (default 1)")
    fix.add_argument("--init", default=None, metavar="MODEL_PT",
                     help="start from a trained model.pt (same backbone; new head; stem adapted to the channels)")
    fix.add_argument("--freeze", default=None, choices=("none", "backbone"), help="with --init: train only the head")
    run = p.add_argument_group("machine")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    run.add_argument("--compile", action="store_const", const=True, default=None,
                     help="torch.compile the training forward")
    workers = p.add_argument_group("where the seeds train (--seeds N: the runners of nas search)",
                                   "local trains the seeds one after another here; ray trains them at once on the "
                                   "workers (--out must then be one folder every node mounts at that path)")
    add_runner_flags(workers, what="seed", scheduler=False)
    p.set_defaults(func=run_command)


def _resolutions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"test_resolutions must be a comma-separated list of integers, got {text!r}",
                          field="test_resolutions") from None


def _scale(text: str | None) -> float | None:
    """``--resolution-scale``: a number or a fraction ``A/B``."""
    if text is None:
        return None
    top, _, bottom = text.replace(" ", "").partition("/")
    try:
        value = float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"resolution_scale must be a number or a fraction A/B (e.g. 32/224), got {text!r}",
                          field="resolution_scale") from None
    return value


def _config(args: argparse.Namespace):
    """The training configuration: the flags given, over the stored one when resuming."""
    from nas.training.config import TrainConfig  # torch: the library loads when the command runs, not for --help
    from nas.training.run import stored_config
    from nas.training.seeds import stored_seeds_config

    given = {name: getattr(args, name) for name in CONFIG_DESTS}
    given["test_resolutions"] = _resolutions(args.test_resolutions)
    given["resolution_scale"] = _scale(args.resolution_scale)
    given = {k: v for k, v in given.items() if v is not None}
    stored = None
    if args.resume and args.out:
        stored = stored_config(args.out) if args.seeds == 1 else stored_seeds_config(args.out, args.seeds)
    if stored is None:
        return TrainConfig.from_flat(given)
    merged = {**stored.flat(), **given}
    return TrainConfig.from_flat(merged)


def _spec(args: argparse.Namespace):
    spec = load_spec(args.spec)
    if args.resolution is not None and not 8 <= args.resolution <= 4096:
        raise ConfigError(f"resolution must be between 8 and 4096, got {args.resolution}", field="resolution")
    if args.resolution is not None and args.resolution_scale is not None:
        raise ConfigError("resolution_scale excludes --resolution: train at one fixed size or at the spec's own "
                          "times a factor", field="resolution_scale")
    if args.width is not None or args.depth is not None:
        # The proxy's fixed 32 px, unless the resolution is relative (scaled when training, from the spec's own).
        fixed = None if args.resolution_scale is not None else 32 if args.resolution is None else args.resolution
        return scale_spec(spec, width=1.0 if args.width is None else args.width,
                          depth=1.0 if args.depth is None else args.depth, resolution=fixed)
    return spec.with_(resolution=args.resolution) if args.resolution is not None else spec


def run_command(args: argparse.Namespace) -> int:
    import torch  # torch: imported when used, not at module import

    from nas.training.run import train_model  # torch: the library loads when the command runs, not for --help
    from nas.training.seeds import check_seeds

    check_runner_flags(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {args.threads}", field="threads")
        if args.runner != "local":
            raise ConfigError("threads applies to --runner local: each Ray worker computes with --cpus-per-trial "
                              "threads", field="threads")
        torch.set_num_threads(args.threads)
    if args.resume and args.out is None:
        raise ConfigError("resume needs out (the folder holding last.pt)", field="resume")
    check_seeds(args.seeds)
    if args.runner != "local" and args.seeds == 1:
        raise ConfigError(f"runner {args.runner} trains the seeds of --seeds N (N >= 2); one training runs here",
                          field="runner")
    if args.seeds > 1:
        return _run_seeds(args)
    config = _config(args)
    result = train_model(_spec(args), config, args.out, resume=args.resume, device=args.device, progress=True)
    if args.json:
        json.dump({**result.to_dict(), "dataset": config.dataset, "device": args.device, "config": config.flat(),
                   "budget": config.budget.to_dict(), "evaluated_on": "minival"}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(result, config)
    return 0


def _run_seeds(args: argparse.Namespace) -> int:
    """``--seeds N`` (N > 1): every seed into its folder (here, or on the runner's workers), then the summary."""
    from nas.jobs.seeds import seeds_runner  # torch: the library loads when the command runs, not for --help
    from nas.training.seeds import train_seeds

    if args.out is None:
        raise ConfigError(f"seeds {args.seeds} needs out (the folder the seed-K folders go in)", field="seeds")
    spec, config = _spec(args), _config(args)
    runner = seeds_runner(args.runner, check_runner_flags(args), config, args.out, device=args.device)
    summary = train_seeds(spec, config, args.out, args.seeds, resume=args.resume, device=args.device,
                          progress=True, runner=runner)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        make_console().print(seeds_table(summary, title=f"{summary['name']}: {len(summary['seeds'])} seeds in "
                                                        f"{args.out} (summary.json)"))
    return 0


def _print_table(result: Any, config: Any) -> None:
    spec, m, results = result.spec, result.metrics, result.results
    table = Table(title=f"{spec.name or 'spec'} {spec.key()} on {config.dataset}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("status", m.status), (f"minival accuracy at {spec.resolution} px", fmt_float(m.accuracy)),
            ("minival loss", fmt_float(m.loss))]
    for name in ("raw", "ema"):
        for split in ("minival", "test"):
            value = results.get(name, {}).get(f"{split}_accuracy")
            if value is not None and (name, split) != ("raw", "minival"):
                label = f"{split} accuracy" + (", EMA weights" if name == "ema" else "")
                rows.append((f"{label} at {results.get('train_resolution')} px", fmt_float(value)))
    for row in results.get("resolutions", []):
        extra = f", test {row['test_accuracy']:.4f}" if "test_accuracy" in row else ""
        rows.append((f"FixRes {row['weights']} at {row['resolution']} px", f"{row['minival_accuracy']:.4f}{extra}"))
    for name, r in results.get("best_resolution", {}).items():
        rows.append((f"best test resolution ({name} weights, by minival)", f"{r} px"))
    if "finetune" in results:
        ft = results["finetune"]
        for name in ft["after"]:
            before, after = ft["before"][name], ft["after"][name]
            rows.append((f"fine-tuned at {ft['resolution']} px ({name}): minival before -> after",
                         f"{before['minival_accuracy']:.4f} -> {after['minival_accuracy']:.4f}"))
    if "transfer" in results:
        rows.append(("initialized from", f"{results['transfer'].get('init')} ({results['transfer'].get('init_weights')} "
                                         f"weights{'; stem ' + results['transfer']['stem'] if 'stem' in results['transfer'] else ''})"))
    rows += [
        ("params", fmt_count(m.params)),
        (f"MACs at {spec.resolution} px (multiply-adds)", fmt_count(m.macs)),
        ("train step ms (median)", fmt_float(m.step_time_ms, 2)),
        ("latency ms, batch 1", fmt_float(m.latency_ms, 2)),
        ("latency ms, training batch", fmt_float(m.latency_batch_ms, 2)),
        ("epochs", f"{m.epochs:g}"),
        ("train time s", fmt_float(m.train_time_s, 2)),
        ("peak memory MB", fmt_float(m.peak_memory_mb, 1)),
        ("minival history", " ".join(f"{a:.3f}" for a in m.history[-8:])),
    ]
    if result.out is not None:
        rows.append(("saved", str(result.out / "model.pt")))
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)

