"""Device selection (nas/device.py), including the test hook that fakes CUDA's availability check."""

from __future__ import annotations

import pytest
import torch

from nas.device import FAKE_GPUS_ENV, cuda_device_count, placement, resolve_device, select_device
from nas.errors import ConfigError


def test_cpu_machine(monkeypatch):
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert select_device("auto") == torch.device("cpu") == resolve_device(None)
    for name, message in [("tpu", "device 'tpu': expected auto, cpu, cuda or cuda:<index>"),
                          ("cuda", "device cuda: CUDA is not available on this machine")]:
        with pytest.raises(ConfigError, match=message) as error:
            select_device(name)
        assert error.value.field == "device"


@pytest.mark.parametrize("visible, count", [(None, 2), ("1", 1), ("0,1", 2), ("", 0), ("1,5,0", 1), ("GPU-uuid", 0)])
def test_fake_gpus_follow_cuda_visible_devices_as_cuda_does(monkeypatch, visible, count):
    """Ray hands a worker its GPUs in CUDA_VISIBLE_DEVICES; CUDA numbers the visible ones from 0 and
    stops at the first id that does not exist."""
    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert cuda_device_count() == count
    assert select_device("auto") == torch.device("cuda:0" if count else "cpu")
    assert resolve_device("auto") == torch.device("cpu")  # no tensor can go to a fake GPU
    if count:
        assert placement("auto") == {"device": "cuda:0", "computes_on": "cpu", "cuda_visible_devices": visible}
        with pytest.raises(ConfigError, match=f"device cuda:{count}: no such GPU \\(this machine has {count}\\)"):
            select_device(f"cuda:{count}")


def test_bad_fake_gpu_count(monkeypatch):
    monkeypatch.setenv(FAKE_GPUS_ENV, "two")
    with pytest.raises(ConfigError, match="NAS_FAKE_GPUS='two': expected a number of GPUs"):
        select_device("auto")
