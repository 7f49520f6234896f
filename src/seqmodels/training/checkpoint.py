"""Checkpoints: everything needed to predict and to resume, written atomically, loaded safely.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs pickled code. Its layout is
`training_state`: the weights that are evaluated and predicted with (`model`: the moving average where
the run keeps one, the trained weights beside it as `trained_model`), the optimizer, schedule and
gradient scaler, where the loop stands (`LoopState`), the resolved config and the prepared data's
artifacts (vocabulary, labels).

Resuming (`trainer.resume`) is allowed from a checkpoint of the same task, model and data settings:
`check_resumable` is that rule, applied before any data is read (and before Hydra rewrites a run
directory's record: `seqmodels.cli`); `resume_training` then also requires the same prepared data, and
continues a checkpoint of N processes in M.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from seqmodels.atomic import copy_file, save_torch
from seqmodels.errors import CheckpointError
from seqmodels.schema import Section, defaults, execution_keys, keys, shown

if TYPE_CHECKING:
    from seqmodels.training.averaging import MovingAverage
    from seqmodels.training.optim import LRSchedule

log = logging.getLogger("seqmodels")

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


@dataclass
class Best:
    """The best validation so far: its epoch (0: none yet) and the monitored metric's value."""

    epoch: int = 0
    value: float | None = None

    def improved_by(self, value: float, mode: str) -> bool:
        if self.value is None:
            return True
        return value > self.value if mode == "max" else value < self.value


@dataclass
class Position:
    """How far into the current epoch training is: what a mid-epoch checkpoint must remember."""

    batches: int = 0
    loss_sum: float = 0.0
    examples: int = 0


@dataclass
class LoopState:
    """Where the training loop stands: completed epochs, the position within the next one, optimizer steps,
    the best epoch so far and each epoch's record."""

    epoch: int
    position: Position
    global_step: int
    best: Best
    history: list[dict[str, Any]]


@dataclass
class Trained:
    """What training changes besides the loop's counters: the model as trained, the moving average of its
    weights (None without `trainer.ema_decay`), the optimizer, the learning-rate schedule, the gradient scaler."""

    model: nn.Module
    average: MovingAverage | None
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation, test, best.pt and predict use: the average where there is one."""
        return self.model if self.average is None else self.average.module


def training_state(
    trained: Trained,
    loop: LoopState,
    *,
    ranks: int,
    metrics: dict[str, float],
    config: Any,
    artifacts: dict[str, Any],
) -> dict[str, Any]:
    """A checkpoint's contents (`save_checkpoint` writes them). `ranks`: the processes that trained it (the
    position counts one rank's batches); `metrics`: the validation of its epoch ({} mid-epoch); `config`:
    the resolved config; `artifacts`: the prepared data's."""
    averaging = (
        {}
        if trained.average is None
        else {  # "model" is the average; training resumes from these
            "trained_model": trained.model.state_dict(),
            "average_updates": int(trained.average.n_averaged),
        }
    )
    return {
        "model": trained.evaluated.state_dict(),
        **averaging,
        "optimizer": trained.optimizer.state_dict(),
        "schedule": trained.schedule.state_dict(),
        "scaler": trained.scaler.state_dict(),
        "epoch": loop.epoch,
        "position": asdict(loop.position),
        "ranks": ranks,
        "global_step": loop.global_step,
        "best": {"epoch": loop.best.epoch, "value": loop.best.value},
        "metrics": metrics,
        "history": loop.history,
        "config": config,
        "artifacts": artifacts,
        "torch_rng": torch.get_rng_state(),
    }


def resume_training(
    path: Path, trained: Trained, artifacts: dict[str, Any], ranks: int, device: torch.device
) -> LoopState:
    """Load the checkpoint at `path` into `trained` (its settings are this run's: `check_resumable`) and return
    where its loop stood. Refused when it was trained on other prepared data than `artifacts`; a checkpoint of
    another number of processes than `ranks` continues its epoch at the same place."""
    state = load_checkpoint(path, map_location=device)
    if state["artifacts"] != artifacts:
        raise CheckpointError(
            f"{path} was trained on other prepared data (vocabulary or labels differ); resume "
            f"with the data.* settings of the original run"
        )
    trained.model.load_state_dict(state.get("trained_model", state["model"]))
    if trained.average is not None:  # from a run without an average: 0 updates, it starts from these weights
        trained.average.module.load_state_dict(state["model"])
        trained.average.n_averaged.fill_(state.get("average_updates", 0))
    trained.optimizer.load_state_dict(state["optimizer"])
    trained.schedule.load_state_dict(state["schedule"])
    trained.scaler.load_state_dict(state["scaler"])
    position, best = Position(**state["position"]), Best(**state["best"])
    loop = LoopState(state["epoch"], position, state["global_step"], best, list(state["history"]))
    saved_ranks = state.get("ranks", 1)
    if saved_ranks != ranks and loop.position.batches:
        # each rank read position.batches of the epoch's batches dealt round-robin: skip as many in all
        loop.position.batches = -(-loop.position.batches * saved_ranks // ranks)
        log.warning(
            "checkpoint of %d processes resumed by %d: the rest of epoch %d starts at the same place "
            "but its batches are dealt differently",
            saved_ranks,
            ranks,
            loop.epoch + 1,
        )
    torch.set_rng_state(state["torch_rng"])
    return loop


def carry_best(resumed: Path, checkpoints: Path) -> None:
    """Resumed into a new run directory, a run takes the source run's best.pt along, so that its final
    evaluation (and predict) finds the best epoch so far even if no later epoch is better."""
    source, best = Path(resumed).parent / "best.pt", checkpoints / "best.pt"
    if source.is_file() and not best.exists():
        copy_file(source, best)


def evaluated_weights(path: Path) -> dict[str, Any]:
    """The state dict of the weights a checkpoint is evaluated and predicted with, on the CPU."""
    return load_checkpoint(path, map_location="cpu")["model"]
