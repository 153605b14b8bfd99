"""``--device auto|cpu|cuda[:i]`` to a :class:`torch.device`, with a one-line error for a bad name.

Two questions are kept apart: which device a name *selects* (:func:`select_device`: ``auto`` is
the first visible GPU, ``cuda:0``, when CUDA is available) and where tensors are *computed*
(:func:`resolve_device`). They differ only under :data:`FAKE_GPUS_ENV`, the hook that lets the test
suite schedule GPU trials on machines without GPUs: Ray hands each worker the GPUs it reserved
through ``CUDA_VISIBLE_DEVICES``; CUDA numbers the visible ones from 0, so a worker given GPU 1
selects ``cuda:0``. Faking the availability check (and nothing else) shows that mapping; the trial
then computes on the CPU, since no GPU exists to put a tensor on.
"""

from __future__ import annotations

import os
import re

import torch

from nas.errors import ConfigError

FAKE_GPUS_ENV = "NAS_FAKE_GPUS"
"""Test hook: ``NAS_FAKE_GPUS=N`` makes this process believe the machine has ``N`` CUDA GPUs, of which
``CUDA_VISIBLE_DEVICES`` (as set by Ray for a worker) keeps some visible, exactly as CUDA would.
Selection then answers as on a GPU machine while tensors stay on the CPU. Never set it in production."""


def _fake_gpu_count() -> int | None:
    """The number of visible fake GPUs, or None when the hook is off (the normal case)."""
    value = os.environ.get(FAKE_GPUS_ENV, "").strip()
    if not value:
        return None
    try:
        machine = int(value)
    except ValueError:
        raise ConfigError(f"{FAKE_GPUS_ENV}={value!r}: expected a number of GPUs") from None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return max(machine, 0)
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    # CUDA stops at the first id that does not exist; ids are indices here (Ray's are).
    count = 0
    for part in ids:
        if not part.isdigit() or int(part) >= machine:
            break
        count += 1
    return count


def cuda_device_count() -> int:
    """How many CUDA devices this process sees (0 without CUDA)."""
    fake = _fake_gpu_count()
    if fake is not None:
        return fake
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, or the test hook's answer (see :data:`FAKE_GPUS_ENV`)."""
    return cuda_device_count() > 0


def gpus_are_fake() -> bool:
    """True when :data:`FAKE_GPUS_ENV` is set: selected CUDA devices compute on the CPU."""
    return _fake_gpu_count() is not None


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device a name selects: ``auto`` (or None) is the first visible GPU, else the CPU.

    Asking for ``cuda`` on a machine without a usable GPU, or for a GPU index that does not exist,
    is a user error (:class:`ConfigError`), not a silent fall-back to the CPU: a search that quietly
    ran on the CPU would report costs and timings of the wrong machine.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if cuda_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:<index>", field="device")
    count = cuda_device_count()
    if count == 0:
        raise ConfigError(f"device {name}: CUDA is not available on this machine (torch {torch.__version__})",
                          field="device")
    index = int(match.group(1) or 0)
    if index >= count:
        raise ConfigError(f"device {name}: no such GPU (this machine has {count})", field="device")
    return torch.device(f"cuda:{index}")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device tensors go to: :func:`select_device`, except that a faked GPU computes on the CPU."""
    device = select_device(name)
    if device.type == "cuda" and gpus_are_fake():
        return torch.device("cpu")
    return device


def placement(name: str | torch.device | None = "auto") -> dict[str, str | None]:
    """What a worker records about its device: the selection, where it computes, and the
    ``CUDA_VISIBLE_DEVICES`` it was given (by Ray, on a cluster)."""
    return {"device": str(select_device(name)), "computes_on": str(resolve_device(name)),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work before reading a clock; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["FAKE_GPUS_ENV", "cuda_available", "cuda_device_count", "gpus_are_fake", "placement", "resolve_device",
           "select_device", "synchronize"]
