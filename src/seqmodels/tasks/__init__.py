"""Tasks wire data, models and metrics together; `get_task` picks one by `task.kind`."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from seqmodels.schema import Section, setting, validate
from seqmodels.tasks.base import Task
from seqmodels.tasks.language_model import LanguageModelTask
from seqmodels.tasks.sentiment import SentimentTask
from seqmodels.tasks.tagging import TaggingTask
from seqmodels.tasks.translation import TranslationTask

TASKS: dict[str, type[Task]] = {
    "sentiment": SentimentTask,
    "tagging": TaggingTask,
    "language_model": LanguageModelTask,
    "translation": TranslationTask,
}


@dataclass
class TaskChoice(Section):
    """`task.*`: set by the task presets (configs/task/), not usually on the command line."""

    name: str = setting("imdb", "the preset's name, shown in logs, metrics.json and TensorBoard")
    kind: str = setting("sentiment", "which Task class runs it", choices=tuple(TASKS))


def task_class(cfg: DictConfig) -> type[Task]:
    return TASKS[validate(TaskChoice, cfg.get("task"), "task").kind]


def get_task(cfg: DictConfig) -> Task:
    """The task of `cfg`, its `data.*` and `model.*` sections validated."""
    return task_class(cfg)(cfg)
