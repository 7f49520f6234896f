"""Transfer learning from earlier runs (`model.init_from`), ULMFiT's fine-tuning options (discriminative
rates, gradual unfreezing, slanted triangular rates) and the language models that pretrain for it
(`task=imdb_lm`, `task=words`, `data.reverse`)."""

from __future__ import annotations

import logging
import re
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from conftest import TINY, composed, write_aclimdb
from seqmodels.data.text import tokenizer_words
from seqmodels.errors import CheckpointError, ConfigError
from seqmodels.inference.loading import load_run
from seqmodels.models import ClassifierConfig, LanguageModelConfig
from seqmodels.models.transfer import Source, layer_groups, parts, transfer
from seqmodels.tasks import get_task
from seqmodels.tasks.transfer import start_from
from seqmodels.train import check_config, run
from seqmodels.training.optim import LRSchedule, OptimConfig, Unfreezing, build_optimizer, parameter_groups

FAST = [*TINY, "trainer.gradient_flow=false", "trainer.limit_val_batches=2"]


def lm_overrides(root: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "task=imdb_lm",
        f"data.root={root}",
        f"data.cache_dir={cache}",
        "data.vocab_size=null",
        "data.min_freq=1",
        "data.bptt=10",
        "data.val_fraction=0.05",
        "data.test_fraction=0.05",
        "model.adaptive_cutoffs=[10]",
        *FAST,
        *extra,
    ]


def sentiment_overrides(root: Path, cache: Path, *extra: str) -> list[str]:
    return ["task=imdb", f"data.root={root}", f"data.cache_dir={cache}", *FAST, *extra]


@pytest.fixture(scope="module")
def language_models(tmp_path_factory, data_root) -> dict[str, Path]:
    """Tiny IMDB language models, trained once: forward and backward, and a GRU."""
    base = tmp_path_factory.mktemp("lms")
    runs = {}
    for name, extra in (("forward", []), ("backward", ["data.reverse=true"]), ("gru", ["model=gru"])):
        runs[name] = base / name
        run(composed(*lm_overrides(data_root, base / "cache", *extra)), runs[name])
    return runs


def classifier(data_root: Path, cache: Path, *extra: str):
    """A sentiment task, its data and a freshly built model, as a run starts them."""
    task = check_config(composed(*sentiment_overrides(data_root, cache, *extra)))
    data = task.prepare()
    torch.manual_seed(0)
    return task, data, task.build_model(data.artifacts)


# -- the language models ---------------------------------------------------------------------------
def add_unsup(tree: Path, count: int = 6) -> None:
    folder = tree / "train" / "unsup"
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i}_0.txt").write_text(f"An unlabelled review: unsupword number {i}.", encoding="utf-8")


def test_imdb_lm_reads_training_and_unsup_reviews_and_never_a_test_review(tmp_path, caplog):
    tree = write_aclimdb(tmp_path / "imdb")
    add_unsup(tree)
    for i, path in enumerate(sorted((tree / "test" / "pos").glob("*.txt"))):
        path.write_text(f"testonlyword {i}", encoding="utf-8")
    (tree / "test" / "neg" / "0_1.txt").write_bytes(b"\xff\xfe not even text")  # never opened
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        data = get_task(composed(*lm_overrides(tmp_path, tmp_path / "cache"))).prepare()
    vocabulary = data.artifacts["vocabulary"]
    assert vocabulary[:2] == ["<eos>", "<unk>"] and "unsupword" in vocabulary
    assert "testonlyword" not in vocabulary and "not UTF-8" not in caplog.text
    assert "54 reviews (train/pos 24, train/neg 24, train/unsup 6; no test review)" in caplog.text
    assert data.summary["documents train / val / test"] == "49 / 2 / 3"
    # the reviews are tokenized as the sentiment task tokenizes them: lowercased, punctuation apart, no <br />
    assert "an" in vocabulary and ":" in vocabulary and "An" not in vocabulary and "br" not in vocabulary


def test_imdb_lm_without_unsup_reviews_says_so(tmp_path, data_root, caplog):
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        get_task(composed(*lm_overrides(data_root, tmp_path / "cache"))).prepare()
    assert "holds no train/unsup reviews" in caplog.text


def test_task_words_reads_any_text_file_and_keeps_the_clusters_its_vocabulary_fills(tmp_path, caplog):
    text = tmp_path / "story.txt"
    lines = [f"the {animal} sat on the mat number {i % 7}" for i, animal in enumerate(["cat", "dog", "owl"] * 40)]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = composed(
        "task=words",
        f"data.path={text}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *FAST,
        "data.bptt=8",
        "model.hidden_size=16",
    )
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        results = run(cfg, tmp_path / "run")
    vocabulary = load_run(tmp_path / "run").artifacts["vocabulary"]
    assert vocabulary[0] == "<unk>" and {"the", "cat", "owl", "<eos>"} <= set(vocabulary)
    assert "model.adaptive_cutoffs=[2000, 10000] for a vocabulary of 17 words: a full softmax" in caplog.text
    assert results["test"]["perplexity"] < len(vocabulary)
    with pytest.raises(ConfigError, match="task=words needs a text file: add data.path"):
        check_config(composed("task=words"))


def test_reverse_reads_every_split_backwards(tmp_path, data_root):
    forward = get_task(composed(*lm_overrides(data_root, tmp_path / "cache"))).prepare()
    backward = get_task(composed(*lm_overrides(data_root, tmp_path / "cache", "data.reverse=true"))).prepare()
    ids = forward.train.streams.inputs.flatten()[:50]
    last = backward.train.streams.targets.flatten()
    last = last[last != -100]
    assert torch.equal(last.flip(0)[:50], ids) and "backward" in backward.summary["direction"]


def test_a_long_pretraining_resumes_exactly(tmp_path, data_root):
    overrides = lm_overrides(data_root, tmp_path / "cache", "trainer.early_stopping_patience=null")
    run(composed(*overrides, "trainer.max_epochs=2"), tmp_path / "straight")
    run(composed(*overrides, "trainer.max_epochs=1"), tmp_path / "first")
    resumed = [*overrides, "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first'}"]
    run(composed(*resumed), tmp_path / "resumed")
    straight = load_run(tmp_path / "straight", "last.pt").model.state_dict()
    for name, tensor in load_run(tmp_path / "resumed", "last.pt").model.state_dict().items():
        assert torch.equal(tensor, straight[name]), name


def test_a_checkpoint_written_before_a_model_key_existed_resumes(tmp_path, data_root):
    overrides = lm_overrides(data_root, tmp_path / "cache")
    run(composed(*overrides), tmp_path / "first")
    path = tmp_path / "first" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["model"]["init_from"]  # as a run of an earlier version saved it
    torch.save(state, path)
    run(composed(*overrides, "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first'}"), tmp_path / "resumed")
    with pytest.raises(CheckpointError, match="model.dropout: 0.3 in the run, 0.1 given"):  # a key it had, changed
        run(composed(*overrides, "model.dropout=0.1", f"trainer.resume={tmp_path / 'first'}"), tmp_path / "other")


# -- init_from: copies and remaps -------------------------------------------------------------------
def test_a_forward_lm_starts_a_classifier_words_follow_their_rows_and_the_table_says_so(
    tmp_path, data_root, language_models, caplog
):
    source = load_run(language_models["forward"])
    task, data, model = classifier(data_root, tmp_path / "cache", f"model.init_from={language_models['forward']}")
    fresh = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        report = start_from(task, model, data.artifacts)
    assert report is not None
    outcomes = {row.role: row.outcome for row in report.rows}
    assert outcomes == {"word vectors": "remapped", "layer 1 forward": "copied", "head": "new"}
    for name, tensor in model.encoder.layer_weights()[(1, "forward")].items():
        assert torch.equal(tensor, source.model.encoder.layer_weights()[(1, "forward")][name])
    assert torch.equal(model.head.weight, fresh["head.weight"])
    theirs = source.artifacts["vocabulary"]
    mine = tokenizer_words(data.artifacts["tokenizer"])
    for i, word in enumerate(mine):
        row = model.embedding.weight[i]
        if word == "<pad>":
            assert not row.any()
        elif word in theirs:
            assert torch.equal(row, source.model.embedding.weight[theirs.index(word)]), word
        else:
            assert torch.equal(row, fresh["embedding.weight"][i]), word
    assert re.search(r"word vectors +\d+ x 8 +remapped \(\d+ of \d+ words found", caplog.text)
    assert "model.init_from: 1 parts copied, 1 remapped, 1 new" in caplog.text


def test_a_forward_lm_starts_the_forward_direction_of_a_bidirectional_encoder(tmp_path, data_root, language_models):
    task, data, model = classifier(
        data_root, tmp_path / "cache", "model=bilstm", f"model.init_from={language_models['forward']}"
    )
    backward = {name: t.clone() for name, t in model.encoder.layer_weights()[(1, "backward")].items()}
    report = start_from(task, model, data.artifacts)
    rows = {row.role: row for row in report.rows}
    assert rows["layer 1 forward"].outcome == "copied"
    assert (rows["layer 1 backward"].outcome, rows["layer 1 backward"].detail) == ("new", "no backward source")
    for name, tensor in model.encoder.layer_weights()[(1, "backward")].items():
        assert torch.equal(tensor, backward[name])


def test_a_forward_and_a_backward_lm_start_both_directions(tmp_path, data_root, language_models):
    forward, backward = load_run(language_models["forward"]), load_run(language_models["backward"])
    pair = f"model.init_from=[{language_models['forward']},{language_models['backward']}]"
    task, data, model = classifier(data_root, tmp_path / "cache", "model=bilstm", pair)
    report = start_from(task, model, data.artifacts)
    rows = {row.role: row for row in report.rows}
    assert rows["layer 1 backward"].detail == f"from {language_models['backward']}"
    weights = model.encoder.layer_weights()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert torch.equal(weights[(1, "forward")][name], forward.model.encoder.layer_weights()[(1, "forward")][name])
        assert torch.equal(weights[(1, "backward")][name], backward.model.encoder.layer_weights()[(1, "forward")][name])


def test_a_run_of_the_same_task_and_data_gives_its_head_too(tmp_path, data_root):
    run(composed(*sentiment_overrides(data_root, tmp_path / "cache")), tmp_path / "first")
    first = load_run(tmp_path / "first")
    checkpoint = tmp_path / "first" / "checkpoints" / "best.pt"  # a checkpoint does as well as its run
    task, data, model = classifier(data_root, tmp_path / "cache", f"model.init_from={checkpoint}")
    report = start_from(task, model, data.artifacts)
    assert {row.outcome for row in report.rows} <= {"copied", "remapped"}
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, first.model.state_dict()[name]), name


# -- init_from: refusals, each one line before training --------------------------------------------
def refusal(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_another_cell_or_hidden_size_is_one_line_listing_the_differences(tmp_path, data_root, language_models):
    task, data, model = classifier(
        data_root, tmp_path / "cache", "model.hidden_size=10", f"model.init_from={language_models['gru']}"
    )
    with pytest.raises(ConfigError) as error:
        start_from(task, model, data.artifacts)
    message = refusal(error)
    assert "model.cell lstm here, gru there" in message and "model.hidden_size 10 here, 12 there" in message


def test_nothing_transferable_is_one_line(tmp_path, data_root, language_models):
    task, data, model = classifier(
        data_root, tmp_path / "cache", "model.embedding_dim=6", f"model.init_from={language_models['forward']}"
    )
    with pytest.raises(ConfigError) as error:
        start_from(task, model, data.artifacts)
    assert "nothing there matches this model by role and shape" in refusal(error)


def test_a_backward_lm_needs_a_bidirectional_encoder_and_two_forward_ones_are_refused(
    tmp_path, data_root, language_models
):
    task, data, model = classifier(data_root, tmp_path / "cache", f"model.init_from={language_models['backward']}")
    with pytest.raises(ConfigError, match="backward language model .* set model.bidirectional=true"):
        start_from(task, model, data.artifacts)
    twice = f"model.init_from=[{language_models['forward']},{language_models['forward']}]"
    task, data, model = classifier(data_root, tmp_path / "cache", "model=bilstm", twice)
    with pytest.raises(ConfigError, match="gives layer 1 forward twice"):
        start_from(task, model, data.artifacts)


def test_a_missing_run_and_too_many_sources_are_one_line(tmp_path, data_root):
    task, data, model = classifier(data_root, tmp_path / "cache", f"model.init_from={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="no such run directory or checkpoint"):
        start_from(task, model, data.artifacts)
    with pytest.raises(ConfigError, match="holds 3 values; at most 2"):
        check_config(composed("model.init_from=[a,b,c]"))


def tiny_classifier(vocab: int, **settings):
    config = ClassifierConfig(embedding_dim=4, hidden_size=5, **settings)
    return config, config.build(vocab, 2)


def test_a_remap_that_finds_under_a_tenth_of_the_words_is_refused(tmp_path):
    torch.manual_seed(0)
    config, model = tiny_classifier(23)
    _, source = tiny_classifier(12)
    mine = ["<pad>", "<unk>", *(f"word{i}" for i in range(21))]
    theirs = ["<pad>", "<unk>", "word1", "WORD2", *(f"other{i}" for i in range(8))]
    src = Source("there", source, theirs, settings=config.as_dict())
    with pytest.raises(ConfigError) as error:
        transfer(model, mine, config.as_dict(), [src])
    assert "only 2 of this run's 21 words (9.5%) are in its vocabulary, below 10%" in refusal(error)
    mine = mine[:20]  # 2 of 18 found: 11%
    config, model = tiny_classifier(20)
    report = transfer(model, mine, config.as_dict(), [src])
    assert report.rows[0].detail == "2 of 18 words found (11.1%); 16 new"
    # found as it is, else lowercased (WORD2 -> word2 is found the other way round: WORD2.lower())
    assert torch.equal(model.embedding.weight[3], source.embedding.weight[2])


# -- ULMFiT's fine-tuning options -------------------------------------------------------------------
def test_layer_groups_are_the_models_from_the_bottom_up_each_weight_once():
    for model in (
        tiny_classifier(10, num_layers=2, bidirectional=True)[1],
        LanguageModelConfig(embedding_dim=4, hidden_size=4, num_layers=2, tie_weights=True).build(10, -100),
    ):
        groups = layer_groups(model)
        assert [g.name for g in groups] == ["word vectors", "layer 1", "layer 2", "head"]
        ids = [id(p) for g in groups for p in g.parameters]
        assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
    assert {part.role for part in parts(model)} >= {"layer 2 forward"}


def test_layer_lr_decay_gives_each_group_below_the_top_a_lower_rate():
    _, model = tiny_classifier(10, num_layers=2)
    groups = parameter_groups(OptimConfig(lr=0.01, layer_lr_decay=2.6), model)
    optimizer = build_optimizer(OptimConfig(lr=0.01, layer_lr_decay=2.6), groups)
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == pytest.approx(
        {"head": 0.01, "layer 2": 0.01 / 2.6, "layer 1": 0.01 / 2.6**2, "word vectors": 0.01 / 2.6**3}
    )
    assert optimizer.param_groups[0]["name"] == "head"  # what logs show as the rate
    assert len(parameter_groups(OptimConfig(), model)) == 1


def test_gradual_unfreezing_frees_one_more_group_from_the_top_each_period_and_keeps_frozen_vectors():
    _, model = tiny_classifier(10, num_layers=2)
    model.embedding.weight.requires_grad_(False)  # model.freeze_vectors
    unfreezing = Unfreezing(model, every=0.5, steps_per_epoch=4)
    learning = []
    for step in range(8):
        unfreezing.before_step(step)
        learning.append([any(p.requires_grad for p in group.parameters) for group in layer_groups(model)])
    # groups bottom up: word vectors, layer 1, layer 2, head; a new group every 2 steps
    assert learning[0] == learning[1] == [False, False, False, True]
    assert learning[2] == [False, False, True, True]
    assert learning[4] == learning[6] == [False, True, True, True]


def test_unfreezing_in_a_run_keeps_the_lower_groups_as_they_started(tmp_path, data_root, language_models):
    overrides = [f"model.init_from={language_models['forward']}", "trainer.unfreeze=1", "trainer.max_epochs=1"]
    run(composed(*sentiment_overrides(data_root, tmp_path / "cache", *overrides)), tmp_path / "run")
    task, data, model = classifier(data_root, tmp_path / "cache", *overrides)
    start_from(task, model, data.artifacts)
    trained = load_run(tmp_path / "run").model
    assert torch.equal(trained.embedding.weight, model.embedding.weight)
    assert torch.equal(
        trained.encoder.layer_weights()[(1, "forward")]["weight_hh"],
        model.encoder.layer_weights()[(1, "forward")]["weight_hh"],
    )
    assert not torch.equal(trained.head.weight, model.head.weight)


def test_slanted_triangular_rises_over_cut_frac_then_falls_to_lr_over_ratio():
    config = OptimConfig(lr=0.032, schedule="slanted_triangular", cut_frac=0.1, stlr_ratio=32.0)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(config, [parameter])
    schedule = LRSchedule(config, optimizer, total_steps=100, mode="max")
    rates = []
    for _ in range(101):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_step()
    assert rates[0] == pytest.approx(0.001) and rates[10] == pytest.approx(0.032) and rates[100] == pytest.approx(0.001)
    rising, falling = rates[:11], rates[10:]
    assert all(a < b for a, b in pairwise(rising)) and all(a > b for a, b in pairwise(falling))
    assert rates[55] == pytest.approx(0.001 + 0.031 / 2)
    with pytest.raises(ConfigError, match="set optim.warmup_steps=0"):
        check_config(composed("optim.schedule=slanted_triangular", "optim.warmup_steps=10"))


def test_the_presets_compose():
    assert check_config(composed("experiment=imdb_lm_pretrain")).data_config.dataset == "imdb"
    task = check_config(composed("experiment=imdb_ulmfit", "model.init_from=somewhere"))
    assert task.model_config.init_from == ["somewhere"]
