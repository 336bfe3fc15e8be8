"""resolve_device: "auto" follows the hardware; other names are checked, not guessed."""

from __future__ import annotations

import pytest
import torch

from fewshot_mem.device import DeviceError, resolve_device
from fewshot_mem.errors import FewshotMemError


def test_auto_picks_cuda_exactly_when_it_is_available(monkeypatch):
    for available in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        assert resolve_device("auto") == ("cuda" if available else "cpu")


def test_named_devices_pass_through():
    assert resolve_device("cpu") == "cpu"


def test_a_missing_gpu_or_an_unknown_name_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device auto"):
        resolve_device("cuda")
    with pytest.raises(FewshotMemError, match="unknown device 'gpu'"):
        resolve_device("gpu")
