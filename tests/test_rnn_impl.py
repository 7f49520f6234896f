"""The encoder's two implementations (`model.rnn_impl`): the per-layer dense run and one fused torch RNN
over packed sequences compute the same function of the same parameters, store the same state dict and
serve every use of the encoder (a language model's carried state, the gradient-flow recording, EMA
copies, dropout between layers)."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from conftest import TINY, composed
from seqmodels import load_run
from seqmodels.errors import CheckpointError, ConfigError
from seqmodels.models import LanguageModel
from seqmodels.models.classifier import ClassifierConfig
from seqmodels.models.encoder import RecurrentEncoder
from seqmodels.models.language_model import LanguageModelConfig
from seqmodels.models.seq2seq import Seq2SeqConfig
from seqmodels.models.summary import parameter_rows
from seqmodels.models.tagger import TaggerConfig
from seqmodels.train import check_config, run
from seqmodels.training.gradient_flow import recording_hidden_states

LENGTHS = torch.tensor([6, 3, 1, 5])  # padded to 6, one sequence of a single token


def run_encoder(encoder: RecurrentEncoder, impl: str, x: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor):
    """Outputs at real positions, final states and every gradient of a loss that reads both."""
    encoder.impl = impl
    x = x.detach().clone().requires_grad_()
    encoder.zero_grad()
    out = encoder(x, lengths)
    real = (torch.arange(x.shape[1])[None] < lengths[:, None]).unsqueeze(-1)
    ((out.outputs * real * weights).sum() + out.final.pow(2).sum()).backward()
    return out.outputs * real, out.final, x.grad, {name: p.grad.clone() for name, p in encoder.named_parameters()}


@pytest.mark.parametrize(
    "cell, layers, bidirectional", list(itertools.product(["rnn", "gru", "lstm"], [1, 2, 3], [False, True]))
)
def test_dense_and_packed_give_the_same_outputs_and_gradients(cell, layers, bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, 5, 7, num_layers=layers, bidirectional=bidirectional, dropout=0.5).eval()
    x, weights = torch.randn(4, 6, 5), torch.randn(4, 6, encoder.output_size)
    dense = run_encoder(encoder, "dense", x, LENGTHS, weights)
    packed = run_encoder(encoder, "packed", x, LENGTHS, weights)
    for a, b in zip(dense[:3], packed[:3]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert dense[3].keys() == packed[3].keys() and len(dense[3]) == 4 * layers * (2 if bidirectional else 1)
    for name in dense[3]:
        torch.testing.assert_close(dense[3][name], packed[3][name], atol=1e-5, rtol=1e-5, msg=name)


def test_both_store_the_same_parameters_once_and_the_table_still_checks_the_formulas():
    encoder = RecurrentEncoder("lstm", 5, 7, num_layers=2, bidirectional=True, impl="packed")
    before = dict(encoder.state_dict())
    encoder(torch.randn(4, 6, 5), LENGTHS)  # builds the fused stack
    assert encoder.state_dict().keys() == before.keys()  # no second copy under another name
    assert len(list(encoder.parameters())) == 16
    stack = encoder.packed_stack()
    assert stack.weight_hh_l1_reverse is encoder.backward_layers[1].weight_hh_l0  # the same objects
    rows = parameter_rows(encoder)
    assert [r.name for r in rows] == ["forward_layers.0", "forward_layers.1", "backward_layers.0", "backward_layers.1"]


def test_a_run_trained_packed_loads_into_a_dense_model_and_computes_the_same():
    torch.manual_seed(1)
    packed = RecurrentEncoder("gru", 5, 7, num_layers=2, bidirectional=True, impl="packed")
    optimizer = torch.optim.SGD(packed.parameters(), lr=0.5)
    x = torch.randn(4, 6, 5)
    packed(x, LENGTHS).final.sum().backward()
    optimizer.step()  # the fused stack's updates land in the per-layer parameters
    dense = RecurrentEncoder("gru", 5, 7, num_layers=2, bidirectional=True, impl="dense")
    dense.load_state_dict(packed.state_dict())
    torch.testing.assert_close(dense(x, LENGTHS).final, packed(x, LENGTHS).final)


def test_auto_runs_packed_on_cuda_and_dense_elsewhere_and_recording_or_export_run_dense():
    encoder = RecurrentEncoder("lstm", 3, 4)
    assert encoder.impl == "auto"
    assert not encoder.runs_packed(torch.device("cpu")) and encoder.runs_packed(torch.device("cuda"))
    encoder.impl = "packed"
    assert encoder.runs_packed(torch.device("cpu"))
    encoder.record_steps = 3
    assert not encoder.runs_packed(torch.device("cuda"))


def test_a_language_model_carries_its_state_across_windows_the_same_way_in_both():
    torch.manual_seed(2)
    config = LanguageModelConfig(cell="lstm", embedding_dim=6, hidden_size=8, num_layers=2, dropout=0.0)
    model = LanguageModel(config, 50).eval()
    tokens = torch.randint(0, 50, (3, 12))
    results = {}
    for impl in ("dense", "packed"):
        model.encoder.impl = impl
        whole, whole_state = model(tokens)
        first, state = model(tokens[:, :5])
        second, state = model(tokens[:, 5:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=1e-5)
        results[impl] = (whole, whole_state)
    torch.testing.assert_close(results["dense"][0], results["packed"][0], atol=1e-5, rtol=1e-5)
    for dense_layer, packed_layer in zip(results["dense"][1], results["packed"][1]):
        for a, b in zip(dense_layer, packed_layer):
            assert a.shape == b.shape == (1, 3, 8)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_gradient_flow_recording_works_on_a_packed_encoder():
    encoder = RecurrentEncoder("rnn", 3, 5, bidirectional=True, impl="packed")
    x = torch.randn(2, 7, 3)
    with recording_hidden_states(encoder, 4):
        out = encoder(x, torch.tensor([7, 5]))
        recorded = list(encoder.recorded)
    assert [r.direction for r in recorded] == ["forward", "backward"]
    torch.testing.assert_close(out.final, run_encoder(encoder, "packed", x, torch.tensor([7, 5]), torch.zeros(1))[1])


def test_dropout_between_layers_follows_train_and_eval_in_the_fused_stack():
    torch.manual_seed(3)
    encoder = RecurrentEncoder("lstm", 4, 6, num_layers=2, dropout=0.5, impl="packed")
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 4, 2])
    encoder.train()
    assert not torch.equal(encoder(x, lengths).final, encoder(x, lengths).final)  # dropped at random
    encoder.eval()
    assert torch.equal(encoder(x, lengths).final, encoder(x, lengths).final)
    encoder.impl = "dense"
    torch.testing.assert_close(encoder(x, lengths).final, run_encoder(encoder, "packed", x, lengths, torch.zeros(1))[1])


def test_a_copy_of_a_packed_encoder_runs_on_its_own_parameters():
    """AveragedModel (trainer.ema_decay) deep-copies the model after the fused stack may exist."""
    encoder = RecurrentEncoder("gru", 4, 6, num_layers=2, impl="packed").eval()
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 4, 2])
    before = encoder(x, lengths).final.detach()
    twin = copy.deepcopy(encoder)
    with torch.no_grad():
        twin.forward_layers[1].weight_hh_l0.add_(1.0)
    assert twin.packed_stack().weight_hh_l1 is twin.forward_layers[1].weight_hh_l0
    torch.testing.assert_close(encoder(x, lengths).final, before)  # the original is untouched
    twin_packed = twin(x, lengths).final
    twin.impl = "dense"
    torch.testing.assert_close(twin(x, lengths).final, twin_packed)
    assert not torch.allclose(twin_packed, before)


def test_the_config_key_reaches_every_model_and_refuses_an_unknown_implementation():
    models = [
        ClassifierConfig(rnn_impl="packed").build(20, 2),
        TaggerConfig(rnn_impl="packed").build(
            20, 5, num_chars=10, num_shapes=4, unk_id=1, singletons_from=20, forbidden=None
        ),
        LanguageModelConfig(rnn_impl="packed").build(20, ignore_index=-100),
        Seq2SeqConfig(rnn_impl="packed").build(20, 20, bos_id=1, eos_id=2),
    ]
    for model in models:
        assert {m.impl for m in model.modules() if isinstance(m, RecurrentEncoder)} == {"packed"}, model
    with pytest.raises(
        ConfigError, match=r"model.rnn_impl='cudnn' is unknown; use one of \['auto', 'dense', 'packed'\]"
    ):
        check_config(composed("model.rnn_impl=cudnn"))


@pytest.mark.parametrize("task", ["imdb", "conll2003"])
def test_a_run_trained_packed_predicts_the_same_when_loaded_dense(task, tmp_path, data_root):
    overrides = {"imdb": ["model.bidirectional=true", "model.num_layers=2"], "conll2003": ["model.crf=true"]}[task]
    cfg = composed(
        *TINY,
        f"task={task}",
        *overrides,
        "model.rnn_impl=packed",
        "trainer.limit_train_batches=3",
        f"data.root={data_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    results = run(cfg, tmp_path / "run")
    text = {"imdb": "a fine film , well acted", "conll2003": "John lives in Berlin ."}[task]
    loaded = load_run(tmp_path / "run")
    assert loaded.config.model.rnn_impl == "packed"
    packed = loaded.predict(text)
    for module in loaded.model.modules():
        if isinstance(module, RecurrentEncoder):
            module.impl = "dense"
    assert loaded.predict(text) == packed  # probabilities are rounded to 4 places
    assert results["test"]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_packed_state_of_a_padded_batch_is_each_sequences_own_in_the_batchs_order(cell):
    torch.manual_seed(4)
    encoder = RecurrentEncoder(cell, 5, 7, num_layers=2, impl="packed").eval()
    x = torch.randn(4, 6, 5)
    start = tuple(tuple(torch.randn(1, 4, 7) for _ in range(2 if cell == "lstm" else 1)) for _ in range(2))
    out = encoder(x, LENGTHS, start)
    for row, length in enumerate(LENGTHS.tolist()):
        own_start = tuple(tuple(t[:, row : row + 1] for t in layer) for layer in start)
        alone = encoder(x[row : row + 1, :length], torch.tensor([length]), own_start)
        torch.testing.assert_close(out.outputs[row, :length], alone.outputs[0], atol=1e-5, rtol=1e-5)
        for layer, alone_layer in zip(out.state, alone.state):
            for batch_part, own_part in zip(layer, alone_layer):
                torch.testing.assert_close(batch_part[:, row], own_part[:, 0], atol=1e-5, rtol=1e-5)


def test_a_run_resumes_with_the_other_implementation_but_not_with_another_model(tmp_path, data_root):
    def config(*overrides: str):
        return composed(
            *TINY,
            "task=imdb",
            "trainer.limit_train_batches=2",
            f"data.root={data_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            *overrides,
        )

    run(config("model.rnn_impl=dense"), tmp_path / "first")
    resumed = run(
        config("model.rnn_impl=packed", "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first'}"),
        tmp_path / "second",
    )
    assert [entry["epoch"] for entry in resumed["history"]] == [1, 2]
    with pytest.raises(CheckpointError, match="model.hidden_size: 12 in the run, 16 given"):
        run(
            config("model.hidden_size=16", "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first'}"),
            tmp_path / "third",
        )
