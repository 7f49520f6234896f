"""Seeded train/validation splits: the same seed gives the same split on every machine."""

from __future__ import annotations

import torch

from seqmodels.errors import ConfigError


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a random split of range(n), each sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction} is impossible; it must be in (0, 1)")
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ConfigError(f"data.val_fraction={val_fraction} leaves no training examples out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values
