"""``nas bench``: one network on several runtimes, batch sizes and thread counts, side by side.

Every configuration is measured in this one process, one after another, with the same timing
policy (:mod:`nas.deploy.measure`), so ratios between runtimes are comparable; absolute numbers
depend on the machine and its load. The ONNX file is exported once and shared by all ONNX Runtime
sessions; the int8 model is calibrated on seeded random images (speed does not depend on the
calibration data; accuracy does: measure it with ``nas export --int8``).

Peak memory is the growth of the process's resident memory from just before the runtime was built
to the end of the warm-up calls at that batch size: the weights the runtime holds plus its
workspace and activations. Memory freed by an earlier configuration may be reused without showing
up, so treat it as approximate.
"""

from __future__ import annotations

import gc
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nas.deploy.formats import export_onnx
from nas.deploy.load import example_input
from nas.deploy.measure import Latency, PeakRSS, TimingPolicy, time_calls
from nas.deploy.quantize import quantize_onnx, random_calibration
from nas.deploy.runtimes import build_runtime, check_runtime, onnx_runtime, torch_threads
from nas.errors import ConfigError
from nas.timing import rss_bytes

MAX_BATCH = 4096


@dataclass(frozen=True)
class BenchRow:
    """One runtime at one batch size and thread count."""

    runtime: str  # "torch", "torchscript", "onnxruntime" or "onnxruntime int8"
    batch: int
    threads: int
    latency: Latency
    peak_memory_mb: float | None
    speedup: float | None = None  # eager PyTorch's p50 over this row's, same batch and threads

    @property
    def throughput(self) -> float:
        """Images per second at the median latency."""
        return self.batch / (self.latency.p50_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "batch": self.batch, "threads": self.threads, **self.latency.to_dict(),
                "throughput": self.throughput, "peak_memory_mb": self.peak_memory_mb, "speedup": self.speedup}


def check_sizes(values: Sequence[int], field: str, maximum: int) -> tuple[int, ...]:
    if not values:
        raise ConfigError(f"{field} needs at least one value", field=field)
    for value in values:
        if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum):
            raise ConfigError(f"{field} values must be integers between 1 and {maximum}, got {value!r}", field=field)
    return tuple(sorted(set(values)))


def bench_model(model: Any, spec: Any, runtimes: Sequence[str], batches: Sequence[int] = (1,),
                threads: Sequence[int] = (1,), int8: bool = False,
                policy: TimingPolicy = TimingPolicy()) -> list[BenchRow]:
    """Measure ``model`` (eval mode, input shaped by ``spec``) on every runtime x batch x thread count.

    ``int8`` adds ONNX Runtime's int8 model. Rows come grouped by thread count, then batch size, with
    runtimes in the order given.
    """
    runtimes = tuple(dict.fromkeys(check_runtime(r) for r in runtimes))
    if not runtimes and not int8:
        raise ConfigError("runtime needs at least one runtime", field="runtime")
    batches = check_sizes(list(batches), "batch", MAX_BATCH)
    threads = check_sizes(list(threads), "threads", 1024)
    example = example_input(spec, 1)
    measured: dict[tuple[str, int, int], tuple[Latency, float | None]] = {}
    labels = list(runtimes) + (["onnxruntime int8"] if int8 else [])
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        int8_path = Path(tmp) / "model.int8.onnx"
        if "onnxruntime" in runtimes or int8:
            export_onnx(model, example, fp32_path)
        if int8:
            quantize_onnx(fp32_path, int8_path, random_calibration(example))
        for n_threads in threads:
            with torch_threads(n_threads):
                for label in labels:
                    def build(label: str = label, n_threads: int = n_threads) -> Any:
                        if label == "onnxruntime int8":
                            return onnx_runtime(int8_path, n_threads, int8=True)
                        return build_runtime(label, model, example, n_threads, onnx_path=fp32_path)

                    for batch, result in _measure_runtime(build, spec, batches, policy).items():
                        measured[(label, batch, n_threads)] = result
    rows = []
    for n_threads in threads:
        for batch in batches:
            base = measured.get(("torch", batch, n_threads))
            for label in labels:
                latency, memory = measured[(label, batch, n_threads)]
                speedup = base[0].p50_ms / latency.p50_ms if base is not None else None
                rows.append(BenchRow(label, batch, n_threads, latency, memory, speedup))
    return rows


def _measure_runtime(build: Any, spec: Any, batches: Sequence[int],
                     policy: TimingPolicy) -> dict[int, tuple[Latency, float | None]]:
    gc.collect()
    before = rss_bytes()
    with PeakRSS() as building:
        compiled = build()
    peak = building.peak
    results = {}
    for batch in batches:
        prepared = compiled.prepare(example_input(spec, batch, seed=batch))
        with PeakRSS() as warming:
            for _ in range(max(policy.warmup, 1)):
                compiled.run(prepared)
        peak = max(peak, warming.peak)
        latency = time_calls(lambda: compiled.run(prepared), TimingPolicy(0, policy.min_repeats, policy.min_seconds,
                                                                         policy.max_repeats))
        results[batch] = (latency, None if before is None else max(peak - before, 0) / 2**20)
    del compiled
    return results


__all__ = ["BenchRow", "MAX_BATCH", "bench_model", "check_sizes"]
