"""One evaluation pass: the task's steps in eval mode, without gradients, turned into metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from seqmodels.tasks.base import Batch, StepOutput, Task
from seqmodels.training import distributed


@torch.no_grad()
def evaluate_split(
    task: Task,
    model: nn.Module,
    loader: Iterable[Batch],
    artifacts: dict[str, Any],
    split: str,
    device: torch.device,
    limit: int | None = None,
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    sizes: list[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """The metrics of one pass over `loader` (its first `limit` batches); `sizes`, if given, receives
    each batch's (tokens, examples) of this process."""
    model.eval()
    task.start_pass(model, split)
    outputs: list[StepOutput] = []
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            break
        with autocast():
            out = task.evaluation_step(model, batch.to(device))
        out.loss = out.loss.detach().float().cpu()
        outputs.append(out)
        if sizes is not None:
            sizes.append((out.num_tokens, out.num_examples))
    # Under torchrun each rank evaluated its shard: the metrics are those of all shards together,
    # computed from every rank's outputs, so they equal a single process's on the whole split.
    return task.evaluate([out for shard in distributed.gather(outputs) for out in shard], artifacts)
