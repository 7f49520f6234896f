"""How a model shows the hidden states that the gradient-flow measurement reads.

Any module with `record_steps` and `recorded` takes part (`models.encoder.RecurrentEncoder` is
one): while `record_steps` is n, each forward pass keeps, per direction of its top layer, the
state tensors h_t of at least the last n steps of every sequence in `recorded`, as tensors that
the rest of the pass reads, so autograd gives the whole dL/dh_t. With `record_steps` None it
records nothing. `training.gradient_flow` finds such modules by this protocol, knowing no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class RecordedStates:
    """One direction of the top layer, as recorded while `record_steps` is set."""

    states: list[torch.Tensor]  # h at processing steps first_step, first_step + 1, ...; each (1, B, hidden)
    first_step: int
    lengths: torch.Tensor  # (B,) real lengths: a sequence's pass ends at processing step length - 1
    direction: str  # "forward" | "backward" (the backward pass reads each sequence reversed)


@runtime_checkable
class RecordsHiddenStates(Protocol):
    record_steps: int | None
    recorded: list[RecordedStates]
