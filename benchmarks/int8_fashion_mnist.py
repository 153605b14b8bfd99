"""int8 on a trained model: accuracy drop and speed-up of ONNX Runtime static quantization (issue 13).

Run: ``.venv/bin/python benchmarks/int8_fashion_mnist.py`` (add ``--checkpoint runs/x/model.pt`` to
use a model trained by ``nas train --out``; without it the script trains one briefly itself).

1. The model: ``--checkpoint``, or ``--spec`` (default: EfficientNet-B0 at width 0.5, depth 0.5,
   32 px, the search's proxy shape) trained ``--epochs`` on Fashion-MNIST by ``train_model`` (the
   trainer of ``nas train``, default budget), one torch thread; saved as a ``model.pt``.
2. ``nas.deploy.pipeline.export_model(..., int8=True)``: fp32 ONNX checked against PyTorch, then
   int8 calibrated on 512 minival images; fp32 and int8 accuracy on the whole minival split (6,000)
   and on the test split (10,000).
3. Speed: the fp32 and int8 ONNX files in onnxruntime and the eager model, p50 at batch 1 and
   ``--batch`` with ``--threads`` threads, all measured in this process one after another.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nas.data.shared import require_shared_dataset


def train(spec_source: str, data, epochs: float, seed: int, out: Path) -> Path:
    """A brief real training with the toolkit's trainer (what ``nas train --out`` runs); returns model.pt."""
    from nas.api import load_spec
    from nas.scaling import scale_spec
    from nas.training import TrainBudget, TrainConfig, train_model

    spec = load_spec(spec_source)
    if spec_source == "efficientnet-b0":
        spec = scale_spec(spec, width=0.5, depth=0.5, resolution=32)
    started = time.perf_counter()
    train_model(spec, TrainConfig(budget=TrainBudget(epochs=epochs, seed=seed)), out, device="cpu", data=data,
                progress=True)
    print(f"trained {spec.name or spec_source} for {epochs:g} epochs in {time.perf_counter() - started:.0f} s",
          flush=True)
    return out / "model.pt"


def main() -> None:
    from nas.data import load_dataset
    from nas.deploy.formats import export_onnx
    from nas.deploy.load import example_input, load_model
    from nas.deploy.machine import machine_info
    from nas.deploy.measure import TimingPolicy, time_calls
    from nas.deploy.pipeline import export_model
    from nas.deploy.quantize import compare_accuracy, dataset_batches
    from nas.deploy.runtimes import onnx_runtime, torch_runtime, torch_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--spec", default="efficientnet-b0")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data_dir = require_shared_dataset("fashion-mnist", args.data_dir)
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", data_dir, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint or train(args.spec, data, args.epochs, args.seed, tmp / "train")
        report = export_model(checkpoint, "onnx", tmp / "int8.onnx", int8=True, calibrate_dataset="fashion-mnist",
                              data_dir=str(data_dir), seed=args.seed)
        loaded = load_model(checkpoint)
        export_onnx(loaded.model, example_input(loaded.spec), tmp / "fp32.onnx")
        fp32, int8 = onnx_runtime(tmp / "fp32.onnx", args.threads), onnx_runtime(tmp / "int8.onnx", args.threads, True)
        test = compare_accuracy(fp32, int8, dataset_batches(data, loaded.spec.resolution, split="test"),
                                dataset=data.name, split="test")
        policy = TimingPolicy(warmup=5, min_repeats=30, min_seconds=2.0, max_repeats=5000)
        speed = {}
        with torch_threads(args.threads):
            eager = torch_runtime(loaded.model, args.threads)
            for batch in sorted({1, args.batch}):
                x = example_input(loaded.spec, batch)
                for name, compiled in (("torch", eager), ("onnxruntime", fp32), ("onnxruntime int8", int8)):
                    prepared = compiled.prepare(x)
                    speed[f"{name} batch {batch}"] = time_calls(lambda: compiled.run(prepared), policy).p50_ms
    print(f"\n{loaded.description} on {machine_info()['cpu']}, {args.threads} thread(s)")
    print(f"minival: {report.accuracy.describe()}")
    print(f"test:    {test.describe()}")
    for batch in sorted({1, args.batch}):
        f32, i8, eg = (speed[f"{n} batch {batch}"] for n in ("onnxruntime", "onnxruntime int8", "torch"))
        print(f"batch {batch}: eager {eg:.3f} ms, onnxruntime fp32 {f32:.3f} ms, int8 {i8:.3f} ms; int8 speed-up "
              f"{f32 / i8:.2f}x over fp32 onnxruntime, {eg / i8:.2f}x over eager")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "model": loaded.description,
                                         "minival": report.accuracy.to_dict(), "test": test.to_dict(),
                                         "p50_ms": speed}, indent=2))


if __name__ == "__main__":
    main()
