"""Mixed precision: the precision each recurrent layer runs in is found by running one, a layer that refuses
it runs in float32 outside autocast (said once in the log), and every loss reads float32 scores. The CPU's
autocast (bfloat16) stands in for CUDA's here; the GPU check (scripts/gpu_check.sh) runs the same on CUDA."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from seqmodels.models import precision
from seqmodels.models.encoder import RecurrentEncoder
from seqmodels.models.language_model import LanguageModelConfig
from seqmodels.models.tagger import TaggerConfig
from seqmodels.training.precision import autocast_dtype

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch):
    monkeypatch.setattr(precision, "_FOUND", {})


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("impl", ["dense", "packed"])
def test_the_probe_says_the_precision_the_encoders_layers_really_run_in(cell, impl, caplog):
    encoder = RecurrentEncoder(cell, 4, 6, num_layers=2, bidirectional=True, impl=impl)
    state = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="seqmodels"), bf16():
        out = encoder(torch.randn(3, 5, 4), torch.tensor([5, 2, 4]))
    found = precision.recurrent_precision(type(encoder.forward_layers[0]), impl == "packed", CPU, torch.bfloat16)
    assert found is not None and out.outputs.dtype == found
    name = type(encoder.forward_layers[0]).__name__
    assert f"{name} layers over {impl} batches under torch.bfloat16 autocast on cpu run in {found}" in caplog.text
    torch.random.set_rng_state(state)
    assert caplog.text.count("autocast on cpu") == 1  # probed once, remembered


class RefusesHalves(nn.LSTM):
    """An LSTM whose kernel refuses reduced precision, as cuDNN before 9.13 refuses bfloat16."""

    def forward(self, input, hx=None):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED for BFloat16\nmore detail")
        return super().forward(input, hx)


def test_a_layer_that_refuses_the_precision_is_reported_once_and_runs_in_float32(monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="seqmodels"):
        assert precision.recurrent_precision(RefusesHalves, True, CPU, torch.bfloat16) is None
    assert (
        "RefusesHalves layers over packed batches under torch.bfloat16 autocast on cpu fail (cuDNN error: "
        "CUDNN_STATUS_NOT_SUPPORTED for BFloat16): they run in float32, the rest of the model in torch.bfloat16"
        in caplog.text
    )
    monkeypatch.setitem(precision._FOUND, (nn.LSTM, True, "cpu", torch.bfloat16), None)  # as if LSTMs refused it
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", 4, 6, num_layers=2, impl="packed").eval()
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    with bf16():
        mixed = encoder(x, lengths)
        assert nn.Linear(6, 2)(mixed.outputs).dtype == torch.bfloat16  # autocast is back on after the encoder
    exact = encoder(x, lengths)
    assert mixed.outputs.dtype == torch.float32
    torch.testing.assert_close(mixed.outputs, exact.outputs)
    with bf16():  # a carried language-model state in another precision is read as float32 too
        continued = encoder(x, lengths, tuple(tuple(t.bfloat16() for t in layer) for layer in exact.state))
    assert continued.outputs.dtype == torch.float32


def test_losses_read_float32_scores_under_mixed_precision():
    torch.manual_seed(0)
    tokens, lengths = torch.randint(2, 20, (3, 6)), torch.tensor([6, 4, 2])
    tags = torch.randint(0, 5, (3, 6))
    for crf in (False, True):
        tagger = TaggerConfig(crf=crf).build(
            20, 5, num_chars=10, num_shapes=4, unk_id=1, singletons_from=20, forbidden=None
        )
        chars = torch.randint(1, 10, (3, 6, 4)) if tagger.chars is not None else None
        shapes = torch.randint(0, 4, (3, 6)) if tagger.shapes is not None else None
        with bf16():
            emissions = tagger(tokens, lengths, chars, shapes)
            assert tagger.loss(emissions, tags, lengths).dtype == torch.float32
    for cutoffs in (None, [5, 10]):
        model = LanguageModelConfig(adaptive_cutoffs=cutoffs, tie_weights=False).build(20, ignore_index=-100)
        with bf16():
            log_probs, hidden, _ = model.score(tokens, None, tokens)
        assert log_probs.dtype == torch.float32 and hidden.dtype == torch.bfloat16


def test_bf16_on_a_gpu_without_bfloat16_trains_in_float32_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    cuda = torch.device("cuda")
    with caplog.at_level(logging.WARNING, logger="seqmodels"):
        assert autocast_dtype("bf16", cuda) is None
    assert "trainer.precision=bf16 needs a GPU with bfloat16 (Ampere or newer); training in float32 on Tesla T4" in (
        caplog.text
    )
    assert autocast_dtype("16", cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
