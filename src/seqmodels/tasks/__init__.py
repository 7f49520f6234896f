"""Tasks wire data, models and metrics together; `get_task` picks one by `task.kind`."""

from __future__ import annotations

from omegaconf import DictConfig

from seqmodels.errors import ConfigError
from seqmodels.tasks.base import Task
from seqmodels.tasks.language_model import LanguageModelTask
from seqmodels.tasks.ner import NerTask
from seqmodels.tasks.sentiment import SentimentTask

TASKS: dict[str, type[Task]] = {"sentiment": SentimentTask, "ner": NerTask, "language_model": LanguageModelTask}


def get_task(cfg: DictConfig) -> Task:
    kind = cfg.task.kind
    if kind not in TASKS:
        raise ConfigError(f"task.kind={kind!r} is unknown; use one of {sorted(TASKS)}")
    return TASKS[kind](cfg)
