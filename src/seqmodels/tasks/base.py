"""What a task is: the only thing the trainer knows about data, models and metrics.

A task reads its data (`prepare`), puts a head on the recurrent encoder (`build_model`),
computes a batch's loss (`step`), turns the outputs of an evaluation pass into metrics
(`evaluate`) and answers a user's text (`predict`). Adding a task means writing one of
these and registering it in `seqmodels.tasks`; the trainer loop never changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn


@dataclass
class Batch:
    """A batch of tensors; `to` moves every tensor field to a device."""

    def to(self, device: torch.device) -> "Batch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=True)
        return type(self)(**moved)


@dataclass
class StepOutput:
    loss: torch.Tensor  # mean loss of the batch, what the optimizer minimises
    num_tokens: int  # real (non-padding) input tokens, for throughput
    num_examples: int
    details: Any = None  # whatever `evaluate` needs from this batch, on the CPU


@dataclass
class TaskData:
    train: Iterable[Batch]
    val: Iterable[Batch]
    test: Iterable[Batch]
    # Plain strings and numbers that prediction needs (tokenizer, label names, sizes). They
    # are stored in every checkpoint, so a run directory is enough to predict.
    artifacts: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)  # sizes and stats printed at start


class Task(ABC):
    #: the validation metric that selects the best checkpoint and that sweeps optimise
    monitor: str
    #: "max" if a larger `monitor` is better, else "min"
    mode: str

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def prepare(self) -> TaskData: ...

    @abstractmethod
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module: ...

    @abstractmethod
    def step(self, model: nn.Module, batch: Batch) -> StepOutput: ...

    @abstractmethod
    def evaluate(self, outputs: list[StepOutput]) -> dict[str, float]: ...

    @abstractmethod
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        """The answer to a user's text. `options` come from the command line (e.g. temperature,
        top_k, length, seed for sampling); a task uses those it knows and ignores the rest."""

    def start_pass(self, model: nn.Module, split: str) -> None:
        """Called before each pass over `split` ("train", "val", "test"): the place to reset
        state that lives across batches (e.g. a language model's carried hidden state)."""

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """Markdown texts logged to TensorBoard after each validation (e.g. sampled sentences)."""
        return {}

    def hparams(self) -> dict[str, Any]:
        """Hyper-parameters shown against final metrics in TensorBoard's HPARAMS view."""
        model = self.cfg.model
        return {
            "task": self.cfg.task.name,
            "cell": model.cell,
            "num_layers": model.num_layers,
            "bidirectional": model.bidirectional,
            "hidden_size": model.hidden_size,
            "embedding_dim": model.embedding_dim,
            "dropout": model.dropout,
            "optimizer": self.cfg.optim.name,
            "lr": self.cfg.optim.lr,
            "batch_size": self.cfg.data.batch_size,
            "seed": self.cfg.seed,
        }
