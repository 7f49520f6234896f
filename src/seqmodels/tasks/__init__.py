"""Tasks wire data, models and metrics together; `get_task` picks one by `task.kind`."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from seqmodels.schema import Section, setting, validate
from seqmodels.tasks.base import Task
from seqmodels.tasks.classification import ClassificationTask
from seqmodels.tasks.language_model import LanguageModelTask
from seqmodels.tasks.tagging import TaggingTask
from seqmodels.tasks.translation import TranslationTask

KINDS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "tagging": TaggingTask,
    "language_model": LanguageModelTask,
    "translation": TranslationTask,
}
# every kind a config may name: the kinds, and the names saved runs of earlier versions give them (`Task.aliases`)
TASKS: dict[str, type[Task]] = {**KINDS, **{alias: task for task in KINDS.values() for alias in task.aliases}}


@dataclass
class TaskChoice(Section):
    """`task.*`: set by the task presets (configs/task/), not usually on the command line."""

    name: str = setting("imdb", "the preset's name, shown in logs, metrics.json and TensorBoard")
    kind: str = setting("classification", "which Task class runs it", choices=tuple(TASKS))


def canonical_kind(kind: str) -> str:
    """The kind that runs `kind` today: itself, or the kind of which a saved run's older name is an alias."""
    return next((name for name, task in KINDS.items() if task is TASKS.get(kind)), kind)


def task_class(cfg: DictConfig) -> type[Task]:
    return TASKS[validate(TaskChoice, cfg.get("task"), "task").kind]


def get_task(cfg: DictConfig) -> Task:
    """The task of `cfg`, its `data.*` and `model.*` sections validated."""
    return task_class(cfg)(cfg)
