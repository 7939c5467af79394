"""Training on several processes or machines: torchrun and DistributedDataParallel, for the CLI trainers.

    python -m torch.distributed.run --nproc-per-node 2 -m engine.gpt train --preset cpu --gradient-accumulation-steps 2

torchrun starts one process per rank and tells each its place through the environment (RANK, LOCAL_RANK,
WORLD_SIZE); a process started any other way (the app, the tests, a plain `python -m`) is a world of one,
and the trainers then run exactly as they always did. Processes talk through gloo on the CPU and nccl on
CUDA. Rank 0 alone evaluates, reports, samples and saves; the others train in silence. The stop flag is
all-reduced every step, so every rank leaves the loop at the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from engine.core.device import pick_device
from engine.core.errors import ConfigError
from engine.core.jobs import Reporter

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0  # the rank among this machine's processes: which GPU it takes
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reporter(self, report: Reporter) -> Reporter:
        """Rank 0 reports; another rank's reporter says nothing but still hears its own Ctrl-C."""
        return report if self.is_main else QuietReporter(report)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model to run forward and backward: DDP's wrapper when there are several ranks (it all-reduces the
        gradients during backward), the model itself otherwise. Save the unwrapped model: its checkpoint is a
        single process's."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on any: the stop flag, all-reduced with max."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)  # nccl reduces only tensors on the GPU
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def share(self, count: int, what: str) -> int:
        """This rank's equal share of `count` units of work (examples, micro-batches); a ConfigError unless they divide."""
        if count % self.size:
            raise ConfigError(f"{what} ({count}) must be divisible by the number of processes ({self.size}), so each trains an equal share.")
        return count // self.size


class QuietReporter:
    """What a rank other than 0 reports: nothing. Its stop flag is its own reporter's (Ctrl-C on that process)."""

    def __init__(self, report: Reporter):
        self._report = report

    @property
    def stop_requested(self) -> bool:
        return self._report.stop_requested

    def metric(self, step: int, **values: float) -> None:
        pass

    def snapshot(self, name: str, value: Any) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass


def world_from_environment() -> World:
    """This process's place, from torchrun's variables; a world of one without them."""
    if not under_torchrun():
        return World()
    try:
        rank, local_rank, size = (int(os.environ[name]) for name in TORCHRUN_VARIABLES)
    except ValueError:
        raise ConfigError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers (torchrun sets them).") from None
    if not (size >= 1 and 0 <= rank < size and local_rank >= 0):
        raise ConfigError(f"RANK ({rank}) must lie between 0 and WORLD_SIZE ({size}) - 1.")
    return World(rank=rank, local_rank=local_rank, size=size)


def under_torchrun() -> bool:
    """Whether torchrun started this process (even as a world of one)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_main_process() -> bool:
    """Whether this process is the one that prints and saves (every process is, outside torchrun)."""
    return world_from_environment().is_main


def join(world: World, device_name: str) -> torch.device:
    """This rank's device, with the process group started when there are several ranks (once per process)."""
    device = pick_device(None if device_name == "auto" else device_name)
    if not world.distributed:
        return device
    if device.type == "mps":
        raise ConfigError("Several processes train on CPUs (gloo) or CUDA GPUs (nccl), not on 'mps': use --device cpu.")
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)  # one GPU per process on each machine
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)
    return device


def leave(together: bool = True) -> None:
    """End the process group, if this process started one. After a run that ended normally the ranks first wait for
    each other: rank 0 still saves after the others have left the loop, and a rank that tore down its half of gloo's
    connections while rank 0 was still using them was seen to abort ("terminate called without an active exception").
    After an error the others may never arrive, so that rank leaves alone and torchrun ends the rest."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if together:
        dist.barrier()
    dist.destroy_process_group()
