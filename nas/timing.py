"""Inference latency and resident memory, measured the same way for every candidate.

Latency is a median over repeated forward passes after warm-up, in ``torch.inference_mode`` and
eval mode, synchronized on CUDA before each clock read; medians resist the odd slow call that a
shared machine produces. Absolute numbers depend on the machine and on ``torch.get_num_threads()``,
which this module never changes: compare candidates measured in one process.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from typing import Any

import torch
from torch import nn

from nas.builder import build_model
from nas.device import resolve_device, synchronize

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Current resident set size of this process (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


# glibc mallopt parameters (malloc.h) and the values every latency measurement runs with.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # the largest value every glibc accepts; larger blocks are mmapped on every call
_TRIM_THRESHOLD = 256 << 20
_allocator: str | None = None


def steady_allocator() -> str:
    """Put glibc's malloc in the steady state every latency here is measured in, once per process,
    and say which state that is (tables and benchmark files record it).

    Why: PyTorch allocates each activation with ``posix_memalign`` and frees it at once. With
    glibc's default, adaptive thresholds, whether a multi-megabyte activation comes back from the
    heap or from fresh pages (one page fault per 4 KiB) depends on what the process allocated
    before: on this project's CPU one efficientnet candidate at 224 px took 16 ms or 32 ms at batch
    1 (11,000 page faults per call) depending on which networks had run first in the process, which
    no latency table could predict. Fixed thresholds (blocks up to 32 MiB from the heap, free memory
    kept up to 256 MiB) make every call of a warmed network fault-free and the figure reproducible;
    a server can get the same with ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456``
    in its environment. The setting is process-wide and stays; elsewhere than glibc nothing changes.
    """
    global _allocator
    if _allocator is None:
        _allocator = "default"
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
                if libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1 and \
                        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1:
                    _allocator = (f"glibc malloc, mmap threshold {_MMAP_THRESHOLD >> 20} MiB, "
                                  f"trim threshold {_TRIM_THRESHOLD >> 20} MiB")
            except (OSError, AttributeError):  # no loadable libc: measure with what there is
                pass
    return _allocator


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def time_forward(model: nn.Module, batch: int, resolution: int, in_chans: int, device: torch.device,
                 warmup: int = 2, repeats: int = 7, channels_last: bool = True,
                 autocast: bool = False) -> float:
    """Median milliseconds of one forward pass of ``batch`` images (inference mode, eval mode)."""
    steady_allocator()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.zeros((batch, in_chans, resolution, resolution), device=device).contiguous(memory_format=fmt)
    was_training = model.training
    model.eval()
    samples: list[float] = []
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            for i in range(warmup + repeats):
                synchronize(device)
                start = time.perf_counter()
                model(x)
                synchronize(device)
                if i >= warmup:
                    samples.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return median_ms(samples)


def measure_latency_ms(spec: Any, device: torch.device | str = "cpu", batch: int = 1, resolution: int | None = None,
                       warmup: int = 2, repeats: int = 7) -> float:
    """Median batch-``batch`` latency of the network of ``spec`` at ``resolution`` (default: its own).

    Builds the model with fixed weights (latency does not depend on their values) in channels_last;
    bf16 autocast on CUDA, as the trainer evaluates there.
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    model = build_model(spec, generator=torch.Generator().manual_seed(0))
    model = model.to(device=device, memory_format=torch.channels_last)
    return time_forward(model, batch, resolution or spec.resolution, spec.in_chans, device,
                        warmup=warmup, repeats=repeats, autocast=device.type == "cuda")


__all__ = ["measure_latency_ms", "median_ms", "rss_bytes", "steady_allocator", "time_forward"]
