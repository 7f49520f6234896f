"""Where and how a run executes: device, threads, seeds, memory reuse."""

from __future__ import annotations

import ctypes
import os
import random

import numpy as np
import torch

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

    A training step allocates the same large buffers every time: a language model's (tokens x
    vocabulary) logits, their log-softmax and gradients are 28 MB each on PTB. By default glibc serves
    blocks that large with mmap, or trims them off the top of the heap once they are freed, so the next
    step asks the kernel for the memory again and pays a page fault per 4 KiB page on first touch: on
    PTB 8-33 ms of kernel time in a step of about 160 ms, more in the trainer than in a plain loop of
    the same model (the same allocations in another heap layout; README, Performance). With neither
    mmap nor trimming, freed blocks are reused; the process keeps its peak memory until it exits, so
    call this once the data is prepared, right before training.
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
