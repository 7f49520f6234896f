"""`model.init_from`: a new run starts from the weights of earlier ones (docs/transfer.md).

Each source is loaded as `load_run` loads any run (its task builds its model, the checkpoint fills
it); its vocabulary is the words its task's embedding rows stand for (`Task.embedding_words`), and a
language model trained with `data.reverse=true` offers its layers as backward ones. `models.transfer`
does the matching by role and shape; this prints its table before training starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from seqmodels.errors import CheckpointError, ConfigError
from seqmodels.models.transfer import ENCODER_KEYS, Source, TransferReport, transfer
from seqmodels.tasks.base import Task

log = logging.getLogger("seqmodels")


def load_source(path: str) -> tuple[Source, Any]:
    """The run at `path` (a run directory's best.pt, or a checkpoint) as a transfer source, and its config."""
    from seqmodels.inference.loading import load_run  # loading imports every task

    try:
        run = load_run(path)
    except CheckpointError as error:
        raise ConfigError(f"model.init_from={path}: {error}") from None
    kind = str(run.cfg.task.kind)
    reverse = kind == "language_model" and bool(run.cfg.data.get("reverse", False))
    settings = OmegaConf.to_container(run.cfg.model, resolve=True)
    source = Source(
        name=path,
        model=run.model,
        words=run.task.embedding_words(run.artifacts),
        reading="backward" if reverse else "forward",
        settings=settings,  # type: ignore[arg-type]
    )
    return source, run


def start_from(task: Task, model: nn.Module, artifacts: dict[str, Any]) -> TransferReport | None:
    """Copy `model.init_from`'s weights into the new `model` and log the table; None without init_from."""
    paths = task.model_config.init_from
    if not paths:
        return None
    # building the sources draws weights: training's randomness stays as it was
    with torch.random.fork_rng(devices=[]):
        return _start_from(task, paths, model, artifacts)


def _start_from(task: Task, paths: list[str], model: nn.Module, artifacts: dict[str, Any]) -> TransferReport:
    sources = []
    for path in paths:
        if not Path(path).expanduser().exists():
            raise ConfigError(f"model.init_from={path}: no such run directory or checkpoint")
        source, run = load_source(str(Path(path).expanduser()))
        source.name = path
        source.same_data = type(run.task) is type(task) and run.artifacts == artifacts
        sources.append(source)
        log.info(
            "model.init_from: %s (%s, %s%s; epoch %d)",
            path,
            run.cfg.task.name,
            run.task.describe(),
            ", read backwards" if source.reading == "backward" else "",
            run.epoch,
        )
    settings = task.model_config.as_dict()
    report = transfer(model, task.embedding_words(artifacts), settings, sources)
    others = [key for key in ENCODER_KEYS if any(settings.get(key) != s.settings.get(key) for s in sources)]
    log.info(
        "model.init_from: %d parts copied, %d remapped, %d new%s\n%s",
        report.count("copied"),
        report.count("remapped"),
        report.count("new"),
        f" (model.{', model.'.join(others)} differ)" if others else "",
        report.table(),
    )
    return report
