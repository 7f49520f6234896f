"""Where and how a run executes: device, threads, seeds, memory reuse, whether training fits in memory."""

from __future__ import annotations

import ctypes
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqmodels.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"trainer.device={name!r} is unknown; use one of {list(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but no CUDA device is available; use trainer.device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> int:
    """Use `num_threads` intra-op threads (None: torch's default). Parallel jobs on one machine
    must split the cores: an oversubscribed LSTM step runs many times slower."""
    if num_threads is not None:
        if num_threads < 1:
            raise ConfigError(f"trainer.num_threads={num_threads} is impossible; use a positive integer or null")
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def job_threads(num_threads: int | None, parallel_jobs: int, cores: int | None = None) -> int | None:
    """The intra-op threads of one job. An explicit `trainer.num_threads` wins; null in a job that
    runs beside `parallel_jobs - 1` others gets its share of the cores, at least one."""
    if num_threads is not None or parallel_jobs <= 1:
        return num_threads
    return max(1, (cores or available_cores()) // parallel_jobs)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Let the C allocator keep freed memory for the next allocation instead of returning it to the
    system. Returns whether it took (only glibc's malloc has these settings).

    A training step allocates the same large buffers every time (a language model's tokens x vocabulary
    logits, their log-softmax and their gradients). By default glibc serves blocks that large with mmap,
    or trims them off the top of the heap once they are freed, so the next step asks the kernel for the
    memory again and pays a page fault per page on first touch, a cost that depends on the heap's
    history (docs/performance.md measures it). With neither mmap nor trimming, freed blocks are reused;
    the process keeps its peak memory until it exits, so call this once the data is prepared, right
    before training.
    """
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # e.g. "glibc 2.36"
    except (AttributeError, ValueError, OSError):  # not a glibc system
        return False
    if not glibc.startswith("glibc"):
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(M_MMAP_MAX, 0))


# -- memory -------------------------------------------------------------------------------------------
GiB = 2**30
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}  # torch's nn.RNNBase modes
WEIGHT_COPIES = 6  # see MemoryEstimate


def available_memory(device: torch.device) -> int:
    """Bytes a run may still allocate: a GPU's free memory, or on the CPU the memory the system can give
    without swapping (MemAvailable), within the container's limit (cgroup) where there is one."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    found = []
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        try:
            with open(limit) as a, open(usage) as b:
                found.append(int(a.read()) - int(b.read()))
        except (OSError, ValueError):  # no such cgroup file, or "max": no limit
            continue
    return min(found) if found else 2**63


@dataclass(frozen=True)
class MemoryEstimate:
    """A rough size of training one batch: six copies of the weights (the weights, their gradients,
    Adam's two moments, and the step's temporaries of the same size: a gradient being accumulated,
    Adam's denominator), and the activations the backward pass keeps (per token: each recurrent layer's
    gates, each linear layer's output, the embedding), stored once and met again by their gradients."""

    parameters: int
    parameter_bytes: int
    tokens: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activation_bytes


def estimate_training_memory(model: nn.Module, tokens: int) -> MemoryEstimate:
    """`tokens`: the positions of the largest training batch (batch x length)."""
    parameters = sum(p.numel() for p in model.parameters())
    size = next((p.element_size() for p in model.parameters()), 4)
    per_token = 0
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            directions = 2 if module.bidirectional else 1
            per_token += GATES.get(module.mode, 4) * module.hidden_size * module.num_layers * directions
        elif isinstance(module, nn.Linear):
            per_token += module.out_features
        elif isinstance(module, nn.Embedding):
            per_token += module.embedding_dim
    return MemoryEstimate(parameters, WEIGHT_COPIES * parameters * size, tokens, 2 * tokens * per_token * size)


def batch_tokens(batch: object) -> int:
    """The positions of a batch: its largest 2-D integer tensor (token ids, batch x length)."""
    sizes = [
        value.numel()
        for value in getattr(batch, "__dict__", {}).values()
        if isinstance(value, torch.Tensor) and value.dim() == 2 and not value.is_floating_point()
    ]
    return max(sizes, default=0)


def is_out_of_memory(error: BaseException) -> bool:
    """An allocator's failure: CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        words in text for words in ("not enough memory", "can't allocate memory", "out of memory")
    )
