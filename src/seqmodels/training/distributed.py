"""Data-parallel training with torch.distributed: the few collective operations the trainer needs.

`torchrun --nproc_per_node=N train.py ...` starts N processes (ranks) and tells each who it is
through RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE; a submitit job of several tasks
(hydra/launcher=submitit_slurm with tasks_per_node > 1) is turned into the same variables.
Every rank trains a replica of the model on its own shard of each epoch, gradients are
averaged across ranks (DistributedDataParallel, NCCL on CUDA, gloo on CPU), and only rank 0 writes
files. Without those variables everything here is a no-op, so a single process pays nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from seqmodels.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes TensorBoard, checkpoints, metrics.json and the log."""
        return self.rank == 0


def _submitit_to_torch_environment() -> None:
    """A submitit job of several tasks (hydra/launcher=submitit_slurm or submitit_local with
    tasks_per_node > 1) has SLURM-style variables, not torchrun's: submitit translates them (and
    picks MASTER_ADDR and MASTER_PORT), so each task is one rank."""
    if "RANK" in os.environ or not os.environ.get("SUBMITIT_EXECUTOR"):
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def environment_world() -> World:
    """Who this process is, from the environment torchrun (or submitit) sets."""
    _submitit_to_torch_environment()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(
        rank=int(os.environ.get("RANK", "0")),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
    )


def init(device: torch.device) -> World:
    """Join the process group of this run (once per process); a single process joins nothing."""
    world = environment_world()
    if not world.enabled or dist.is_initialized():
        return world
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {world.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                f"start at most that many processes per node (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world


def world() -> World:
    """The current world: joined by `init`, or a single process."""
    return environment_world() if dist.is_initialized() else World()


@contextlib.contextmanager
def local_main_first() -> Iterator[None]:
    """The first process of each machine goes first (it builds the data cache); the others wait
    for it and then load what it built, instead of all building the same cache in a race."""
    current = world()
    if current.enabled and current.local_rank != 0:
        dist.barrier()
    yield
    if current.enabled and current.local_rank == 0:
        dist.barrier()


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    current = world()
    if not current.enabled:
        return [obj]
    gathered: list[Any] = [None] * current.size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not world().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any: ranks must stop (Ctrl-C, a diverged loss) at the
    same step, or the others would wait forever for its gradients."""
    if not world().enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def total(values: list[float], device: torch.device) -> list[float]:
    """The sums over ranks of a few numbers (tokens, losses)."""
    if not world().enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


class _Replica(nn.parallel.DistributedDataParallel):
    """DistributedDataParallel that still answers to the model's own methods (a tagger's
    `loss` and `decode`), so tasks call the same names on a replica as on the model."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def replicate(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to train: a DDP replica whose gradients are averaged over ranks, or the model
    itself in a single process."""
    if not world().enabled:
        return model
    # Every buffer of these models is constant (decoding penalties, and pretrained words beyond the
    # vocabulary, a large table: docs/word-vectors.md), so none is broadcast again before each step.
    return _Replica(
        model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None, broadcast_buffers=False
    )


def backend() -> str:
    return dist.get_backend() if dist.is_initialized() else "none"


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
