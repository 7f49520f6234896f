"""Where and how a run executes: device, threads, seeds."""

from __future__ import annotations

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
    must split the cores: an oversubscribed LSTM step runs many times slower (GUIDE.md)."""
    if num_threads is not None:
        if num_threads < 1:
            raise ConfigError(f"trainer.num_threads={num_threads} is impossible; use a positive integer or null")
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()
