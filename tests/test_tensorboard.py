"""What TensorBoard shows, read back with TensorBoard's own loaders: the experiment description every run
writes (HPARAMS), typed hyper-parameters, run names, tag groups and steps, and each task's examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.util import tensor_util

from conftest import ROOT, TINY, run_script
from seqmodels.config import CONFIG_DIR, register_configs, run_name
from seqmodels.data.batching import BatchLoader, BucketBatchSampler
from seqmodels.data.tag_schemes import Span
from seqmodels.hparams import BOOL, NUMBER, TEXT, Column, merge_columns
from seqmodels.tasks import TASKS
from seqmodels.tasks.showcase import marked, pick_reviews, pick_sentences, review_table, spread, tagged_sentences
from seqmodels.training.gradient_flow import choose_batch
from seqmodels.training.optim import SCHEDULES
from seqmodels.training.tensorboard import BEST, SHOWN_FIRST, RunLogger, shared_experiment
from seqmodels.training.trainer import run_columns

TIME = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
GROUPS = ("train", "val", "test", "vitals")  # every scalar's group, in the order a user needs them


def load(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def experiment_of(accumulator: EventAccumulator) -> api_pb2.Experiment:
    return metadata.parse_experiment_plugin_data(accumulator.PluginTagToContent("hparams")[metadata.EXPERIMENT_TAG])


def session_of(accumulator: EventAccumulator):
    content = accumulator.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG]
    return metadata.parse_session_start_info_plugin_data(content)


def text_of(accumulator: EventAccumulator, tag: str) -> str:
    return tensor_util.make_ndarray(accumulator.Tensors(f"{tag}/text_summary")[-1].tensor_proto).item().decode()


# -- the experiment description --------------------------------------------------------------------------


def test_the_experiment_holds_every_tasks_metrics_and_typed_columns():
    experiment = shared_experiment(run_columns())
    assert experiment.metrics[0] == BEST  # every run's own best validation value, so no row is empty
    for task in TASKS.values():
        assert f"test/{task.monitor}" in experiment.metrics[:5]  # shown before a user picks columns
        assert {f"test/{metric}" for metric in task.metrics} <= set(experiment.metrics)
    columns = {c.name: c for c in experiment.columns}
    assert set(SHOWN_FIRST) <= set(columns)
    assert {"pooling", "max_epochs", "grad_clip", "weight_decay", "schedule", "vocab_size", "max_length"} <= set(
        columns
    )
    assert {"crf", "char_dim", "bptt", "attention", "beam_size"} <= set(columns)  # every task's own keys
    assert columns["bidirectional"].kind == BOOL and columns["crf"].kind == BOOL
    assert columns["lr"].kind == NUMBER and columns["dropout"].kind == NUMBER
    assert columns["hidden_size"].kind == TEXT and columns["max_length"].kind == TEXT  # integers read as such
    # a name several tasks declare allows all their values: a filter never hides another task's runs
    assert {"imdb", "conll2003", "ptb", "wikitext2", "multi30k"} <= set(columns["dataset"].choices)
    assert columns["schedule"].choices == SCHEDULES  # the declared choices, as filter checkboxes


def test_merged_columns_widen_rather_than_hide():
    merged = merge_columns(
        [
            [Column("a", TEXT, choices=("x",)), Column("b", TEXT, choices=("x",)), Column("c", BOOL)],
            [Column("a", TEXT, choices=("y",)), Column("b", TEXT), Column("c", NUMBER)],
        ]
    )
    assert [(c.name, c.kind, c.choices) for c in merged] == [
        ("a", TEXT, ("x", "y")),
        ("b", TEXT, None),
        ("c", TEXT, None),
    ]


def test_the_logger_writes_typed_values_that_tensorboard_reads_back(tmp_path):
    experiment = shared_experiment(run_columns())
    logger = RunLogger(tmp_path)
    logger.start_session(
        experiment,
        {
            "task": "imdb",
            "bidirectional": True,
            "hidden_size": 128,
            "lr": 0.001,
            "grad_clip": None,
            "max_length": None,
            "adaptive_cutoffs": [2000, 10000],
            "cell": "lstm",
        },
    )
    logger.scalar(BEST, 0.5, 10)
    logger.end_session(succeeded=True)
    logger.close()
    accumulator = load(tmp_path)
    declared = experiment_of(accumulator)
    assert [m.name.tag for m in declared.metric_infos] == list(experiment.metrics)
    infos = {info.name: info for info in declared.hparam_infos}
    assert infos["bidirectional"].type == api_pb2.DATA_TYPE_BOOL
    assert list(infos["bidirectional"].domain_discrete.values[i].bool_value for i in range(2)) == [False, True]
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64 and infos["hidden_size"].type == api_pb2.DATA_TYPE_STRING
    assert [v.string_value for v in infos["cell"].domain_discrete.values] == ["rnn", "gru", "lstm"]
    assert {name for name, info in infos.items() if info.differs} == set(SHOWN_FIRST)  # the columns shown first
    values = session_of(accumulator).hparams
    assert values["bidirectional"].WhichOneof("kind") == "bool_value" and values["bidirectional"].bool_value
    assert values["hidden_size"].string_value == "128" and values["lr"].number_value == pytest.approx(0.001)
    assert values["max_length"].string_value == "null" and "grad_clip" not in values  # null: text, or no number
    assert values["adaptive_cutoffs"].string_value == "[2000, 10000]"
    end = metadata.parse_session_end_info_plugin_data(
        accumulator.PluginTagToContent("hparams")[metadata.SESSION_END_INFO_TAG]
    )
    assert end.status == api_pb2.STATUS_SUCCESS


# -- run names ---------------------------------------------------------------------------------------------


def resolved(name: str | None, default: str | None = None, **model) -> str:
    register_configs()
    cfg = OmegaConf.create(
        {
            "name": name,
            "task": {"name": "conll2003", "kind": "ner"},
            "model": {"cell": "lstm", "hidden_size": 200, "bidirectional": True, **model},
            "dir": "${run_name:" + (default or "") + "}",
        }
    )
    return cfg.dir


def test_run_names_say_task_and_model_or_the_users_name():
    assert resolved(None) == "conll2003/bilstm-1x200"
    assert resolved(None, num_layers=2, bidirectional=False) == "conll2003/lstm-2x200"
    assert resolved("ablation/no_crf") == "ablation/no_crf"
    assert resolved(None, "multirun") == "multirun" and resolved("cells", "multirun") == "cells"
    assert resolved(None, hidden_size=0) == "conll2003"  # refused later, by check_config, with its message
    assert run_name  # the resolver the configs use


def test_hydra_puts_runs_under_their_names():
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["task=ptb", "model=gru"], return_hydra_config=True)
        named = compose("config", overrides=["name=mine"], return_hydra_config=True)
    assert re.fullmatch(rf"outputs/ptb/gru-1x128/{TIME}", cfg.hydra.run.dir), cfg.hydra.run.dir
    assert re.fullmatch(rf"outputs/multirun/{TIME}", cfg.hydra.sweep.dir), cfg.hydra.sweep.dir
    assert re.fullmatch(rf"outputs/mine/{TIME}", named.hydra.run.dir)


# -- examples, spread samples, the gradient-flow batch -------------------------------------------------------


def test_ner_examples_mark_entities_and_bold_the_differences():
    words = ["Harry", "Potter", "met", "Ron", "in", "London", "."]
    gold = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "O"]
    predicted = ["B-PER", "I-PER", "O", "O", "O", "B-ORG", "O"]
    text = tagged_sentences([(words, gold, predicted)])
    assert "gold: \\[Harry Potter\\]PER met **\\[Ron\\]PER** in **\\[London\\]LOC** ." in text
    assert "predicted: \\[Harry Potter\\]PER met Ron in **\\[London\\]ORG** ." in text
    assert "✗ 3 entities differ" in text
    assert "✓" in tagged_sentences([(words, gold, gold)])
    assert marked(["a|b"], [Span("X", 0, 1)], []) == "**\\[a\\|b\\]X**"  # a word never breaks the Markdown


def test_sentiment_examples_show_label_probability_and_mistakes():
    table = review_table(["good *film*", "bad | film"], [1, 0], [[0.2, 0.8], [0.3, 0.7]], ["negative", "positive"])
    rows = table.splitlines()
    assert rows[2] == "| ✓ | positive (0.80) | positive | good \\*film\\* |"
    assert rows[3] == "| **✗** | positive (0.70) | negative | bad \\| film |"


def test_examples_are_picked_balanced_and_spread():
    lengths = [5, 30, 40, 50, 60, 70, 300, 35, 45]
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    picked = pick_reviews(lengths, labels)
    assert sorted(labels[i] for i in picked) == [0, 0, 1, 1]
    assert all(20 <= lengths[i] <= 80 for i in picked)
    assert pick_sentences([3, 10, 12, 50, 8], [0, 2, 3, 4, 2]) == [1, 2, 4]
    assert pick_sentences([3, 10, 12], [0, 0, 1]) == [0, 1, 2]
    assert spread(list(range(10)), 3) == [0, 4, 9]


def test_limited_evaluation_batches_spread_over_the_sorted_split():
    lengths = list(range(1, 101))  # batches of 10 sorted by length: batch k holds lengths 10k+1 .. 10k+10
    loader = BatchLoader(BucketBatchSampler(lengths, 10, shuffle=False), lambda indices: indices)
    picked = list(loader.sample(3))
    assert [min(lengths[i] for i in batch) for batch in picked] == [1, 41, 91]  # shortest, middle, longest
    assert len(list(loader.sample(50))) == 10  # no more than there are
    shuffled = BatchLoader(BucketBatchSampler(lengths, 10, shuffle=True, seed=1), lambda indices: indices)
    assert list(shuffled.sample(2)) == list(shuffled)[:2]  # a random order already: its first batches


def test_gradient_flow_takes_a_batch_long_enough_else_the_longest():
    sizes = [(40, 10), (300, 10), (120, 10), (2000, 10)]  # mean lengths 4, 30, 12, 200
    assert choose_batch(sizes, 20) == 1  # the shortest that reaches 20 steps
    assert choose_batch(sizes, 500) == 3  # none does: the longest
    assert choose_batch([], 10) is None


# -- a logdir of real runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logdir(tmp_path_factory, data_root):
    """`outputs/` of one run per task (default run directories) and a two-job multirun, as a user's."""
    import os

    from helpers.parallel_text import write_multi30k

    work = tmp_path_factory.mktemp("work")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(work / "cache")}
    short = [*TINY, "trainer.max_epochs=2", "trainer.limit_val_batches=2"]
    train = str(ROOT / "train.py")
    run_script([train, *short, "task=imdb"], env, cwd=work)
    run_script([train, *short, "task=conll2003", "model=bilstm"], env, cwd=work)
    run_script([train, *short, "task=ptb", "data.bptt=6"], env, cwd=work)
    mt_root = write_multi30k(work / "mt")
    run_script([train, *short, "task=multi30k", f"data.root={mt_root}", "data.vocab_size=60"], env, cwd=work)
    run_script(
        [train, "-m", *short, "task=conll2003", "model=rnn,gru", f"data.root={data_root}", "name=cells"],
        env,
        cwd=work,
    )
    return work / "outputs"


@pytest.fixture(scope="module")
def runs(logdir) -> dict[str, EventAccumulator]:
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))  # names the runs as TensorBoard does
    return {name: load(logdir / name) for name in multiplexer.Runs()}


@pytest.mark.slow
def test_run_names_read_in_tensorboard(runs):
    names = sorted(runs)
    assert len(names) == 6, names
    expected = [
        rf"cells/{TIME}/0_model=rnn",  # the overrides that vary, no data.root path
        rf"cells/{TIME}/1_model=gru",
        rf"conll2003/bilstm-1x12/{TIME}",
        rf"imdb/lstm-1x12/{TIME}",
        rf"multi30k/lstm-1x12/{TIME}",
        rf"ptb/lstm-1x12/{TIME}",
    ]
    for pattern, name in zip(expected, names):
        assert re.fullmatch(pattern, name), (pattern, name)  # no /tensorboard, no path of data.root
        assert "/" not in name.rsplit("/", 1)[-1]


@pytest.mark.slow
def test_every_run_declares_the_same_experiment(runs):
    declared = [experiment_of(accumulator) for accumulator in runs.values()]
    assert all(e == declared[0] for e in declared)
    metrics = [m.name.tag for m in declared[0].metric_infos]
    assert metrics[:5] == [BEST, "test/accuracy", "test/f1", "test/perplexity", "test/bleu"]
    for name, accumulator in runs.items():  # every row has its shared metric and its own test metric
        scalars = set(accumulator.Tags()["scalars"])
        assert BEST in scalars and scalars & set(metrics[1:5]), name
        assert not any(tag.startswith("hparams/") for tag in scalars)


@pytest.mark.slow
def test_hyper_parameters_are_typed(runs):
    for name, accumulator in runs.items():
        values = session_of(accumulator).hparams
        assert values["task"].string_value in name.replace("cells", "conll2003")
        assert values["bidirectional"].WhichOneof("kind") == "bool_value"
        assert values["hidden_size"].string_value == "12"
        assert values["lr"].WhichOneof("kind") == "number_value"
        assert values["max_epochs"].string_value == "2" and values["grad_clip"].number_value == 1.0
        assert values["model"].string_value in name or name.startswith("cells")
    conll = next(a for n, a in runs.items() if n.startswith("conll2003"))
    assert session_of(conll).hparams["crf"].WhichOneof("kind") == "bool_value"
    imdb = next(a for n, a in runs.items() if n.startswith("imdb"))
    assert session_of(imdb).hparams["pooling"].string_value == "max"


@pytest.mark.slow
def test_tags_are_grouped_and_share_the_global_step(runs):
    for name, accumulator in runs.items():
        scalars = accumulator.Tags()["scalars"]
        groups = {tag.split("/", 1)[0] for tag in scalars}
        assert groups <= set(GROUPS), (name, groups)  # translation's further test sets too: test/bleu_2017_...
        assert {"train/loss", "val/loss", "vitals/lr", "vitals/grad_norm", "vitals/tokens_per_s"} <= set(scalars)
        train_steps = [e.step for e in accumulator.Scalars("train/loss")]
        val_steps = [e.step for e in accumulator.Scalars("val/loss")]
        assert len(val_steps) == 2 and val_steps[-1] == train_steps[-1], name  # validation at its epoch's last step
        assert val_steps[0] in train_steps
        assert [e.step for e in accumulator.Scalars("train/epoch_loss")] == val_steps
        (test,) = accumulator.Scalars("test/loss")
        assert test.step in val_steps  # the best epoch's step
        assert accumulator.Scalars(BEST)[-1].value == pytest.approx(
            max(e.value for e in accumulator.Scalars(f"val/{session_monitor(name)}"))
            if session_monitor(name) != "perplexity"
            else min(e.value for e in accumulator.Scalars("val/perplexity"))
        )
        if "vitals/gradient_flow" in accumulator.Tags()["images"]:
            assert [e.step for e in accumulator.Images("vitals/gradient_flow")] == val_steps


def session_monitor(name: str) -> str:
    kind = {"imdb": "sentiment", "conll2003": "ner", "cells": "ner", "ptb": "language_model", "multi30k": "translation"}
    return TASKS[kind[name.split("/", 1)[0]]].monitor


@pytest.mark.slow
def test_every_task_logs_examples_after_each_validation(runs):
    expected = {"imdb": "reviews", "conll2003": "entities", "ptb": "samples", "multi30k": "translations"}
    for name, accumulator in runs.items():
        task = name.split("/", 1)[0]
        if task not in expected:
            continue
        tag = f"val_examples/{expected[task]}"
        val_steps = [e.step for e in accumulator.Scalars("val/loss")]
        assert [e.step for e in accumulator.Tensors(f"{tag}/text_summary")] == val_steps, name
        text = text_of(accumulator, tag)
        assert {
            "imdb": "| predicted | gold | review |",
            "conll2003": "gold: ",
            "ptb": "sample 1:",
            "multi30k": "| source | reference | translation |",
        }[task] in text, text
    imdb = next(a for n, a in runs.items() if n.startswith("imdb"))
    rows = text_of(imdb, "val_examples/reviews").splitlines()[2:]
    assert len(rows) == 4 and all(row.startswith(("| ✓ |", "| **✗** |")) for row in rows)  # the fixed reviews


@pytest.mark.slow
def test_gradient_flow_is_measured_on_a_batch_with_a_curve(runs, logdir):
    import json

    for name in runs:
        record = json.loads((logdir / name / "gradient_flow.json").read_text())
        for epoch in record["epochs"]:
            assert all(len(curve) >= 3 for curve in epoch["curves"].values()), (name, epoch)


def test_a_failed_start_leaves_no_empty_folders(tmp_path, env):
    result = run_script([str(ROOT / "train.py"), "model.hidden_size=0"], env, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert not any((tmp_path / "outputs").rglob("*"))  # outputs/imdb/<time> and outputs/imdb are gone
