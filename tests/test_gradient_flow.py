"""Gradient flow through time: the measurement on problems whose answer is known, the encoder's
recording mode, and what a run leaves in its directory and in TensorBoard."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from conftest import TINY, composed
from seqmodels.models.encoder import RecurrentEncoder
from seqmodels.models.recording import RecordedStates
from seqmodels.tasks.base import StepOutput, Task
from seqmodels.train import run
from seqmodels.training.gradient_flow import (
    FILENAME,
    gradient_norms_by_distance,
    measure,
    record_gradient_flow,
    recording_hidden_states,
)

W = 0.5  # the fixed recurrent weight of the toy problems: dL/dh_t shrinks as W ** distance


def linear_rnn(x: torch.Tensor, lengths: torch.Tensor, first_step: int = 0) -> tuple[torch.Tensor, RecordedStates]:
    """h_t = W h_{t-1} + x_t, by hand; the loss is the sum of each sequence's state at its last real token."""
    batch, steps, size = x.shape
    h = torch.zeros(batch, size)
    x = x.requires_grad_()  # so that the states are part of a graph
    states = []
    for t in range(steps):
        h = W * h + x[:, t]
        if t >= first_step:
            states.append(h)
    last = torch.stack(states, 1)[torch.arange(batch), lengths - 1 - first_step]
    return last.sum(), RecordedStates(states, first_step, lengths, "forward")


def test_a_linear_rnn_gradient_shrinks_geometrically_with_distance_from_the_loss():
    size = 4
    lengths = torch.tensor([6, 4, 6])
    loss, recorded = linear_rnn(torch.randn(3, 6, size), lengths)
    curve = gradient_norms_by_distance(loss, {"toy": [recorded]}, max_distance=20)["toy"]
    # dL/dh_t = W^(length-1-t) * ones(size) for every sequence: the norm is sqrt(size) * W^k
    assert len(curve) == 6  # distances 0..5 occur; longer ones do not
    assert curve == pytest.approx([math.sqrt(size) * W**k for k in range(6)], rel=1e-6)


def test_distances_are_counted_from_each_sequences_own_end_and_capped():
    lengths = torch.tensor([9, 7])
    loss, recorded = linear_rnn(torch.randn(2, 9, 3), lengths, first_step=2)  # states from step 2 on only
    curve = gradient_norms_by_distance(loss, {"toy": [recorded]}, max_distance=5)["toy"]
    assert curve == pytest.approx([math.sqrt(3) * W**k for k in range(5)], rel=1e-6)


class EncoderOnly(nn.Module):
    def __init__(self, encoder: RecurrentEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x, lengths):
        return self.encoder(x, lengths)


class FinalStateTask(Task):
    """A many-to-one task without data: the loss reads the encoder's final state only."""

    monitor, mode = "loss", "min"

    def __init__(self) -> None:
        super().__init__(OmegaConf.create({}))
        self.passes = []

    def prepare(self): ...
    def build_model(self, artifacts): ...
    def evaluate(self, outputs, artifacts): ...
    def predict(self, model, artifacts, text, **options): ...

    def start_pass(self, model, split):
        self.passes.append(split)

    def step(self, model, batch):
        x, lengths = batch
        loss = model(x, lengths).final.sum()
        return StepOutput(loss, int(lengths.sum()), len(lengths))


def nearly_linear_encoder(bidirectional: bool) -> RecurrentEncoder:
    """A tanh RNN with W_hh = W * I and no biases: with tiny inputs tanh is the identity."""
    encoder = RecurrentEncoder("rnn", 3, 5, bidirectional=bidirectional)
    with torch.no_grad():
        for rnn in [*encoder.forward_layers, *encoder.backward_layers]:
            rnn.weight_hh_l0.copy_(W * torch.eye(5))
            rnn.bias_hh_l0.zero_()
            rnn.bias_ih_l0.zero_()
    return encoder


@pytest.mark.parametrize("bidirectional", [False, True])
def test_measure_finds_the_encoder_and_sees_the_geometric_decay(bidirectional):
    torch.manual_seed(0)
    model = EncoderOnly(nearly_linear_encoder(bidirectional))
    model.train()
    task = FinalStateTask()
    lengths = torch.tensor([12, 9, 12])
    curves = measure(task, model, (1e-4 * torch.randn(3, 12, 3), lengths), steps=30)
    assert list(curves) == ["encoder"] and len(curves["encoder"]) == 12
    relative = [v / curves["encoder"][0] for v in curves["encoder"]]
    assert relative == pytest.approx([W**k for k in range(12)], rel=1e-3)
    # a measurement changes nothing: no parameter gradients, the mode restored, recording off again
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model.encoder.record_steps is None and model.encoder.recorded == []
    assert task.passes == ["val"]


@pytest.mark.parametrize(
    "cell,bidirectional,layers", list(itertools.product(["rnn", "gru", "lstm"], [False, True], [1, 2]))
)
def test_recording_gives_the_same_outputs(cell, bidirectional, layers):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, 4, 6, num_layers=layers, bidirectional=bidirectional).eval()
    x, lengths = torch.randn(3, 10, 4), torch.tensor([10, 7, 8])
    plain = encoder(x, lengths)
    with recording_hidden_states(encoder, steps=3) as encoders:
        recorded = encoder(x, lengths)
        records = encoders["encoder"].recorded
    torch.testing.assert_close(recorded.outputs, plain.outputs)
    torch.testing.assert_close(recorded.final, plain.final)
    if not bidirectional:
        torch.testing.assert_close(recorded.state, plain.state)
    # the top layer only, each direction once; fused up to min(length) - steps, then step by step
    assert [r.direction for r in records] == (["forward", "backward"] if bidirectional else ["forward"])
    assert all(r.first_step == 7 - 3 and len(r.states) == 10 - 4 for r in records)


class FakeLogger:
    def __init__(self) -> None:
        self.scalars, self.figures = {}, []

    def scalar(self, tag, value, step):
        self.scalars[(tag, step)] = value

    def figure(self, tag, figure, step):
        self.figures.append((tag, step))


def test_gradient_flow_json_keeps_one_curve_per_epoch_and_a_resumed_run_replaces_later_ones(tmp_path):
    model = EncoderOnly(nearly_linear_encoder(False))
    batch = (1e-4 * torch.randn(2, 15, 3), torch.tensor([15, 12]))
    logger = FakeLogger()
    for epoch in (1, 2, 3, 2):  # the last: a run resumed after epoch 1 measures epoch 2 again
        record_gradient_flow(FinalStateTask(), model, batch, epoch, 12, tmp_path, logger)
    record = json.loads((tmp_path / FILENAME).read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert len(record["epochs"][0]["curves"]["encoder"]) == 12 and record["x"].startswith("k:")
    assert ("vitals/gradient_flow_k0", 2) in logger.scalars and ("vitals/gradient_flow_k10", 2) in logger.scalars
    assert logger.figures[-1] == ("vitals/gradient_flow", 2)
    assert record_gradient_flow(FinalStateTask(), model, None, 4, 12, tmp_path, logger) == {}  # no batch: nothing


@pytest.mark.parametrize("task", ["imdb", "conll2003", "ptb"])
def test_a_run_writes_the_curve_of_every_epoch_and_plots_it_in_tensorboard(task, tmp_path, data_root):
    extra = {"imdb": ["model.bidirectional=true"], "conll2003": ["model.crf=true"], "ptb": ["data.bptt=8"]}[task]
    cfg = composed(
        *TINY,
        f"task={task}",
        *extra,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.gradient_flow_steps=6",
        f"data.root={data_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    run(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / FILENAME).read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    curve = record["epochs"][-1]["curves"]["encoder"]
    assert 1 <= len(curve) <= 6 and all(v is not None and v >= 0 for v in curve) and curve[0] > 0
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("vitals/gradient_flow")) == 2
    assert "vitals/gradient_flow_k0" in events.Tags()["scalars"]


def test_gradient_flow_can_be_turned_off(tmp_path, data_root):
    cfg = composed(
        *TINY,
        "trainer.gradient_flow=false",
        "trainer.limit_train_batches=1",
        f"data.root={data_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / FILENAME).exists()
