"""``nas export``: a network as a TorchScript or ONNX file (optionally BN-folded or int8), checked after writing."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from nas.data import DATASETS
from nas.deploy.formats import FORMATS

MODEL_HELP = "a trained model.pt, a preset name, a spec JSON file (or a run's b0.json) or block strings"


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL and the flags that pick its weights and input size (shared by export and bench)."""
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP + "; a spec gets seeded random weights")
    p.add_argument("--resolution", type=int, default=None, help="input size in pixels (default: the model's)")
    p.add_argument("--ema", action="store_true", help="use the checkpoint's EMA weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights of a spec and of the check inputs")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="write a model as TorchScript or ONNX (optionally BN-folded or int8) and check it",
        description="Export MODEL to TorchScript (traced and frozen) or ONNX (dynamic batch axis). The written "
                    "file is reloaded and compared with PyTorch (TorchScript by torch.jit.load, ONNX by "
                    "onnxruntime) and the maximum absolute difference is printed. --int8 writes an ONNX Runtime "
                    "static-quantized ONNX file calibrated on the dataset's minival split and prints fp32 and "
                    "int8 minival accuracy.")
    add_model_arguments(p)
    p.add_argument("--format", default="onnx", choices=FORMATS, help="file format")
    p.add_argument("--out", required=True, help="file to write (its folder is created)")
    p.add_argument("--fuse-bn", action="store_true",
                   help="fold BatchNorm into the preceding convolutions (other norms are left as they are)")
    p.add_argument("--int8", action="store_true", help="post-training static int8 quantization (ONNX Runtime; "
                                                       "needs --format onnx and --calibrate-dataset)")
    p.add_argument("--calibrate-dataset", default=None, help=f"dataset for int8 calibration: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="folder with the calibration dataset's files")
    p.add_argument("--calibration-images", type=int, default=None,
                   help="minival images used for calibration (default 512)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.deploy.pipeline import export_model  # torch: the library loads when the command runs, not for --help

    console = Console()
    report = export_model(args.model, args.format, args.out, fuse_bn=args.fuse_bn, int8=args.int8,
                          calibrate_dataset=args.calibrate_dataset, data_dir=args.data_dir,
                          resolution=args.resolution, ema=args.ema, calibration_images=args.calibration_images,
                          seed=args.seed)
    kind = f"{report.format} int8" if report.int8 else report.format
    console.print(f"wrote {report.path} ({kind}, {report.size_bytes / 2**20:.1f} MB): {report.model}",
                  soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}")
    if report.fuse is not None:
        console.print(f"fuse-bn: {report.fuse.describe()}", soft_wrap=True)
    runner = "onnxruntime" if report.format == "onnx" else "torch.jit.load"
    stage = "the fp32 ONNX before quantization " if report.int8 else ""
    console.print(f"parity: {stage}{report.parity.describe(runner)}", soft_wrap=True)
    if report.accuracy is not None:
        console.print(f"int8: {report.accuracy.describe()}", soft_wrap=True)
    return 0
