"""Which int8 flow to ship on x86 CPUs: ONNX Runtime static quantization vs PyTorch's PT2E flow.

Run: ``.venv/bin/python benchmarks/int8_flows.py`` (EfficientNet-B0 at 224 px, batch 1, one thread).
The PT2E rows need ``pip install torchao`` (PyTorch 2.13 moved the PT2E quantizers there); without
it they are skipped with a note.

Times, p50 of batch-1 forward passes in one process: eager fp32 (channels_last); ONNX Runtime fp32
and int8 (``nas.deploy.quantize.quantize_onnx``: QDQ, per-channel weights, MinMax calibration);
``torch.compile`` (Inductor) fp32; PT2E int8 (``torch.export`` -> ``prepare_pt2e`` with
``X86InductorQuantizer`` -> calibration -> ``convert_pt2e`` -> ``torch.compile``), with its compile
time, which every process that loads the model pays again.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nas.deploy.formats import export_onnx
from nas.deploy.load import example_input, load_model
from nas.deploy.measure import TimingPolicy, time_calls
from nas.deploy.quantize import quantize_onnx, random_calibration
from nas.deploy.runtimes import onnx_runtime, torch_runtime

POLICY = TimingPolicy(warmup=3, min_repeats=20, min_seconds=2.0, max_repeats=2000)


def timed(label: str, engine_run, prepared) -> None:
    latency = time_calls(lambda: engine_run(prepared), POLICY)
    print(f"{label:38s} p50 {latency.p50_ms:8.2f} ms   fastest {latency.min_ms:8.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-b0")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, resolution=args.resolution)
    x = example_input(loaded.spec)
    calibration = random_calibration(x)
    print(f"{loaded.description}, batch 1, {args.threads} thread(s)")
    eager = torch_runtime(loaded.model, args.threads)
    timed("eager fp32 (channels_last)", eager.run, eager.prepare(x))
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(loaded.model, x, Path(tmp) / "fp32.onnx")
        quantize_onnx(Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", calibration)
        for name, path in (("onnxruntime fp32", "fp32.onnx"), ("onnxruntime int8 (static, QDQ)", "int8.onnx")):
            compiled = onnx_runtime(Path(tmp) / path, args.threads)
            timed(name, compiled.run, compiled.prepare(x))
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        print("PT2E rows skipped: torchao is not installed (pip install torchao)")
        return
    model = loaded.model.eval().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        started = time.perf_counter()
        compiled = torch.compile(model)
        compiled(xc)
        print(f"torch.compile fp32: compile {time.perf_counter() - started:.0f} s")
        timed("torch.compile fp32 (Inductor)", compiled, xc)
        started = time.perf_counter()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(torch.export.export(model, (xc,)).module(), quantizer)
        for batch in calibration:
            for image in batch.split(1):
                prepared(image.contiguous(memory_format=torch.channels_last))
        quantized = torch.compile(convert_pt2e(prepared))
        quantized(xc)
        print(f"PT2E int8: quantize + compile {time.perf_counter() - started:.0f} s")
        timed("PT2E int8 (X86InductorQuantizer)", quantized, xc)


if __name__ == "__main__":
    main()
