"""ONNX export: the graph onnxruntime runs answers as PyTorch does (1e-5), on batches of another size and
other lengths than the export's example, bidirectional and stacked encoders included; the tags decoded
from the exported emissions are PyTorch's; a task without an export says so in one line."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from seqmodels.config import compose_config
from seqmodels.data import conll
from seqmodels.errors import ConfigError
from seqmodels.inference.export import export_onnx, main, sidecar_path
from seqmodels.inference.onnx_decoding import decode_tags
from seqmodels.tasks import get_task

TINY = ["model.embedding_dim=8", "model.hidden_size=12"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def prepared(data_root, tmp_path_factory):
    """task preset -> (task, artifacts) on the fixture data, each prepared once."""
    cache = tmp_path_factory.mktemp("cache")
    found = {}

    def get(preset: str, *overrides: str):
        cfg = compose_config([f"task={preset}", *TINY, *overrides, f"data.root={data_root}", f"data.cache_dir={cache}"])
        task = get_task(cfg)
        if preset not in found:
            found[preset] = task.prepare().artifacts
        return task, found[preset]

    return get


def exported(task, artifacts, tmp_path):
    torch.manual_seed(0)
    model = task.build_model(artifacts).eval()
    path = tmp_path / "model.onnx"
    sidecar = export_onnx(task, model, artifacts, path)
    assert json.loads(sidecar_path(path).read_text()) == sidecar
    return model, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), sidecar


def padded_ids(num_words: int, lengths: list[int], seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, num_words, (len(lengths), max(lengths)), generator=generator)
    return ids * (torch.arange(max(lengths)) < torch.tensor(lengths).unsqueeze(1))


LENGTHS = [9, 7, 7, 3, 1]  # five rows (the export's example has two), none as long as another's padding


@pytest.mark.parametrize(
    "model",
    [
        ["model=lstm"],
        ["model=gru", "model.bidirectional=true", "model.num_layers=2", "model.pooling=meanmax"],
        ["model=rnn", "model.bidirectional=true", "model.pooling=last"],
    ],
    ids=["lstm", "bigru-x2-meanmax", "birnn-last"],
)
def test_classifier_graph_answers_as_pytorch(prepared, tmp_path, model):
    task, artifacts = prepared("imdb", *model)
    torch_model, session, sidecar = exported(task, artifacts, tmp_path)
    tokens, lengths = padded_ids(artifacts["vocab_size"], LENGTHS), torch.tensor(LENGTHS)
    (probabilities,) = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        expected = torch_model(tokens, lengths).softmax(-1).numpy()
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities, expected, atol=TOLERANCE, rtol=0)
    assert sidecar["labels"] == ["negative", "positive"] and sidecar["inputs"] == ["tokens", "lengths"]
    # a row's answer does not depend on the padding around it, in the graph too
    (alone,) = session.run(None, {"tokens": tokens[3:4, :3].numpy(), "lengths": lengths[3:4].numpy()})
    np.testing.assert_allclose(alone[0], probabilities[3], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(
    "model",
    [
        ["model=bilstm", "model.crf=true", "model.char_dim=6", "model.shape_dim=3", "model.attention_dim=5"],
        ["model=gru", "model.bidirectional=true", "model.num_layers=2", "model.valid_tags=true"],
        ["model=lstm"],
    ],
    ids=["bilstm-crf-chars-shapes-attention", "bigru-x2-valid-tags", "lstm-argmax"],
)
def test_tagger_emissions_and_decoded_tags_match_pytorch(prepared, tmp_path, model):
    task, artifacts = prepared("conll2003", *model)
    torch_model, session, sidecar = exported(task, artifacts, tmp_path)
    tokens, lengths = padded_ids(len(artifacts["words"]), LENGTHS), torch.tensor(LENGTHS)
    real = tokens != 0
    generator = torch.Generator().manual_seed(2)
    chars = torch.randint(1, len(artifacts["chars"]), (*tokens.shape, 6), generator=generator)
    chars = chars * real.unsqueeze(-1) * (torch.arange(6) < torch.randint(1, 7, tokens.shape).unsqueeze(-1))
    shapes = torch.randint(1, len(conll.SHAPES), tokens.shape, generator=generator) * real
    feeds = {"tokens": tokens, "lengths": lengths, "chars": chars, "shapes": shapes}
    (emissions,) = session.run(None, {name: feeds[name].numpy() for name in sidecar["inputs"]})
    with torch.no_grad():
        expected = torch_model(tokens, lengths, chars, shapes)
        tags = torch_model.decode(expected, lengths)
    real_positions = real.numpy()
    np.testing.assert_allclose(emissions[real_positions], expected.numpy()[real_positions], atol=TOLERANCE, rtol=0)
    decoded = decode_tags(emissions, lengths.numpy(), sidecar["decoding"])
    assert decoded == [row[:n] for row, n in zip(tags.tolist(), LENGTHS)]
    assert sidecar["tags"] == artifacts["tags"]


@pytest.mark.parametrize(
    "model",
    [["model=lstm", "model.num_layers=2"], ["model=gru"], ["model=lstm", "model.adaptive_cutoffs=[10]"]],
    ids=["lstm-x2", "gru", "adaptive-softmax"],
)
def test_language_model_step_carries_its_state_as_pytorch(prepared, tmp_path, model):
    task, artifacts = prepared("ptb", *model)
    torch_model, session, sidecar = exported(task, artifacts, tmp_path)
    parts = sidecar["state"]["inputs"]
    layers, hidden = sidecar["state"]["layers"], sidecar["state"]["hidden"]
    state = {part: np.zeros((layers, 3, hidden), dtype=np.float32) for part in parts}
    torch_state = None
    for step, steps in enumerate([6, 1, 1]):  # a prompt, then a token at a time
        tokens = padded_ids(artifacts["vocab_size"], [steps] * 3, seed=step)
        log_probs, *outputs = session.run(None, {"tokens": tokens.numpy(), **state})
        with torch.no_grad():
            logits, torch_state = torch_model(tokens, torch_state)
        np.testing.assert_allclose(log_probs, logits.log_softmax(-1).numpy(), atol=TOLERANCE, rtol=0)
        state = dict(zip(parts, outputs))
        for index, part in enumerate(parts):
            expected = torch.cat([layer[index] for layer in torch_state]).numpy()
            np.testing.assert_allclose(state[part], expected, atol=TOLERANCE, rtol=0)
    assert log_probs.shape == (3, 1, artifacts["vocab_size"])
    assert sidecar["vocabulary"] == artifacts["vocabulary"]


def test_a_task_without_an_export_says_so_in_one_line(capsys, tmp_path):
    task = get_task(compose_config(["task=multi30k"]))
    with pytest.raises(ConfigError, match="cannot be exported to ONNX; sentiment, NER and language-model runs can"):
        export_onnx(task, torch.nn.Linear(1, 1), {}, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no checkpoint at") and error.count("\n") == 1
