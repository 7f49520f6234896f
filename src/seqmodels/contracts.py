"""The types the trainer loop, the tasks and the data pipelines share: a batch (`Batch`), what a split's
batches offer the loop (`Loader`), what a task's data preparation returns (`TaskData`), what a step returns
(`StepOutput`, the list of which `Task.evaluate` receives) and a batch of answers (`Answers`).

It imports nothing of the package, so `data/`, `tasks/` and `training/` all import it and none of them
imports another for these types. The rules the loop relies on are in `seqmodels.tasks.base`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch


@dataclass
class Batch:
    """A batch of tensors; `to` moves every tensor field but the `host_fields` to a device."""

    #: the tensor fields that stay on the CPU (see `seqmodels.tasks.base`)
    host_fields: ClassVar[tuple[str, ...]] = ("lengths",)

    def to(self, device: torch.device) -> Batch:
        """The batch on `device`, copied without waiting: on CUDA from page-locked (pinned) memory, so the
        copy runs beside the kernels already queued and the next batch is assembled meanwhile."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor) and name not in self.host_fields:
                if device.type == "cuda" and value.device.type == "cpu":
                    value = value.pin_memory()
                moved[name] = value.to(device, non_blocking=True)
        return type(self)(**moved)


@dataclass
class Showcase:
    """A few validation examples a task picks once (in `prepare`) and shows with the model's outputs after
    every validation (`examples`)."""

    batch: Batch  # the examples as one batch, on the CPU
    texts: list[Any]  # how each example reads (a review's text, a sentence's words)


@dataclass
class StepOutput:
    loss: torch.Tensor  # mean loss of the batch, what the optimizer minimises
    num_tokens: int  # real (non-padding) input tokens, for throughput: counted on the host
    num_examples: int
    details: Any = None  # whatever `evaluate` needs from this batch, on the CPU (eval mode only)


@dataclass
class Answers:
    """A batch of texts answered together: one answer per text, in the texts' order."""

    results: list[dict[str, Any]]
    tokens: int = 0  # tokens the model read, for throughput
    cut: int = 0  # texts cut to the run's data.max_length


@runtime_checkable
class Loader(Protocol):
    """What the trainer needs of a split's batches (`data.batching.BatchLoader`, `data.corpus.StreamWindows`)."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None:
        """The order of the next pass: shuffled reproducibly per epoch, or unchanged."""

    def shard(self, rank: int, num_ranks: int) -> None:
        """From now on yield only this rank's share of the batches (ValueError if there are too few)."""

    def sample(self, count: int) -> Iterator[Batch]:
        """At most `count` batches of a pass that stand for the whole split (`trainer.limit_train_batches`,
        `limit_val_batches`): spread evenly over a pass in a fixed order (batches sorted by length); the
        first ones of a shuffled pass, or where batches must follow each other (a text's windows)."""
        ...


@dataclass
class TaskData:
    train: Loader
    val: Loader
    test: Loader | None  # None: no test set (e.g. a user's data without one); the run reports validation only
    # Plain strings and numbers that prediction needs (tokenizer, label names, sizes). They
    # are stored in every checkpoint, so a run directory is enough to predict.
    artifacts: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)  # sizes and stats printed at start
    # more test sets, by name, evaluated with `test` at the end and reported beside it
    extra_tests: dict[str, Loader] = field(default_factory=dict)


# One evaluation pass over a split's batches, run as the final evaluation runs (the run's device, precision
# and batch limit): metrics = evaluate(loader, split). What `Task.configure_evaluation` may use to choose
# its settings on validation.
SplitPass = Callable[[Loader, str], dict[str, float]]
