"""``--device auto|cpu|cuda[:i]`` to a :class:`torch.device`, with a one-line error for a bad name."""

from __future__ import annotations

import re

import torch

from nas.errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) takes the first CUDA GPU when there is one, else the CPU.

    Asking for ``cuda`` on a machine without a usable GPU, or for a GPU index that does not exist,
    is a user error (:class:`ConfigError`), not a silent fall-back to the CPU: a search that quietly
    ran on the CPU would report costs and timings of the wrong machine.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:<index>")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__})")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"--device {name}: no such GPU (this machine has {count})")
    return torch.device(f"cuda:{index}")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work before reading a clock; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["resolve_device", "synchronize"]
