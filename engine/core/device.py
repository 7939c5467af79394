"""Which device runs the work, with which dtype, and seeding every random generator.

The choice is cuda, then mps, then cpu, unless `DLLAB_DEVICE` or the caller names one. `DLLAB_THREADS`
sets how many CPU threads torch uses: on a small machine that also runs the server and a browser, fewer
threads than cores can be faster, because torch's threads wait on each other at every small operation.
"""

from __future__ import annotations

import os
import random

import numpy as np

from engine.core import settings
from engine.core.errors import ConfigError


def pick_device(preferred: str | None = None):
    import torch

    name = preferred or os.environ.get("DLLAB_DEVICE") or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"Device {name!r} was asked for, but this machine has no CUDA GPU that torch can use.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("Device 'mps' was asked for, but Apple's Metal backend is not available here.")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ConfigError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")
    return torch.device(name)


def configure_threads() -> int:
    """Apply `DLLAB_THREADS` (or a Space's `CPU_CORES`) to torch, if set; return the threads torch uses."""
    import torch

    threads = settings.cpu_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def autocast_dtype(device):
    """bf16 on a CUDA card that supports it, float32 everywhere else."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return f"CUDA GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (Metal)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'' if threads == 1 else 's'})"


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, numpy's and torch's global generators; return a fresh numpy Generator for this run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
