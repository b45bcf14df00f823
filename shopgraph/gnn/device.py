"""The compute device, chosen once: CUDA when present, else the CPU."""

from __future__ import annotations

import warnings

import torch

HAS_CUDA = torch.cuda.is_available()


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``, ``"cpu"`` or ``"cuda[:n]"``; asking for CUDA without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if HAS_CUDA else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not HAS_CUDA:
        raise ValueError(f"device {name!r} was requested but no CUDA GPU is available; "
                         "use --device cpu or auto")
    if device.type == "cpu" and HAS_CUDA:
        warnings.warn("a CUDA GPU is available but the CPU was requested", stacklevel=2)
    return device
