"""Activations by name: each a factory ``() -> nn.Module`` (torch is imported on the first call)."""

from __future__ import annotations


def silu():
    from torch import nn  # torch: imported when used, not at module import

    return nn.SiLU(inplace=True)


def relu():
    from torch import nn  # torch: imported when used, not at module import

    return nn.ReLU(inplace=True)


__all__ = ["relu", "silu"]
