"""Evaluation: one pass over a split (the task's steps in eval mode, without gradients, turned into metrics),
and the final evaluation of a run's weights, which `Trainer.finish` and `scripts/evaluate.py` both run.

Every pass of a run is set up the same way (`Evaluation`): on its device, under its precision
(`trainer.precision`, `training.precision`) and limited to `trainer.limit_val_batches` batches that stand for
the split (`Loader.sample`), so `evaluate.py` reproduces the numbers of `metrics.json`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqmodels.contracts import Batch, Loader, StepOutput, TaskData
from seqmodels.tasks.base import Task
from seqmodels.training import distributed
from seqmodels.training.precision import autocast, autocast_dtype


def limited(loader: Loader, limit: int | None) -> Iterator[Batch]:
    """A pass over `loader`, or `limit` batches that stand for it (`Loader.sample`)."""
    return iter(loader) if limit is None else loader.sample(limit)


def num_batches(loader: Loader, limit: int | None) -> int:
    return len(loader) if limit is None else min(len(loader), limit)


@torch.no_grad()
def evaluate_split(
    task: Task,
    model: nn.Module,
    batches: Iterable[Batch],
    artifacts: dict[str, Any],
    split: str,
    device: torch.device,
    dtype: torch.dtype | None = None,
    sizes: list[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """The metrics of one pass over `batches`, under autocast in `dtype` (None: float32); `sizes`, if given,
    receives each batch's (tokens, examples) of this process."""
    model.eval()
    task.start_pass(model, split)
    outputs: list[StepOutput] = []
    for batch in batches:
        with autocast(dtype):
            out = task.evaluation_step(model, batch.to(device))
        out.loss = out.loss.detach().float().cpu()
        outputs.append(out)
        if sizes is not None:
            sizes.append((out.num_tokens, out.num_examples))
    # Under torchrun each rank evaluated its shard: the metrics are those of all shards together,
    # computed from every rank's outputs, so they equal a single process's on the whole split.
    return task.evaluate([out for shard in distributed.gather(outputs) for out in shard], artifacts)


@dataclass(frozen=True)
class Evaluation:
    """How a run's passes over a split run: on `device`, under autocast in `dtype` (None: float32), at most
    `limit` batches each (None: all)."""

    device: torch.device
    dtype: torch.dtype | None = None
    limit: int | None = None

    @classmethod
    def of_run(cls, trainer: Mapping[str, Any], device: torch.device, doing: str = "training") -> Evaluation:
        """The passes of a run whose `trainer.*` section is `trainer`, on `device`."""
        precision = str(trainer.get("precision", "32"))
        return cls(device, autocast_dtype(precision, device, doing), trainer.get("limit_val_batches"))

    def run(
        self,
        task: Task,
        model: nn.Module,
        loader: Loader,
        artifacts: dict[str, Any],
        split: str,
        sizes: list[tuple[int, int]] | None = None,
    ) -> dict[str, float]:
        """The metrics of one pass over `loader`."""
        batches = limited(loader, self.limit)
        return evaluate_split(task, model, batches, artifacts, split, self.device, self.dtype, sizes)


def final_evaluation(
    task: Task, model: nn.Module, data: TaskData, evaluation: Evaluation, **options: Any
) -> dict[str, Any]:
    """The final report of the weights in `model`: the task prepares it (`Task.configure_evaluation`, with a
    script's task `options`), then val, test and the extra test sets are evaluated. Returns {"val": metrics,
    "test": metrics (where there is a test set), each extra test set's name: metrics, "evaluation": what the
    task reports of its settings (if anything)}."""
    settings = task.configure_evaluation(
        model, data, lambda loader, split: evaluation.run(task, model, loader, data.artifacts, split), **options
    )
    tested = {"test": data.test} if data.test is not None else {}  # a task's data may have no test set
    splits = {"val": data.val, **tested, **data.extra_tests}
    report: dict[str, Any] = {
        split: evaluation.run(task, model, loader, data.artifacts, split) for split, loader in splits.items()
    }
    return {**report, "evaluation": settings} if settings else report
