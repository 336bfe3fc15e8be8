"""Which device a run uses: ``--device auto`` picks CUDA when a GPU is there."""

from __future__ import annotations

import torch

from .errors import FewshotMemError

AUTO = "auto"


class DeviceError(FewshotMemError):
    """A device was named that this machine does not have or torch does not know."""


def resolve_device(name: str) -> str:
    """"auto" -> "cuda" when a CUDA device is available, else "cpu"; any other name is checked
    and returned as given ("cpu", "cuda", "cuda:1", ...)."""
    if name == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise DeviceError(f"--device {name}: this machine has {count} CUDA device(s); "
                              "use --device auto (CUDA when present, else CPU) or --device cpu")
    return name
