"""Language models: reading corpora, the stream layout, the carried state, perplexity, sampling,
downloads, and `train.py task=ptb|wikitext2|chars` with `scripts/predict.py` end to end."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import zipfile
from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, cli_env, run_script, train, write_ptb, write_wikitext2
from helpers.checkpoints import layout, save_run
from seqmodels import load_run
from seqmodels.config import compose_config
from seqmodels.data import ptb, wikitext2
from seqmodels.data.corpus import (
    EOS,
    IGNORE,
    UNKNOWN,
    UNKNOWN_CHAR,
    StreamWindows,
    build_vocabulary,
    encode,
    lay_out,
    read_text,
    read_words,
    split_by_fractions,
)
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.language_model_data import LanguageModelArtifacts
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import LanguageModel, LanguageModelConfig
from seqmodels.models.cache import ContinuousCache
from seqmodels.models.encoder import RecurrentEncoder
from seqmodels.models.language_model import sample
from seqmodels.models.summary import parameter_rows
from seqmodels.tasks import get_task
from seqmodels.tasks.classification import ClassificationTask
from seqmodels.tasks.language_model import TextWindow

pytestmark = pytest.mark.usefixtures("one_thread")


def lm_cfg(root, cache, *overrides, task="ptb"):
    return compose_config(
        [
            f"task={task}",
            f"data.root={root}",
            f"data.cache_dir={cache}",
            "data.download=false",
            "model.embedding_dim=8",
            "model.hidden_size=8",
            *overrides,
        ]
    )


def word_artifacts(count: int) -> dict:
    """The artifacts of a word-level corpus of `count` words."""
    return LanguageModelArtifacts("word", [f"w{i}" for i in range(count)], None, "w0").as_dict()


def env_for(data_root, tmp_path) -> dict[str, str]:
    return cli_env(data_root, tmp_path / "cache")


# -- reading -----------------------------------------------------------------------------------
def test_every_line_is_its_words_and_an_eos_empty_lines_too(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(" the cat \n\n = Title = \n", encoding="utf-8")
    assert read_words(path) == ["the", "cat", EOS, EOS, "=", "Title", "=", EOS]


def test_the_vocabulary_is_the_texts_own_most_frequent_first():
    assert build_vocabulary(["c", "a", "b", "a", EOS, "b", "a"]) == ["a", "b", "c", EOS]  # frequency, then first seen
    assert build_vocabulary("abcab", unknown=UNKNOWN) == [UNKNOWN, "a", "b", "c"]
    assert encode(["a", "z"], [UNKNOWN, "a"], UNKNOWN).tolist() == [1, 0]
    with pytest.raises(DataError, match="'z' is not in the training vocabulary"):
        encode(["a", "z"], ["a"], None)


def test_characters_are_split_into_contiguous_parts():
    text = "abcdefghijklmnopqrst"
    parts = split_by_fractions(text, 0.1, 0.15)  # 2 and 3 characters
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (15, 2, 3)
    assert parts["train"] + parts["val"] + parts["test"] == text


def test_characters_unseen_in_training_become_the_replacement_character(data_root, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("ab" * 20 + "abc" + "abx", encoding="utf-8")  # 46 characters: val "abc", test "abx"
    cfg = lm_cfg(
        data_root, tmp_path, f"data.path={text}", "data.val_fraction=0.07", "data.test_fraction=0.07", task="chars"
    )
    task = get_task(cfg)
    data = task.prepare()
    assert data.artifacts["vocabulary"] == [UNKNOWN_CHAR, "a", "b"] and data.artifacts["start"] == "a"
    assert data.test.streams.targets[data.test.streams.targets != IGNORE].tolist() == [2, 0]


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    refusal = rf"^{path}:1: byte 4 \(0xe9\) is not utf-8; name the file's encoding with data.encoding=ENCODING"
    with pytest.raises(DataError, match=refusal):
        read_text(path)
    with pytest.raises(DataError, match=refusal):
        read_words(path)
    assert read_words(path, TextEncoding("latin-1")) == ["caf\xe9", "au", "lait", "<eos>"]
    assert read_words(path, TextEncoding(errors="replace")) == ["caf\ufffd", "au", "lait", "<eos>"]


def test_a_word_file_is_decoded_by_data_encoding_which_keys_its_cache(data_root, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("".join(f"le caf\xe9 {n} au lait\n" for n in range(40)).encode("latin-1"))

    def vocabulary(*overrides):
        cfg = lm_cfg(
            data_root, tmp_path / "cache", f"data.path={path}", "model.adaptive_cutoffs=null", *overrides, task="words"
        )
        return get_task(cfg).prepare().artifacts["vocabulary"]

    with pytest.raises(DataError) as refused:
        vocabulary()
    assert str(refused.value) == (
        f"{path.resolve()}:1: byte 7 (0xe9) is not utf-8; name the file's encoding with data.encoding=ENCODING "
        f"(e.g. latin-1), convert the file (iconv -f ENCODING -t utf-8), or read on with data.encoding_errors=replace"
    )
    assert "caf\ufffd" in vocabulary("data.encoding_errors=replace")
    # the same file and cache: the decoding is part of the cache key, so latin-1 is read anew
    latin1 = vocabulary("data.encoding=latin-1")
    assert "caf\xe9" in latin1 and "caf\ufffd" not in latin1


# -- layout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,streams,bptt", [(2, 1, 1), (11, 3, 4), (50, 7, 5), (101, 20, 35), (10, 8, 3)])
def test_every_token_but_the_first_is_a_target_exactly_once(n, streams, bptt):
    ids = torch.arange(n) + 100  # token at position i is i + 100: a target is its input plus one
    layout = lay_out(ids, streams)
    windows = list(StreamWindows(layout, bptt, lambda inputs, targets: (inputs, targets)))
    assert len(windows) == len(StreamWindows(layout, bptt, None)) == math.ceil(layout.inputs.shape[1] / bptt)
    assert all(w[0].shape[1] == bptt for w in windows[:-1]) and 1 <= windows[-1][0].shape[1] <= bptt
    inputs = torch.cat([w[0] for w in windows], dim=1)
    targets = torch.cat([w[1] for w in windows], dim=1)
    assert torch.equal(inputs, layout.inputs) and torch.equal(targets, layout.targets)
    real = targets != IGNORE
    assert Counter(targets[real].tolist()) == Counter(ids[1:].tolist())  # each once, none missing
    assert torch.equal(targets[real], inputs[real] + 1)  # the next token of each input
    assert layout.num_targets == n - 1
    assert all(bool((w[1] != IGNORE).any()) for w in windows)  # no window without a target
    # each stream continues the text where the previous one stops
    assert torch.equal(inputs.reshape(-1)[: n - 1], ids[:-1])


def test_a_text_too_short_to_predict_is_refused():
    with pytest.raises(ValueError, match="nothing to predict"):
        lay_out(torch.tensor([7]), 2)


# -- carried state -----------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_a_carried_state_continues_the_sequence(cell, layers):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, 4, 5, num_layers=layers).eval()
    x = torch.randn(2, 9, 4)
    whole = encoder(x, torch.tensor([9, 9]))
    first = encoder(x[:, :4], torch.tensor([4, 4]))
    second = encoder(x[:, 4:], torch.tensor([5, 5]), state=first.state)
    assert torch.allclose(torch.cat([first.outputs, second.outputs], dim=1), whole.outputs, atol=1e-6)
    assert len(whole.state) == layers and len(whole.state[0]) == (2 if cell == "lstm" else 1)
    fresh = encoder(x[:, 4:], torch.tensor([5, 5]))
    assert not torch.allclose(fresh.outputs, second.outputs, atol=1e-4)


def test_a_bidirectional_encoder_takes_no_state():
    encoder = RecurrentEncoder("gru", 3, 4, bidirectional=True)
    out = encoder(torch.randn(1, 5, 3), torch.tensor([5]))
    assert out.state is None
    with pytest.raises(ValueError, match="bidirectional encoder cannot continue"):
        encoder(torch.randn(1, 5, 3), torch.tensor([5]), state=((torch.zeros(1, 1, 4),),))


@pytest.fixture()
def ptb_task(data_root, tmp_path):
    def make(*overrides):
        cfg = lm_cfg(data_root, tmp_path / "cache", "data.eval_batch_size=3", "data.bptt=7", *overrides)
        task = get_task(cfg)
        data = task.prepare()
        torch.manual_seed(0)
        return task, data, task.build_model(data.artifacts)

    return make


def whole_stream_loss(model, layout) -> tuple[float, int]:
    """Each stream read in one call, no windows: what windowed reading with a carried state must equal."""
    logits, _ = model(layout.inputs)
    loss = F.cross_entropy(logits.flatten(0, 1), layout.targets.flatten(), ignore_index=IGNORE, reduction="sum")
    return float(loss), layout.num_targets


def test_the_state_carries_across_windows_and_resets_at_each_pass(ptb_task):
    task, data, model = ptb_task()
    model.eval()
    with torch.no_grad():
        for weight in model.parameters():
            weight.mul_(10)  # an untrained model's outputs barely depend on its state: make them
        task.start_pass(model, "val")
        outputs = [task.step(model, window) for window in data.val]
        expected_sum, expected_count = whole_stream_loss(model, data.val.streams)
        assert len(outputs) > 2 and sum(o.details[1] for o in outputs) == expected_count
        assert sum(o.details[0] for o in outputs) == pytest.approx(expected_sum, rel=1e-5)
        # the trainer weighs losses and throughput by these: the window's target tokens
        assert all(o.num_examples == o.num_tokens == o.details[1] for o in outputs)
        # a pass that forgot the state at every window would score differently ...
        forgetful = 0.0
        for window in data.val:
            task.start_pass(model, "val")
            forgetful += task.step(model, window).details[0]
        assert forgetful != pytest.approx(expected_sum, rel=1e-4)
        # ... and a new pass starts from zeros, not from where the last one stopped
        task.start_pass(model, "val")
        again = [task.step(model, window) for window in data.val]
        assert task.evaluate(again, data.artifacts) == task.evaluate(outputs, data.artifacts)


def test_training_windows_carry_a_detached_state(ptb_task):
    task, data, model = ptb_task()
    model.train()
    task.start_pass(model, "train")
    window = next(iter(data.train))
    out = task.step(model, window)
    out.loss.backward()  # gradients stop at the window boundary ...
    assert task._state is not None and not any(t.requires_grad for layer in task._state for t in layer)
    task.step(model, window).loss.backward()  # ... so the next window's backward does not reach into this one
    task.start_pass(model, "val")
    assert task._state is None


def test_perplexity_of_a_model_that_knows_nothing_is_the_vocabulary_size(ptb_task):
    task, data, model = ptb_task()
    model.eval()  # as evaluation runs steps: the losses read on the host
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()  # every logit 0: a uniform distribution over the vocabulary
    task.start_pass(model, "test")
    with torch.no_grad():
        metrics = task.evaluate([task.step(model, window) for window in data.test], data.artifacts)
    assert metrics["perplexity"] == pytest.approx(data.artifacts["vocab_size"], rel=1e-5)
    assert metrics["loss"] == pytest.approx(math.log(data.artifacts["vocab_size"]), rel=1e-6)


def test_perplexity_is_exp_of_the_mean_token_loss_computed_by_hand(ptb_task):
    task, _, _ = ptb_task()
    torch.manual_seed(1)
    model = LanguageModel(LanguageModelConfig(cell="lstm", embedding_dim=3, hidden_size=4, dropout=0.0), 6).eval()
    ids = torch.tensor([0, 3, 5, 1, 1, 2, 4, 0])  # 7 targets in 2 streams of 4 pairs, 1 padding position
    layout = lay_out(ids, 2)
    task.start_pass(model, "test")
    with torch.no_grad():
        metrics = task.evaluate([task.step(model, w) for w in StreamWindows(layout, 3, TextWindow)], {})
        # by hand: stream 0 predicts ids[1:5] from ids[0:4]; stream 1 predicts ids[5:8] from ids[4:7]
        negative_log_likelihood = 0.0
        for start, stop in ((0, 4), (4, 7)):
            logits, _ = model(ids[start:stop].unsqueeze(0))
            for step, target in enumerate(ids[start + 1 : stop + 1].tolist()):
                probabilities = logits[0, step].softmax(-1)
                negative_log_likelihood -= math.log(float(probabilities[target]))
    assert metrics["loss"] == pytest.approx(negative_log_likelihood / 7, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(negative_log_likelihood / 7), rel=1e-5)


def test_an_adaptive_softmax_scores_a_distribution_and_its_loss_is_the_targets_log_likelihood(ptb_task):
    task, data, model = ptb_task("model.adaptive_cutoffs=[4,10]", "model.hidden_size=16")
    assert model.adaptive is not None and model.decoder is None
    model.eval()
    window = next(iter(data.val))
    with torch.no_grad():
        task.start_pass(model, "val")
        scores, _ = model(window.inputs)
        assert scores.shape == (*window.inputs.shape, data.artifacts["vocab_size"])
        assert torch.allclose(scores.exp().sum(-1), torch.ones(window.inputs.shape), atol=1e-5)  # log-probabilities
        real = window.targets != IGNORE
        by_hand = -scores[real].gather(1, window.targets[real].unsqueeze(1)).sum()
        out = task.step(model, window)
    assert out.details[0] == pytest.approx(float(by_hand), rel=1e-5) and out.details[1] == int(real.sum())


def test_the_adaptive_softmax_needs_sensible_cutoffs_and_no_tied_weights(data_root, tmp_path):
    task = get_task(lm_cfg(data_root, tmp_path, "model.adaptive_cutoffs=[4,100]", "model.hidden_size=16"))
    with pytest.raises(ConfigError, match=r"model.adaptive_cutoffs=\[4, 100\] is impossible for a vocabulary of 23"):
        task.build_model(word_artifacts(23))
    for overrides, message in [
        (["model.adaptive_cutoffs=4"], "use a list of word counts"),
        (
            ["model.adaptive_cutoffs=[4,10]", "model.hidden_size=12"],
            r"too many for model.hidden_size=12 .* use at most 1 cutoffs",
        ),
        (
            ["model.adaptive_cutoffs=[4,10]", "model.tie_weights=true", "model.hidden_size=8"],
            "model.tie_weights=true needs a full softmax",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            get_task(lm_cfg(data_root, tmp_path, *overrides))


# -- model options and refusals ----------------------------------------------------------------
def test_tied_weights_share_one_matrix_and_need_equal_sizes(data_root, tmp_path):
    tied = LanguageModelConfig(cell="gru", embedding_dim=6, hidden_size=6, num_layers=2, tie_weights=True)
    model = LanguageModel(tied, 30)
    assert model.decoder.weight is model.embedding.weight
    assert model.decoder.weight.data_ptr() == model.embedding.weight.data_ptr()
    untied = LanguageModel(replace(tied, tie_weights=False), 30)
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in model.parameters()) == 30 * 6
    reloaded = LanguageModel(tied, 30)
    reloaded.load_state_dict(model.state_dict())
    assert reloaded.decoder.weight.data_ptr() == reloaded.embedding.weight.data_ptr()
    rows = {row.name: row for row in parameter_rows(model)}  # the startup table counts the matrix once
    assert rows["decoder"].count == 30 and "shared with embedding" in rows["decoder"].formula
    assert sum(row.count for row in rows.values()) == sum(p.numel() for p in model.parameters())
    with pytest.raises(
        ConfigError,
        match=r"model.tie_weights=true needs model.embedding_dim == model.hidden_size "
        r"\(got 8 and 12\)",
    ):
        get_task(lm_cfg(data_root, tmp_path, "model.tie_weights=true", "model.hidden_size=12"))


@pytest.mark.parametrize(
    "task,overrides,message",
    [
        ("ptb", ["model.bidirectional=true"], "model.bidirectional=true cannot predict the next token"),
        ("wikitext2", ["model=bilstm"], "model.bidirectional=true cannot predict the next token"),
        ("ptb", ["data.bptt=0"], "data.bptt=0 is impossible"),
        ("chars", [], "task=chars needs a text file: add data.path="),
        (
            "chars",
            ["data.path=x.txt", "data.val_fraction=0.6", "data.test_fraction=0.5"],
            "data.val_fraction=0.6 and data.test_fraction=0.5 are impossible",
        ),
    ],
)
def test_impossible_language_model_settings_are_refused_before_reading_data(task, overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        get_task(lm_cfg(tmp_path / "no-data", tmp_path, *overrides, task=task))


def test_every_left_to_right_cell_and_depth_builds(data_root, tmp_path):
    for cell in ("rnn", "gru", "lstm"):
        task = get_task(lm_cfg(data_root, tmp_path, f"model={cell}", "model.num_layers=3"))
        model = task.build_model(word_artifacts(11))
        logits, state = model(torch.randint(11, (2, 5)))
        assert logits.shape == (2, 5, 11) and len(state) == 3


# -- sampling and prediction -------------------------------------------------------------------
def test_sampling_is_reproducible_under_a_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(cell="lstm", embedding_dim=4, hidden_size=4, dropout=0.0), 50).eval()
    rng = torch.get_rng_state()
    first = sample(model, [1, 2], 20, num_samples=2, generator=torch.Generator().manual_seed(3))
    second = sample(model, [1, 2], 20, num_samples=2, generator=torch.Generator().manual_seed(3))
    other = sample(model, [1, 2], 20, num_samples=2, generator=torch.Generator().manual_seed(4))
    assert first == second and first != other and len(first) == 2 and len(first[0]) == 20
    assert torch.equal(torch.get_rng_state(), rng)
    greedy = sample(model, [1, 2], 5, top_k=1)[0]
    context = [1, 2]
    for token in greedy:  # top_k=1 is the most likely token at every step
        logits, _ = model(torch.tensor([context]))
        assert token == int(logits[0, -1].argmax())
        context.append(token)


def test_predict_lists_the_top_k_and_samples_a_continuation(ptb_task):
    task, data, model = ptb_task()
    answer = task.predict(model, data.artifacts, "The cat jumped", top_k=3, length=5, seed=7, ignored_option=1)
    assert [entry["probability"] for entry in answer["next"]] == sorted(
        (entry["probability"] for entry in answer["next"]), reverse=True
    )
    assert len(answer["next"]) == 3 and all(e["token"] in data.artifacts["vocabulary"] for e in answer["next"])
    assert len(answer["continuation"].split()) == 5
    assert answer["unknown"] == ["jumped"]  # "The" is read as PTB's "the"; "jumped" is not a word of the corpus
    assert task.predict(model, data.artifacts, "The cat jumped", top_k=3, length=5, seed=7) == answer
    with pytest.raises(ConfigError, match="temperature=0 is impossible"):
        task.predict(model, data.artifacts, "the cat", temperature=0)
    with pytest.raises(ConfigError, match="--top-k=0 is impossible"):
        task.predict(model, data.artifacts, "the cat", top_k=0)


def test_sentiment_predict_accepts_and_ignores_sampling_options():
    parameters = inspect.signature(ClassificationTask.predict).parameters.values()
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# -- files and downloads -----------------------------------------------------------------------
def test_missing_corpora_name_their_files_and_folder(tmp_path):
    with pytest.raises(
        DataError,
        match=r"Penn Treebank not found in .*ptb \(missing: ptb.train.txt, ptb.valid.txt, "
        r"ptb.test.txt\): put .* in .*ptb",
    ):
        ptb.locate(tmp_path, allow_download=False)
    with pytest.raises(
        DataError,
        match=r"WikiText-2 not found in .*wikitext-2 \(missing: wiki.train.tokens, "
        r"wiki.valid.tokens, wiki.test.tokens\): put .*wikitext-2-v1.zip",
    ):
        wikitext2.locate(tmp_path, allow_download=False)


def test_ptb_downloads_each_missing_file_and_checks_it(tmp_path, monkeypatch):
    served = write_ptb(tmp_path / "served")
    monkeypatch.setattr(ptb, "URL", served.as_uri() + "/")
    monkeypatch.setattr(
        ptb, "MD5", {name: hashlib.md5((served / name).read_bytes()).hexdigest() for name in ptb.FILES.values()}
    )
    (tmp_path / "root" / "ptb").mkdir(parents=True)
    (tmp_path / "root" / "ptb" / "ptb.train.txt").write_text(" kept as it is \n")
    paths = ptb.locate(tmp_path / "root", allow_download=True)
    assert paths["train"].read_text() == " kept as it is \n"  # present files are not fetched again
    assert paths["test"].read_bytes() == (served / "ptb.test.txt").read_bytes()
    paths["test"].unlink()
    monkeypatch.setattr(ptb, "MD5", {**ptb.MD5, "ptb.test.txt": "0" * 32})
    with pytest.raises(DataError, match="the file is corrupt or not the published one"):
        ptb.locate(tmp_path / "root", allow_download=True)
    assert not paths["test"].exists() and not list(paths["test"].parent.glob("*.part"))


def zip_wikitext(tmp_path):
    source = write_wikitext2(tmp_path / "wikitext-2")
    archive = tmp_path / "wikitext-2-v1.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.iterdir()):
            zipped.write(path, f"wikitext-2/{path.name}")
    return source, archive


def test_wikitext2_is_downloaded_checked_and_only_its_three_files_kept(tmp_path, monkeypatch):
    source, archive = zip_wikitext(tmp_path)
    monkeypatch.setattr(wikitext2, "URL", archive.as_uri())
    monkeypatch.setattr(wikitext2, "MD5", "0" * 32)
    with pytest.raises(DataError, match="the file is corrupt or not the published one"):
        wikitext2.locate(tmp_path / "root", allow_download=True)
    monkeypatch.setattr(wikitext2, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    paths = wikitext2.locate(tmp_path / "root", allow_download=True)
    assert sorted(p.name for p in (tmp_path / "root" / "wikitext-2").iterdir()) == sorted(wikitext2.FILES.values())
    assert all(paths[split].read_bytes() == (source / name).read_bytes() for split, name in wikitext2.FILES.items())


def test_a_wikitext2_archive_put_in_place_is_extracted_and_kept(tmp_path):
    _, archive = zip_wikitext(tmp_path)
    folder = tmp_path / "root" / "wikitext-2"
    folder.mkdir(parents=True)
    os.replace(archive, folder / "wikitext-2-v1.zip")
    wikitext2.locate(tmp_path / "root", allow_download=False)
    assert {p.name for p in folder.iterdir()} == {*wikitext2.FILES.values(), "wikitext-2-v1.zip"}


def test_tokenized_streams_are_cached_once(ptb_task, tmp_path):
    ptb_task()
    ptb_task("data.batch_size=5", "data.bptt=3")  # the layout is not part of the cached entry
    assert len(list((tmp_path / "cache").glob("ptb-*.pt"))) == 1


# -- the continuous cache ----------------------------------------------------------------------
def cache_by_hand(hidden, targets, model_probs, size, theta, lam):
    """Grave et al.'s formula for each stream read whole, one position at a time."""
    mixed = torch.zeros(targets.shape)
    for stream in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            earlier = [i for i in range(max(0, t - size), t) if targets[stream, i] != IGNORE]
            if not earlier:
                mixed[stream, t] = model_probs[stream, t]
                continue
            weights = torch.softmax(torch.stack([theta * hidden[stream, t] @ hidden[stream, i] for i in earlier]), 0)
            pointed = sum(float(w) for w, i in zip(weights, earlier) if targets[stream, i] == targets[stream, t])
            mixed[stream, t] = (1 - lam) * model_probs[stream, t] + lam * pointed
    return mixed


@pytest.mark.parametrize("size", [1, 4, 100])
def test_the_cache_points_at_earlier_states_followed_by_the_target(size):
    torch.manual_seed(0)
    hidden, targets = torch.randn(2, 12, 5), torch.randint(0, 4, (2, 12))  # 4 words: many repeats
    targets[1, 10:] = IGNORE  # the end of the second stream
    model_probs = torch.rand(2, 12)
    cache = ContinuousCache(size, theta=0.7, lam=0.3, ignore_index=IGNORE)
    windowed = torch.cat(
        [
            cache.probabilities(hidden[:, s : s + 5], targets[:, s : s + 5], model_probs[:, s : s + 5])
            for s in range(0, 12, 5)
        ],
        dim=1,
    )  # read window by window, as evaluation does
    by_hand = cache_by_hand(hidden, targets, model_probs, size, 0.7, 0.3)
    real = targets != IGNORE
    assert torch.allclose(windowed[real], by_hand[real], atol=1e-6)
    assert not torch.equal(windowed[real], model_probs[real])  # the cache changed something
    assert torch.equal(windowed[:, 0], model_probs[:, 0])  # nothing remembered at the start
    cache.reset()
    assert torch.allclose(cache.probabilities(hidden, targets, model_probs)[real], by_hand[real], atol=1e-6)


def test_a_cache_of_weight_zero_changes_nothing_and_a_cache_helps_a_repetitive_text(ptb_task):
    task, data, model = ptb_task()
    model.eval()

    def perplexity():
        task.start_pass(model, "val")
        with torch.no_grad():
            return task.evaluate([task.step(model, window) for window in data.val], data.artifacts)["perplexity"]

    plain = perplexity()
    task.use_cache(50, 0.5, 0.0)
    assert perplexity() == pytest.approx(plain, rel=1e-6)
    task.use_cache(50, 0.5, 0.3)  # an untrained model: the text's own repetitions are what it can predict
    assert perplexity() < plain
    task.use_cache(0, 0.5, 0.3)
    assert task.cache is None and perplexity() == pytest.approx(plain, rel=1e-6)
    for args, message in [
        ((-1, 0.5, 0.1), "--cache-size=-1 is impossible"),
        ((10, 0.0, 0.1), r"--cache-theta=0.0 is impossible; it must be a number in \(0, inf\)"),
        ((10, 0.5, 1.5), r"--cache-lambda=1.5 is impossible; it must be a number in \[0, 1\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            task.use_cache(*args)


# -- what a checkpoint keeps -------------------------------------------------------------------
def test_the_artifacts_round_trip_through_their_record_unchanged(ptb_task, data_root, tmp_path):
    _, words, _ = ptb_task()
    text = tmp_path / "text.txt"
    text.write_text("ab\ncd\n" * 20, encoding="utf-8")
    chars = get_task(lm_cfg(data_root, tmp_path / "chars", f"data.path={text}", task="chars")).prepare()
    for data in (words, chars):
        back = LanguageModelArtifacts.from_dict(data.artifacts).as_dict()
        assert back == data.artifacts and layout(back) == layout(data.artifacts)
    assert chars.artifacts["level"] == "char" and chars.artifacts["start"] == "\n"


def test_a_run_saved_before_the_record_loads_and_continues_a_text_as_before(ptb_task, data_root, tmp_path):
    task, data, model = ptb_task()
    # a word corpus' artifacts as every language-model checkpoint has held them: the corpus' own words, most
    # frequent first, its unknown word, and a prompt starting a new sentence
    vocabulary = build_vocabulary(read_words(data_root / "ptb" / "ptb.train.txt"))
    older = {"level": "word", "vocabulary": vocabulary, "vocab_size": len(vocabulary), "unknown": UNKNOWN, "start": EOS}
    assert data.artifacts == older and layout(data.artifacts) == layout(older)  # so such a run resumes, too
    run = load_run(save_run(tmp_path / "best.pt", task, model, older))
    assert run.artifacts == older
    options = {"top_k": 3, "length": 5, "seed": 7}
    for text in ("the cat", "The dog jumped"):
        assert run.predict(text, **options) == task.predict(model, data.artifacts, text, **options)


# -- train.py and predict.py -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ptb_run(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("lm")
    train(
        tmp / "run", ["task=ptb", "data.batch_size=4", "data.bptt=10", "trainer.max_epochs=2"], env_for(data_root, tmp)
    )
    return tmp / "run"


@pytest.mark.slow
def test_train_ptb_reports_perplexity_and_logs_samples(ptb_run):
    metrics = json.loads((ptb_run / "metrics.json").read_text())
    assert metrics["monitor"] == "val/perplexity" and metrics["mode"] == "min" and metrics["epochs_run"] == 2
    for split in ("val", "test"):
        assert set(metrics[split]) == {"perplexity", "loss"}
        assert metrics[split]["perplexity"] == pytest.approx(math.exp(metrics[split]["loss"]), rel=1e-6)
    accumulator = EventAccumulator(str(ptb_run))
    accumulator.Reload()
    assert {"val/perplexity", "test/perplexity", "val/best"} <= set(accumulator.Tags()["scalars"])
    assert len(accumulator.Tensors("val_examples/samples/text_summary")) == 2  # one set of samples per epoch
    log = (ptb_run / "train.log").read_text()
    assert "tokens train / val / test" in log and "train layout" in log


@pytest.mark.slow
def test_predict_script_prints_next_words_and_a_reproducible_continuation(ptb_run, data_root, tmp_path):
    args = [
        str(ROOT / "scripts" / "predict.py"),
        str(ptb_run),
        "the cat",
        "--top-k",
        "3",
        "--length",
        "6",
        "--seed",
        "5",
        "--temperature",
        "0.8",
    ]
    first = json.loads(run_script(args, env_for(data_root, tmp_path)).stdout)
    second = json.loads(run_script(args, env_for(data_root, tmp_path)).stdout)
    assert first == second
    assert len(first["next"]) == 3 and 0 < sum(e["probability"] for e in first["next"]) <= 1.0
    assert len(first["continuation"].split()) == 6 and first["temperature"] == 0.8


@pytest.mark.slow
def test_evaluate_script_tunes_a_cache_on_validation_and_reports_test(ptb_run, data_root, tmp_path):
    env = env_for(data_root, tmp_path)
    plain = json.loads(run_script([str(ROOT / "scripts" / "evaluate.py"), str(ptb_run)], env).stdout)
    fixed = json.loads(
        run_script(
            [
                str(ROOT / "scripts" / "evaluate.py"),
                str(ptb_run),
                "--cache-size",
                "100",
                "--cache-theta",
                "0.5",
                "--cache-lambda",
                "0",
            ],
            env,
        ).stdout
    )
    assert fixed["cache"] == {"size": 100, "theta": 0.5, "lambda": 0.0}
    assert fixed["test"]["perplexity"] == pytest.approx(plain["test"]["perplexity"], rel=1e-6)
    tuned = json.loads(
        run_script(
            [str(ROOT / "scripts" / "evaluate.py"), str(ptb_run), "--cache-size", "100", "--tune-cache"], env
        ).stdout
    )
    search = tuned["cache_search"]
    best = min(search, key=lambda row: row["val"])
    assert [row["theta"] for row in search[:9]] == [0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0]  # at lambda 0.1
    assert {row["lambda"] for row in search[:9]} == {0.1}
    best_theta = min(search[:9], key=lambda row: row["val"])["theta"]
    assert [(row["theta"], row["lambda"]) for row in search[9:]] == [
        (best_theta, lam) for lam in (0, 0.05, 0.15, 0.2, 0.3, 0.4)
    ]
    assert search[9]["val"] == pytest.approx(plain["val"]["perplexity"])  # lambda 0: the model alone
    assert tuned["cache"] == {"size": 100, "theta": best["theta"], "lambda": best["lambda"]}
    assert tuned["val"]["perplexity"] == pytest.approx(best["val"]) and best["val"] <= search[5]["val"]
    refused = run_script([str(ROOT / "scripts" / "evaluate.py"), str(ptb_run), "--tune-cache"], env, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --tune-cache needs --cache-size N (e.g. 2000): how many states the cache remembers"
    ]


@pytest.mark.slow
def test_train_wikitext2_with_a_deep_gru_and_an_adaptive_softmax(data_root, tmp_path):
    env = env_for(data_root, tmp_path)
    train(
        tmp_path / "run",
        [
            "task=wikitext2",
            "model=gru",
            "model.num_layers=2",
            "data.batch_size=4",
            "model.adaptive_cutoffs=[4,12]",
            "model.hidden_size=16",
            "trainer.limit_train_batches=3",
        ],
        env,
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["perplexity"] > 1
    assert "adaptive.tail.1.1" in (tmp_path / "run" / "train.log").read_text()  # in the parameter table
    answer = json.loads(
        run_script(
            [
                str(ROOT / "scripts" / "predict.py"),
                str(tmp_path / "run"),
                "The cat",
                "--top-k",
                "3",
                "--length",
                "4",
                "--seed",
                "0",
            ],
            env,
        ).stdout
    )
    assert len(answer["next"]) == 3 and len(answer["continuation"].split()) == 4


@pytest.mark.slow
def test_train_and_predict_characters_of_any_text_file(data_root, tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("Ünïcödé lines, and more lines.\nThe cat sat on the mat.\n" * 40, encoding="utf-8")
    env = env_for(data_root, tmp_path)
    train(tmp_path / "run", ["task=chars", f"data.path={text}", "model=rnn", "model.num_layers=2", "data.bptt=16"], env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["monitor"] == "val/perplexity" and metrics["test"]["perplexity"] > 1
    answer = json.loads(
        run_script(
            [str(ROOT / "scripts" / "predict.py"), str(tmp_path / "run"), "The c", "--length", "12", "--seed", "1"], env
        ).stdout
    )
    assert len(answer["continuation"]) == 12 and all(len(e["token"]) == 1 for e in answer["next"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,message",
    [
        (["task=ptb", "data.root={empty}", "data.download=false"], "error: Penn Treebank not found in {empty}/ptb"),
        (["task=chars", "data.path={empty}/none.txt"], "error: data.path={empty}/none.txt is not a file"),
    ],
)
def test_refusals_are_one_clear_line(overrides, message, data_root, tmp_path):
    empty = tmp_path / "empty"
    result = train(
        tmp_path / "run", [o.format(empty=empty) for o in overrides], env_for(data_root, tmp_path), check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message.format(empty=empty)), result.stderr
