"""A run's artifacts as a checkpoint keeps them, and a checkpoint written by hand (a run saved by an earlier
version, whose artifacts a test spells out as that version wrote them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from seqmodels.tasks.base import Task
from seqmodels.training.checkpoint import save_checkpoint


def layout(artifacts: dict[str, Any]) -> list[tuple[str, type]]:
    """The keys in their order, each with its value's type: with ==, what makes two artifact dicts the same in a
    checkpoint (== alone ignores the order of keys)."""
    return [(key, type(value)) for key, value in artifacts.items()]


def save_run(path: Path, task: Task, model: nn.Module, artifacts: dict[str, Any]) -> Path:
    """A checkpoint of `model`'s weights, `task`'s resolved config and `artifacts`: what `load_run` reads."""
    config = OmegaConf.to_container(task.cfg, resolve=True)
    save_checkpoint({"model": model.state_dict(), "epoch": 1, "config": config, "artifacts": artifacts}, path)
    return path
