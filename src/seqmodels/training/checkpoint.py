"""Checkpoints: everything needed to predict and to resume, written atomically, loaded safely.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs pickled code.

Resuming (`trainer.resume`) is allowed from a checkpoint of the same task, model and data settings:
`check_resumable` is that rule, applied before any data is read (and before Hydra rewrites a run
directory's record: `seqmodels.cli`).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from seqmodels.atomic import save_torch
from seqmodels.errors import CheckpointError
from seqmodels.schema import Section, defaults, execution_keys, keys, shown

FORMAT = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
SIBLINGS = {"best.pt": "last.pt", "last.pt": "best.pt"}


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    save_torch({"format": FORMAT, **state}, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's state; `mmap`: tensors stay on disk until read (cheap when only the config is wanted)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; pass a run directory that holds checkpoints/{path.name}, or a checkpoint file"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # truncated, not a torch file, or holding non-data objects
        raise CheckpointError(
            f"{path} is not a readable seqmodels checkpoint: {_why_unreadable(path, error)}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a seqmodels checkpoint of format {FORMAT}")
    return state


def _why_unreadable(path: Path, error: Exception) -> str:
    with open(path, "rb") as handle:
        is_zip = handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if is_zip and isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than tensors, numbers and strings, which are never loaded (they could run code)"
    what = (
        "the file is damaged (cut short or overwritten)"
        if is_zip
        else "it is not a torch file (damaged, or another file)"
    )
    sibling = path.with_name(SIBLINGS.get(path.name, ""))
    if path.name in SIBLINGS and _intact(sibling):
        return f"{what}; {sibling} beside it is intact and can be used in its place, or a checkpoint of an earlier run"
    return f"{what}; use a checkpoint of an earlier run"


def _intact(path: Path) -> bool:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # damaged too, or missing
        return False
    return isinstance(state, dict) and state.get("format") == FORMAT


def checkpoint_path(run_or_checkpoint: Path, name: str = "best.pt") -> Path:
    """A run directory means its `checkpoints/<name>`; a file path is used as it is."""
    path = Path(run_or_checkpoint)
    return path / "checkpoints" / name if path.is_dir() else path


def resume_path(resume: str) -> Path:
    """The checkpoint `trainer.resume` names: a run directory's checkpoints/last.pt, or a checkpoint file."""
    path = Path(resume)
    if not path.exists():
        raise CheckpointError(f"trainer.resume={resume}: no such run directory or checkpoint file")
    last = checkpoint_path(path, "last.pt")
    if path.is_dir() and not last.is_file():
        raise CheckpointError(
            f"trainer.resume={resume}: the directory holds no checkpoints/last.pt (a run writes it after its first "
            f"epoch or when interrupted); pass a run directory that has one, or a checkpoint file"
        )
    return last


def config_differences(
    saved: Mapping[str, Any], given: Mapping[str, Any], sections: Mapping[str, type[Section]]
) -> list[str]:
    """`model.hidden_size: 128 in the run, 64 given` for each key of `sections` whose value differs between
    the config a checkpoint was trained with and the one given now. Keys declared `execution=True` (how the
    work runs) may differ; a key the saved config lacks was declared after it was written: the run had its
    default. A key no longer declared is left out."""
    found = []
    for section, schema in sections.items():
        theirs, mine = saved.get(section) or {}, given.get(section) or {}
        declared, free = defaults(schema), execution_keys(schema)
        for key in keys(schema):
            if key in free or key not in mine:
                continue
            before = theirs.get(key, declared[key])
            if before != mine[key]:
                found.append(f"{section}.{key}: {shown(before)} in the run, {shown(mine[key])} given")
    return found


def check_resumable(
    path: Path, saved: Mapping[str, Any], given: Mapping[str, Any], sections: Mapping[str, type[Section]]
) -> None:
    """Refuse to resume from `path` (trained with the config `saved`) under `given` where a key of `sections`
    differs, naming every such key."""
    differences = config_differences(saved, given, sections)
    if differences:
        raise CheckpointError(
            f"cannot resume from {path}: {'; '.join(differences)}; resume with the run's settings (its "
            f".hydra/overrides.yaml), or start a new run without trainer.resume"
        )
