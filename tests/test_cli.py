"""`train.py` and `scripts/predict.py` end to end, as a user runs them, on the tiny fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_script, train

pytestmark = pytest.mark.slow  # every test here runs train.py or a script in a subprocess


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir))  # the run directory is the run in TensorBoard
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_root):
    """One real 1-epoch run of the default model, shared by the tests that inspect it."""
    import os

    tmp = tmp_path_factory.mktemp("run")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(tmp / "cache")}
    result = train(tmp / "run", ["trainer.max_epochs=2"], env)
    return tmp / "run", result


def test_a_run_directory_holds_everything_promised(finished_run):
    run_dir, result = finished_run
    for path in [
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "metrics.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "train.log",
    ]:
        assert (run_dir / path).is_file(), path
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["monitor"] == "val/accuracy" and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["loss"] > 0
    per_label = {f"{metric}_{label}" for metric in ("precision", "recall", "f1") for label in ("negative", "positive")}
    assert set(metrics["val"]) == {"accuracy", "macro_f1", "loss", *per_label} and metrics["best_epoch"] in (1, 2)
    # the startup summary: device, data sizes and the per-layer parameter table
    log = (run_dir / "train.log").read_text()
    # the whole resolved config, in the log file only
    assert "config:\nseed: 42\nname: null\nmodel:\n  cell: lstm" in log
    console = result.stdout + result.stderr
    assert "config:" not in console and "task: imdb (classification) | model: LSTM x1" in console
    assert "device: cpu" in log and "train examples" in log and "padding, bucketed batches" in log
    assert "encoder.forward_layers.0  LSTM" in log and "4*(8*12 + 12*12 + 2*12)" in log


def test_tensorboard_has_steps_epochs_config_and_hparams(finished_run):
    run_dir, _ = finished_run
    accumulator = events(run_dir)
    scalars = set(accumulator.Tags()["scalars"])
    assert {
        "train/loss",
        "vitals/lr",
        "vitals/grad_norm",
        "vitals/tokens_per_s",
        "val/accuracy",
        "val/loss",
        "val/best",
        "test/accuracy",
    } <= scalars
    assert len(accumulator.Scalars("val/accuracy")) == 2  # one point per epoch
    assert len(accumulator.Scalars("train/loss")) == len(accumulator.Scalars("vitals/lr")) > 2  # per step
    hparams = accumulator.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"bidirectional" in hparams["_hparams_/session_start_info"]
    assert "config/text_summary" in accumulator.Tags()["tensors"]


def test_checkpoints_load_without_unpickling_code_and_hold_what_resume_needs(finished_run):
    run_dir, _ = finished_run
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "schedule", "epoch", "config", "artifacts", "torch_rng"} <= set(state)
    assert state["epoch"] == 2 and state["config"]["model"]["cell"] == "lstm"
    assert state["artifacts"]["labels"] == ["negative", "positive"]


def test_predict_prints_label_and_probability(finished_run, env):
    run_dir, _ = finished_run
    result = run_script([str(ROOT / "scripts" / "predict.py"), str(run_dir), "a wonderful, moving film"], env)
    answer = json.loads(result.stdout)
    assert answer["label"] in ("negative", "positive")
    assert answer["probability"] == max(answer["probabilities"].values()) >= 0.5
    assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-3


def test_predict_cuts_a_text_longer_than_any_limit(finished_run, env, tmp_path):
    run_dir, _ = finished_run
    long_text = "a superb film . " * 50_000  # 200,000 tokens
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "predict.py"), str(run_dir), "-"],
        env=env,
        input=long_text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in ("negative", "positive")
    # in a file, the closing line counts the texts cut and the tokens read: the run's data.max_length each
    max_length = OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.max_length
    (tmp_path / "long.txt").write_text(f"{long_text}\n{long_text}\n")
    args = [str(ROOT / "scripts" / "predict.py"), str(run_dir), "--input", str(tmp_path / "long.txt")]
    result = run_script([*args, "--output", str(tmp_path / "out.jsonl")], env)
    assert f"2 texts, {2 * max_length:,} tokens in " in result.stderr
    assert "; 2 cut to data.max_length" in result.stderr


def test_evaluate_reproduces_the_final_metrics_of_the_best_checkpoint(finished_run, env):
    run_dir, _ = finished_run
    result = run_script([str(ROOT / "scripts" / "evaluate.py"), str(run_dir)], env)
    evaluated = json.loads(result.stdout)
    final = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["epoch"] == final["best_epoch"]
    assert evaluated["val"] == final["val"] and evaluated["test"] == final["test"]


def test_predict_on_a_missing_run_is_one_clear_line(tmp_path, env):
    result = run_script([str(ROOT / "scripts" / "predict.py"), str(tmp_path / "nope"), "text"], env, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no checkpoint at") and "Traceback" not in result.stderr


def test_same_seed_same_metrics(finished_run, data_root, tmp_path, env):
    run_dir, _ = finished_run
    train(tmp_path / "again", ["trainer.max_epochs=2"], env)
    first = json.loads((run_dir / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["val"] == second["val"] and first["test"] == second["test"]


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_every_cell_trains_deep_and_bidirectional(cell, tmp_path, env):
    train(
        tmp_path / "run",
        [f"model={cell}", "model.num_layers=3", "model.bidirectional=true", "trainer.limit_train_batches=2"],
        env,
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["parameters"] > 0 and "accuracy" in metrics["test"]


def test_multirun_gives_each_job_its_own_run_directory(tmp_path, env):
    sweep = tmp_path / "sweep"
    result = run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "model=rnn,gru",
            f"data.root={env['SEQMODELS_DATA_DIR']}",
            "model.embedding_dim=8",
            "model.hidden_size=8",
            "trainer.max_epochs=1",
            "trainer.num_threads=1",
            "trainer.limit_train_batches=2",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
    )
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and jobs[0].startswith("0_") and jobs[1].startswith("1_"), (jobs, result.stderr)
    assert jobs == ["0_model=rnn", "1_model=gru"]  # the directory names say what differs, and only that
    for job in jobs:
        assert (sweep / job / "metrics.json").is_file()
        assert list((sweep / job).glob("events.out.tfevents.*"))
    cells = [json.loads((sweep / job / "metrics.json").read_text())["parameters"] for job in jobs]
    assert cells[0] < cells[1]  # a GRU has three times the recurrent weights of a simple RNN


@pytest.mark.parametrize(
    "override,message",
    [
        (
            ["model=transformer"],
            "error: model=transformer is not a model config; use one of ['bilstm', 'gru', 'lstm', 'rnn']",
        ),
        (
            ["model.hiden_size=3"],
            "error: model.hiden_size is not a setting of `model`; did you mean model.hidden_size?",
        ),
        (["data.batch_size=0"], "error: data.batch_size=0 is impossible; it must be a positive integer"),
    ],
)
def test_bad_config_is_one_clear_error_and_leaves_no_run_directory(override, message, tmp_path, env):
    """Each kind of refusal once through the real CLI: a group choice and a key name (refused before
    Hydra starts), a value (refused by the run). The messages themselves: test_configs.py."""
    result = train(tmp_path / "outputs" / "2026-11-29" / "run", override, env, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message] or message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "outputs" / "2026-11-29").exists()  # a run that never started leaves nothing


def test_missing_dataset_says_where_to_put_it_in_a_few_lines(tmp_path, env):
    result = train(tmp_path / "run", [f"data.root={tmp_path / 'empty'}", "data.download=false"], env, check=False)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines[-1].startswith(f"error: IMDB not found in {tmp_path / 'empty' / 'imdb'}")
    assert len(lines) < 20 and "Traceback" not in result.stderr
    assert "task: imdb (classification) | model: LSTM x1, emb 8, hidden 12" in lines[0]  # the compact summary
    assert not (tmp_path / "run").exists()


def test_resuming_from_last_checkpoint_continues_exactly(finished_run, tmp_path, env):
    run_dir, _ = finished_run  # trained 2 epochs without a break
    train(tmp_path / "first", ["trainer.max_epochs=1"], env)
    train(
        tmp_path / "rest",
        ["trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"],
        env,
    )
    straight = json.loads((run_dir / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "rest" / "metrics.json").read_text())
    assert resumed["epochs_run"] == 2
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    assert resumed["test"] == straight["test"]
    # the new run directory is complete: it holds the best checkpoint even when that epoch was before the resume
    assert (tmp_path / "rest" / "checkpoints" / "best.pt").is_file()


def test_a_weight_average_is_what_is_evaluated_saved_and_resumed(tmp_path, env):
    average = ["trainer.ema_decay=0.5", "trainer.limit_train_batches=3"]
    train(tmp_path / "straight", [*average, "trainer.max_epochs=2"], env)
    state = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    assert state["average_updates"] == 6  # one per training step
    assert any(not torch.equal(state["model"][k], state["trained_model"][k]) for k in state["model"])
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    # the run's validation and test numbers are those of the saved (averaged) weights
    again = json.loads(run_script([str(ROOT / "scripts" / "evaluate.py"), str(tmp_path / "straight")], env).stdout)
    assert again["val"] == straight["val"] and again["test"] == straight["test"]
    # and a resumed run continues the average exactly
    train(tmp_path / "first", [*average, "trainer.max_epochs=1"], env)
    train(
        tmp_path / "rest",
        [*average, "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"],
        env,
    )
    resumed = json.loads((tmp_path / "rest" / "metrics.json").read_text())
    assert resumed["history"] == [
        {**h, "seconds": r["seconds"], "tokens_per_s": r["tokens_per_s"]}
        for h, r in zip(straight["history"], resumed["history"])
    ]
    assert resumed["test"] == straight["test"]
    result = train(tmp_path / "bad", ["trainer.ema_decay=1.5"], env, check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "error: trainer.ema_decay=1.5 is impossible; it must be a number in (0, 1) or null"
    )


def test_resuming_into_a_new_directory_brings_the_best_checkpoint_along(tmp_path, env):
    train(tmp_path / "first", [], env)
    train(tmp_path / "again", [f"trainer.resume={tmp_path / 'first'}"], env)  # nothing left to train
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["status"] == "completed" and again["test"] == first["test"]
    assert (tmp_path / "again" / "checkpoints" / "best.pt").read_bytes() == (
        tmp_path / "first" / "checkpoints" / "best.pt"
    ).read_bytes()
