"""Model shapes, parameter counts against the textbook formulas, and padding invariance."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from seqmodels.models import ClassifierConfig, SequenceClassifier
from seqmodels.models.encoder import RecurrentEncoder, reverse_within_lengths
from seqmodels.models.summary import parameter_rows, parameter_table, recurrent_formula

CELLS = ["rnn", "gru", "lstm"]
VARIANTS = list(itertools.product(CELLS, [False, True], [1, 3]))


@pytest.mark.parametrize("cell,bidirectional,layers", VARIANTS)
def test_encoder_shapes(cell, bidirectional, layers):
    encoder = RecurrentEncoder(cell, input_size=5, hidden_size=7, num_layers=layers, bidirectional=bidirectional)
    out = encoder(torch.randn(4, 9, 5), torch.tensor([9, 3, 1, 6]))
    directions = 2 if bidirectional else 1
    assert out.outputs.shape == (4, 9, 7 * directions)
    assert out.final.shape == (4, 7 * directions)


@pytest.mark.parametrize("cell,bidirectional,layers", VARIANTS)
def test_parameter_count_equals_formula_and_torch(cell, bidirectional, layers):
    d, h = 10, 6
    encoder = RecurrentEncoder(cell, d, h, num_layers=layers, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    # layer 1 reads the input; deeper layers read both directions of the layer below
    expected = directions * gates * (d * h + h * h + 2 * h)
    expected += (layers - 1) * directions * gates * (directions * h * h + h * h + 2 * h)
    assert sum(p.numel() for p in encoder.parameters()) == expected
    reference = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](
        d, h, num_layers=layers, bidirectional=bidirectional
    )
    assert sum(p.numel() for p in reference.parameters()) == expected


def test_formula_matches_a_worked_example():
    # LSTM with d=128, h=256: 4 * (128*256 + 256*256 + 2*256) = 395,264
    assert recurrent_formula("lstm", 128, 256) == ("4*(128*256 + 256*256 + 2*256)", 395_264)
    assert recurrent_formula("gru", 32, 5)[1] == 3 * (32 * 5 + 25 + 10)
    assert recurrent_formula("rnn", 32, 5)[1] == 32 * 5 + 25 + 10


def test_parameter_table_lists_every_layer_and_the_total():
    config = ClassifierConfig(cell="gru", embedding_dim=8, hidden_size=4, num_layers=2, bidirectional=True)
    model = SequenceClassifier(config, 100, 2)
    rows = {row.name: row for row in parameter_rows(model)}
    assert set(rows) == {
        "embedding",
        "encoder.forward_layers.0",
        "encoder.forward_layers.1",
        "encoder.backward_layers.0",
        "encoder.backward_layers.1",
        "head",
    }
    assert rows["embedding"].count == 800
    assert rows["encoder.forward_layers.1"].formula == "3*(8*4 + 4*4 + 2*4)"  # input = both directions
    total = sum(p.numel() for p in model.parameters())
    assert sum(row.count for row in rows.values()) == total
    assert f"{total:,}" in parameter_table(model).splitlines()[-1]


def test_reverse_within_lengths_keeps_padding_in_place_and_is_its_own_inverse():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]]).unsqueeze(-1)
    lengths = torch.tensor([3, 2, 1])
    flipped = reverse_within_lengths(x, lengths)
    assert flipped.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [6, 0, 0, 0]]
    assert torch.equal(reverse_within_lengths(flipped, lengths), x)


@pytest.mark.parametrize("pooling", ["last", "meanmax"])
@pytest.mark.parametrize("cell,bidirectional,layers", VARIANTS)
def test_padding_does_not_change_a_reviews_logits(cell, bidirectional, layers, pooling):
    torch.manual_seed(0)
    config = ClassifierConfig(
        cell=cell,
        embedding_dim=6,
        hidden_size=5,
        num_layers=layers,
        bidirectional=bidirectional,
        dropout=0.2,
        pooling=pooling,
    )
    model = SequenceClassifier(config, 50, 2).eval()
    review = torch.randint(2, 50, (7,))
    alone = model(review.unsqueeze(0), torch.tensor([7]))
    longer = torch.randint(2, 50, (2, 19))
    batch = torch.zeros(3, 19, dtype=torch.long)
    batch[0], batch[1, :7], batch[2, :12] = longer[0], review, longer[1, :12]
    together = model(batch, torch.tensor([19, 7, 12]))
    assert torch.allclose(alone[0], together[1], atol=1e-5), (alone, together)
    # and the padding value itself is irrelevant
    batch[1, 7:] = 42
    assert torch.allclose(alone[0], model(batch, torch.tensor([19, 7, 12]))[1], atol=1e-5)


def test_backward_direction_starts_at_the_last_real_token():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("gru", 3, 4, bidirectional=True).eval()
    x = torch.randn(1, 5, 3)
    # The backward state at position 4 (the last real token) has seen only that token:
    # it equals a fresh GRU step on x[4] from a zero state.
    out = encoder(torch.cat([x, torch.randn(1, 3, 3)], dim=1), torch.tensor([5])).outputs
    single, _ = encoder.backward_layers[0](x[:, 4:5])
    assert torch.allclose(out[0, 4, 4:], single[0, 0], atol=1e-6)
