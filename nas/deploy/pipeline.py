"""``nas export`` as one library call: load, fold BatchNorm, export, check, quantize, compare accuracy.

:func:`export_model` checks every input (format, flags, output path, dataset) before the slow work,
so a mistake costs a second, not an export; the output file appears only when everything worked
(written atomically).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.data import load_dataset
from nas.deploy.export import check_onnx_file, export_checked
from nas.deploy.formats import check_format, export_onnx
from nas.deploy.fuse import fuse_batchnorm
from nas.deploy.load import example_input, load_model
from nas.deploy.quantize import (CALIBRATION_BATCH, CALIBRATION_IMAGES, check_dataset_fits, compare_accuracy,
                                 dataset_batches, quantize_onnx)
from nas.deploy.runtimes import onnx_runtime, torch_runtime
from nas.errors import ConfigError
from nas.fileio import check_output_file


@dataclass(frozen=True)
class ExportReport:
    """What was written and what the checks found."""

    path: Path
    format: str
    model: str
    parity: Any  # export.Parity of the fp32 file (for int8: of the fp32 ONNX before quantization)
    fuse: Any = None  # fuse.FuseReport or None
    int8: bool = False
    accuracy: Any = None  # quantize.AccuracyComparison or None
    size_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def export_model(source: Any, fmt: str, out: str | Path, *, fuse_bn: bool = False, int8: bool = False,
                 calibrate_dataset: str | None = None, data_dir: str | None = None, resolution: int | None = None,
                 ema: bool = False, calibration_images: int | None = None, seed: int = 0) -> ExportReport:
    """Export MODEL ``source`` to ``out`` in ``fmt`` (``torchscript`` or ``onnx``).

    ``int8`` writes an ONNX Runtime static-quantized ONNX file calibrated on the first
    ``calibration_images`` of ``calibrate_dataset``'s minival split, and compares fp32 and int8
    accuracy on the whole minival split.
    """
    check_format(fmt)
    if int8 and fmt != "onnx":
        raise ConfigError("int8 export writes an ONNX file (ONNX Runtime static quantization); use format onnx",
                          field="int8")
    if int8 and not calibrate_dataset:
        raise ConfigError("int8 needs calibrate_dataset: the dataset whose minival images set the int8 ranges",
                          field="calibrate_dataset")
    if calibrate_dataset and not int8:
        raise ConfigError("calibrate_dataset applies to int8 export only", field="calibrate_dataset")
    limit = calibration_images
    if limit is not None and limit < 1:
        raise ConfigError(f"calibration_images must be >= 1, got {limit}", field="calibration_images")
    path = check_output_file(out)
    data = None
    loaded = load_model(source, resolution=resolution, ema=ema, seed=seed)
    if int8:
        data = load_dataset(calibrate_dataset, data_dir, seed=seed)
        check_dataset_fits(loaded.spec, data)
    notes = [] if loaded.trained else ["random weights: MODEL is a spec, not a trained model.pt"]
    model, fuse_report = loaded.model, None
    if fuse_bn:
        model, fuse_report = fuse_batchnorm(model)
    example = example_input(loaded.spec, 1, seed=seed)
    if not int8:
        parity = export_checked(model, example, fmt, path)
        return ExportReport(path, fmt, loaded.description, parity, fuse_report, size_bytes=path.stat().st_size,
                            notes=notes)

    resolution_px = loaded.spec.resolution
    with tempfile.TemporaryDirectory(prefix="nas-export-") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_onnx(model, example, fp32_path)
        parity = check_onnx_file(fp32_path, model, example)
        calibration = (x for x, _ in dataset_batches(data, resolution_px, CALIBRATION_BATCH,
                                                     limit=limit or CALIBRATION_IMAGES))
        quantize_onnx(fp32_path, path, calibration)
    accuracy = compare_accuracy(torch_runtime(model, 1), onnx_runtime(path, 1, int8=True),
                                dataset_batches(data, resolution_px), dataset=data.name)
    return ExportReport(path, fmt, loaded.description, parity, fuse_report, int8=True, accuracy=accuracy,
                        size_bytes=path.stat().st_size, notes=notes)


__all__ = ["ExportReport", "export_model"]
