"""Gradient flow through time: how much of the loss's gradient reaches each hidden state.

After each validation the trainer hands one validation batch to `record_gradient_flow`. The
model runs it once in eval mode (no dropout) with gradients on, every module of the model that
records hidden states (`models.recording.RecordsHiddenStates`, e.g. the recurrent encoder)
recording its top layer's, and autograd gives dL/dh_t for each step t. Parameters' gradients are
not touched (only the states are asked for), nor is any optimizer or random state, so training
continues exactly as without it.

The curve: for each distance k = 0, 1, 2, ... the mean over the batch of ||dL/dh_t|| at the
step t that lies k steps before the end of the sequence's pass (its last real token for the
forward direction, its first token for the backward direction of a bidirectional encoder;
both directions are averaged into one curve). What that means per task:

- many-to-one (sentiment) with `model.pooling=last`: the loss reads h only at the end of the
  pass, so k is the distance from the loss and the curve is the textbook picture: it falls
  off geometrically when gradients vanish (a simple RNN) and stays up when they do not
  (LSTM, GRU). With mean/max pooling every step also gets a direct share of the gradient.
- a loss at every token (NER, language models): k is the number of later tokens whose loss
  can reach h_t through the recurrence (for a language model, steps before the end of the
  window). Vanishing gradients give a flat curve (each state feels only its own token's loss);
  gradients that carry far make it rise with k.

`gradient_flow.json` in the run directory keeps the curve of every epoch (`scripts/compare.py`
overlays the runs'), TensorBoard gets a plot of the curves so far (IMAGES tab) and a few points
as scalars (`vitals/gradient_flow_k0`, `_k10`, `_k50`).

The batch: the trainer picks one validation batch once and measures it every epoch, so the epochs'
curves compare: the shortest batch whose sequences reach `trainer.gradient_flow_steps` tokens on
average, else the longest one (`choose_batch`). A batch of short sequences would give a curve of a
few points only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqmodels.atomic import save_json
from seqmodels.models.modes import evaluating
from seqmodels.models.recording import RecordedStates, RecordsHiddenStates
from seqmodels.tasks.base import Batch, Task

log = logging.getLogger("seqmodels")

FILENAME = "gradient_flow.json"
X_LABEL = "k: steps before the end of the sequence's pass"
Y_LABEL = "mean ||dL/dh_t|| over the batch"
SCALAR_DISTANCES = (0, 10, 50)
# TensorBoard: the plot (IMAGES) and `<TAG>_k0`, `_k10`, `_k50` (SCALARS), among the diagnostics
TAG = "vitals/gradient_flow"


@contextlib.contextmanager
def recording_hidden_states(model: nn.Module, steps: int) -> Iterator[dict[str, RecordsHiddenStates]]:
    """Every module of `model` that records hidden states (by module name) records at least its
    last `steps` states while the context is open."""
    encoders: dict[str, RecordsHiddenStates] = {
        name or "encoder": module for name, module in model.named_modules() if isinstance(module, RecordsHiddenStates)
    }
    for encoder in encoders.values():
        encoder.record_steps, encoder.recorded = steps, []
    try:
        yield encoders
    finally:
        for encoder in encoders.values():
            encoder.record_steps, encoder.recorded = None, []


def gradient_norms_by_distance(
    loss: torch.Tensor, recorded: Mapping[str, Sequence[RecordedStates]], max_distance: int
) -> dict[str, list[float]]:
    """For each name, [mean over examples of ||dL/dh_t|| at distance k from the end of the pass,
    for k = 0 .. max_distance - 1]; the list stops at the longest distance any sequence has."""
    tensors = [h for name in recorded for record in recorded[name] for h in record.states]
    if not tensors or not loss.requires_grad:
        return {}
    grads = iter(torch.autograd.grad(loss, tensors, allow_unused=True))
    curves: dict[str, list[float]] = {}
    for name, records in recorded.items():
        sums = torch.zeros(max_distance, dtype=torch.float64)
        counts = torch.zeros(max_distance, dtype=torch.float64)
        for record in records:
            for offset in range(len(record.states)):
                grad = next(grads)
                norms = (
                    torch.zeros(len(record.lengths))
                    if grad is None
                    else grad.detach().float().norm(dim=-1).reshape(-1).cpu()
                )
                distance = record.lengths - 1 - (record.first_step + offset)
                inside = (distance >= 0) & (distance < max_distance)
                sums.index_add_(0, distance[inside], norms[inside].double())
                counts.index_add_(0, distance[inside], torch.ones(int(inside.sum()), dtype=torch.float64))
        seen = int((counts > 0).sum())  # distances 0 .. seen-1 occur (every sequence has length >= 1)
        curves[name] = (sums[:seen] / counts[:seen]).tolist()
    return curves


def measure(task: Task, model: nn.Module, batch: Batch, steps: int) -> dict[str, list[float]]:
    """The gradient-flow curve of every recurrent encoder in `model` on one batch (see above)."""
    with evaluating(model):
        task.start_pass(model, "val")  # e.g. a language model starts from a zero state, as a pass does
        # cuDNN's RNN has no backward in eval mode; the native kernels do (same numbers)
        with (
            torch.enable_grad(),
            torch.backends.cudnn.flags(enabled=False),
            recording_hidden_states(model, steps) as encoders,
        ):
            out = task.step(model, batch)
            recorded = {name: list(encoder.recorded) for name, encoder in encoders.items()}
            return gradient_norms_by_distance(out.loss.float(), recorded, steps)


def choose_batch(sizes: list[tuple[int, int]], steps: int) -> int | None:
    """Which of the validation batches (tokens, examples) the measurement takes: the shortest whose mean
    length reaches `steps`, else the longest (the one with the longest sequences); None if none."""
    lengths = [tokens / max(examples, 1) for tokens, examples in sizes]
    if not lengths:
        return None
    long_enough = [i for i, length in enumerate(lengths) if length >= steps]
    if long_enough:
        return min(long_enough, key=lambda i: (lengths[i], i))
    return max(range(len(lengths)), key=lambda i: (lengths[i], -i))


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]  # JSON has no NaN


def load(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / FILENAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def plot(ax, curves: dict[str, list[float | None]], label: str = "", **style: Any) -> None:
    """Draw curves on a matplotlib Axes (log scale; zeros and gaps left out)."""
    for name, values in curves.items():
        points = [(k, v) for k, v in enumerate(values) if v is not None and v > 0]
        if points:
            text = label if len(curves) == 1 else f"{label} {name}".strip()
            ax.plot([k for k, _ in points], [v for _, v in points], label=text or None, **style)
    ax.set_yscale("log")


def _figure(epochs: list[dict[str, Any]], title: str):
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.add_subplot()
    for index, entry in enumerate(epochs):
        newest = index == len(epochs) - 1
        shade = 0.25 + 0.75 * (index + 1) / len(epochs)
        plot(
            ax,
            entry["curves"],
            f"epoch {entry['epoch']}",
            color=(0.1, 0.3, 0.8, shade),
            linewidth=2.0 if newest else 1.0,
        )
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    return figure


def record_gradient_flow(
    task: Task,
    model: nn.Module,
    batch: Batch | None,
    epoch: int,
    steps: int,
    run_dir: Path,
    logger,
    global_step: int | None = None,
) -> dict[str, list[float]]:
    """Measure the curves for `epoch`, add them to gradient_flow.json and log them to TensorBoard at
    `global_step` (the x axis of every chart; default: the epoch)."""
    step = epoch if global_step is None else global_step
    curves = {} if batch is None else measure(task, model, batch, steps)
    if not curves:
        return curves
    path = Path(run_dir) / FILENAME
    record = load(run_dir) or {}
    # a resumed run replaces what a previous attempt logged for this epoch and later ones
    epochs = [e for e in record.get("epochs", []) if e["epoch"] < epoch]
    epochs.append({"epoch": epoch, "curves": {name: _finite(values) for name, values in curves.items()}})
    save_json({"x": X_LABEL, "y": Y_LABEL, "steps": steps, "epochs": epochs}, path)
    for name, values in curves.items():
        prefix = TAG if len(curves) == 1 else f"{TAG}_{name}"
        for k in SCALAR_DISTANCES:
            if k < len(values) and math.isfinite(values[k]):
                logger.scalar(f"{prefix}_k{k}", values[k], step)
    try:
        logger.figure(TAG, _figure(epochs, "gradient flow through time"), step)
    except ImportError:  # matplotlib is a dependency, but a missing plot must not stop a run
        log.warning("matplotlib is not installed: no gradient-flow plot in TensorBoard")
    return curves
