"""Image folders with many small files, written fast (tests and benchmarks/data_cache.py).

A few random PNGs are encoded once and their bytes written under new names, so that 100,000 files
cost seconds, not the minutes that encoding each would take.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def write_png_folder(root: Path, count: int, mode: str = "L", size: int = 10, start: int = 0,
                     classes: int = 2, variants: int = 8) -> None:
    """``count`` PNGs of ``size`` x ``size`` (``mode`` L or RGB), named ``<start..>.png``, spread over
    ``classes`` class folders ``c0``, ``c1``..., each file one of ``variants`` random images."""
    from PIL import Image

    rng = np.random.default_rng(start)
    encoded = []
    for _ in range(variants):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        with open(root / f"c{i % classes}" / f"{i:06d}.png", "wb") as handle:
            handle.write(encoded[i % variants])


__all__ = ["write_png_folder"]
