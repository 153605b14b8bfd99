"""int8 post-training static quantization with ONNX Runtime, calibrated on a dataset's minival split.

Why ONNX Runtime and not PyTorch's PT2E flow (``torch.export`` + ``X86InductorQuantizer``): on this
project's x86 CPUs ONNX Runtime's int8 model is the fastest int8 option and runs from a plain file.
Measured on EfficientNet-B0 at 224 px, batch 1, one thread (BENCHMARKS.md, "int8 flows"): eager
fp32 21 ms, PT2E int8 compiled by Inductor 15 ms after a 60 s compile that every process must
repeat (and it needs the separate ``torchao`` package in PyTorch 2.13), ONNX Runtime fp32 7 ms
and int8 about the same at batch 1, 15% faster at batch 8. EfficientNets gain little from int8 on
CPUs: most of their time is in depthwise convolutions, SiLU and squeeze-excite, not in the large
matrix products int8 kernels accelerate.

The recipe is ONNX Runtime's recommended one for CNNs on x86: pre-processing (shape inference and
graph optimization), then QDQ format, per-channel signed int8 weights, unsigned int8 activations,
MinMax calibration. CPUs without AVX512-VNNI may saturate with this int8 x int8 scheme; ONNX
Runtime's documentation suggests ``reduce_range`` there, which :func:`quantize_onnx` exposes.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from nas.deploy.formats import ONNX_INPUT, quiet_exporter
from nas.errors import ConfigError, DataError
from nas.fileio import atomic_write_with

CALIBRATION_IMAGES = 512
CALIBRATION_BATCH = 32


def dataset_batches(data: Any, resolution: int, batch: int = 256, split: str = "minival",
                    limit: int | None = None) -> Iterator[tuple[Any, Any]]:
    """Normalized float NCHW batches and their labels from ``data``'s ``split`` (minival or test),
    resized to ``resolution`` batch by batch (as the trainer evaluates: bilinear, antialiased when
    shrinking; the training set's mean and std). ``limit`` keeps the first images only."""
    from nas.data.augment import Augmenter, resize_images  # torch: imported when used, not at module import

    if split == "minival":
        images, labels = data.minival_x, data.minival_y
    elif split == "test":
        images, labels = data.test()
    else:
        raise ConfigError(f"split must be minival or test, got {split!r}", field="split")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    augmenter = Augmenter(data.mean, data.std, "cpu", channels_last=False)
    for start in range(0, int(labels.shape[0]), batch):
        x = resize_images(images[start:start + batch], resolution)
        yield augmenter.to_float(x).contiguous(), labels[start:start + batch]


def check_dataset_fits(spec: Any, data: Any, field: str = "calibrate_dataset") -> None:
    """The network must take the dataset's channels and predict its classes."""
    if spec.in_chans != data.in_chans or spec.num_classes != data.num_classes:
        raise DataError(f"{field}: the model takes {spec.in_chans} channel(s) and predicts {spec.num_classes} "
                        f"classes; dataset {data.name!r} has {data.in_chans} channel(s) and {data.num_classes} "
                        f"classes", field=field)


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, batches: Iterable[Any],
                  reduce_range: bool = False) -> None:
    """Write the int8 version of the ONNX file ``fp32_path`` to ``int8_path`` (atomically),
    calibrated on ``batches`` (float NCHW tensors or arrays)."""
    from onnxruntime.quantization import (  # onnxruntime: imported when an ONNX file is used
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # onnxruntime, as above

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)
            self.count = 0

        def get_next(self) -> dict[str, Any] | None:
            x = next(self._batches, None)
            if x is None:
                return None
            array = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
            self.count += int(array.shape[0])
            return {ONNX_INPUT: np.ascontiguousarray(array, dtype=np.float32)}

    reader = Reader()
    with tempfile.TemporaryDirectory(prefix="nas-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        with quiet_exporter():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)

            def write(target: str) -> None:
                quantize_static(str(prepared), target, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
                # MinMax calibration keeps only per-tensor minima and maxima per batch (ReduceMin /
                # ReduceMax outputs), so memory stays small without CalibMaxIntermediateOutputs,
                # which in onnxruntime 1.32 discards the batches collected so far.

            atomic_write_with(int8_path, write)
    if reader.count == 0:
        raise DataError("calibration data is empty: no images to calibrate on")


def random_calibration(example: Any, batches: int = 4, batch: int = 8, seed: int = 0) -> list[Any]:
    """Seeded standard-normal batches: enough to time an int8 model, useless for its accuracy."""
    import torch  # torch: imported when used, not at module import

    generator = torch.Generator().manual_seed(seed)
    return [torch.randn((batch, *example.shape[1:]), generator=generator) for _ in range(batches)]


@dataclass(frozen=True)
class AccuracyComparison:
    """Top-1 accuracy of the fp32 and int8 networks on the same images, and how often they agree."""

    dataset: str
    split: str
    images: int
    fp32: float
    int8: float
    agreement: float

    @property
    def drop_points(self) -> float:
        return (self.fp32 - self.int8) * 100.0

    def describe(self) -> str:
        return (f"{self.split} accuracy on {self.dataset} ({self.images} images): fp32 {self.fp32:.4f}, "
                f"int8 {self.int8:.4f} ({-self.drop_points:+.2f} points); same top-1 on {self.agreement:.1%}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop_points": self.drop_points}


def compare_accuracy(fp32: Any, int8: Any, batches: Iterable[tuple[Any, Any]], dataset: str = "",
                     split: str = "minival") -> AccuracyComparison:
    """Accuracy of two runtimes (nas.deploy.runtimes.Runtime) over labelled ``batches``."""
    hits_a = hits_b = same = total = 0
    for x, y in batches:
        labels = y.numpy()
        a = fp32.logits(x).argmax(1)
        b = int8.logits(x).argmax(1)
        hits_a += int((a == labels).sum())
        hits_b += int((b == labels).sum())
        same += int((a == b).sum())
        total += int(labels.shape[0])
    if total == 0:
        raise DataError(f"{dataset} {split}: no images to evaluate")
    return AccuracyComparison(dataset, split, total, hits_a / total, hits_b / total, same / total)


__all__ = ["AccuracyComparison", "CALIBRATION_BATCH", "CALIBRATION_IMAGES", "check_dataset_fits",
           "compare_accuracy", "dataset_batches", "quantize_onnx", "random_calibration"]
