"""Checkpoints: everything needed to predict and to resume, written atomically, loaded safely.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqmodels.atomic import save_torch
from seqmodels.errors import CheckpointError

FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    save_torch({"format": FORMAT, **state}, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a run directory that holds checkpoints/best.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, not a torch file, or holding non-data objects
        raise CheckpointError(
            f"{path} is not a readable seqmodels checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a seqmodels checkpoint of format {FORMAT}")
    return state


def checkpoint_path(run_or_checkpoint: Path, name: str = "best.pt") -> Path:
    """A run directory means its `checkpoints/<name>`; a file path is used as it is."""
    path = Path(run_or_checkpoint)
    return path / "checkpoints" / name if path.is_dir() else path
