"""A run directory holds one run: a second run into it is refused while the first runs (the lock) and
after it finished (its checkpoints), a refused resume names each differing key before any data is read,
and any refused command leaves an existing run directory byte for byte as it was."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import ROOT, TINY, composed, run_script, start_training, train
from seqmodels.errors import CheckpointError
from seqmodels.models.encoder import EncoderConfig
from seqmodels.tasks import TaskChoice
from seqmodels.train import run
from seqmodels.training import run_lock
from seqmodels.training.averaging import MovingAverage
from seqmodels.training.checkpoint import (
    Best,
    LoopState,
    Position,
    Trained,
    config_differences,
    load_checkpoint,
    resume_training,
    save_checkpoint,
    training_state,
)
from seqmodels.training.optim import LRSchedule, OptimConfig
from seqmodels.training.run_lock import LOCK_FILE, RunDirectoryTaken


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included) and its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid  # ended and reaped: no process has it (until the kernel hands it out again)


# -- the lock ---------------------------------------------------------------------------------------
def test_a_directory_another_process_holds_is_refused_in_one_line_and_left_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # another open file: another holder
    fcntl.flock(holder, fcntl.LOCK_EX)
    record = {"pid": 4242, "host": socket.gethostname(), "started": "2026-12-07 10:00:00"}
    os.write(holder, json.dumps(record).encode())
    before = contents(run_dir)
    message = (
        f"{run_dir} is in use by another run (pid 4242 on {socket.gethostname()}, started 2026-12-07 10:00:00); "
        f"give this run another directory (hydra.run.dir) or wait for that run to end"
    )
    with pytest.raises(RunDirectoryTaken) as refused:
        run_lock.check_free(run_dir)
    assert str(refused.value) == message
    with pytest.raises(RunDirectoryTaken, match="is in use by another run"):
        run_lock.acquire(run_dir)
    assert contents(run_dir) == before
    os.close(holder)
    run_lock.acquire(run_dir)  # free once its holder is gone
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    run_lock.release(run_dir)
    assert (run_dir / LOCK_FILE).read_text() == ""  # released: the record is emptied


def test_the_lock_of_a_killed_run_on_this_host_is_stale(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "started": "x"}))
    run_lock.check_free(run_dir)
    with run_lock.held(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_record_of_a_run_on_another_host_is_refused_naming_the_file_to_delete(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": 7, "host": "node-17", "started": "2026-12-07 09:00:00"}))
    with pytest.raises(RunDirectoryTaken) as refused:
        run_lock.acquire(run_dir)
    assert str(refused.value) == (
        f"{run_dir} is in use by another run (pid 7 on node-17, started 2026-12-07 09:00:00), which this host "
        f"cannot check; give this run another directory (hydra.run.dir), or delete {run_dir / LOCK_FILE} once "
        f"that run is known to be gone"
    )


def test_a_new_run_into_a_directory_with_checkpoints_is_refused_unless_it_continues_them(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    run_lock.check_not_another_runs(run_dir, run_dir / "checkpoints" / "last.pt")  # it continues them
    run_lock.check_not_another_runs(tmp_path / "elsewhere", None)
    with pytest.raises(RunDirectoryTaken) as refused:
        run_lock.check_not_another_runs(run_dir, None)
    assert str(refused.value) == (
        f"{run_dir} holds the checkpoints of another run (checkpoints/last.pt); continue it with "
        f"trainer.resume={run_dir}, or give this run another directory (hydra.run.dir)"
    )
    with pytest.raises(RunDirectoryTaken):  # resumed from elsewhere, it would overwrite them
        run_lock.check_not_another_runs(run_dir, tmp_path / "other" / "checkpoints" / "last.pt")


def test_the_clean_up_of_an_unstarted_run_keeps_a_directory_that_holds_anything_else(tmp_path):
    from seqmodels.cli import _remove_unstarted

    ours, shared = tmp_path / "ours", tmp_path / "shared"
    for folder in (ours, shared):
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "config.yaml").write_text("seed: 42\n")
        (folder / "train.log").write_text("error\n")
    (shared / "events.out.tfevents.1.host").write_bytes(b"another run's curves")
    _remove_unstarted(ours)
    _remove_unstarted(shared)
    assert not ours.exists() and (shared / "events.out.tfevents.1.host").is_file()


# -- resuming -----------------------------------------------------------------------------------------
def test_config_differences_name_each_key_and_let_execution_keys_differ():
    saved = {"task": {"name": "imdb", "kind": "classification"}, "model": {"hidden_size": 128, "rnn_impl": "dense"}}
    given = {
        "task": {"name": "imdb", "kind": "classification"},
        "model": {"hidden_size": 64, "rnn_impl": "packed", "bidirectional": True, "num_layers": 1},
    }
    # rnn_impl is execution-only; bidirectional and num_layers were not saved: the run had their defaults
    assert config_differences(saved, given, {"task": TaskChoice, "model": EncoderConfig}) == [
        "model.hidden_size: 128 in the run, 64 given",
        "model.bidirectional: false in the run, true given",
    ]


def trained_parts(seed: int, decay: float | None = 0.9) -> Trained:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    schedule = LRSchedule(OptimConfig(schedule="cosine"), optimizer, total_steps=10, mode="max")
    average = None if decay is None else MovingAverage(model, decay)
    return Trained(model, average, optimizer, schedule, torch.amp.GradScaler("cuda", enabled=False))


def test_a_checkpoint_resumes_the_weights_their_average_the_optimizer_and_the_loop(tmp_path, caplog):
    saved = trained_parts(seed=0)
    for _ in range(3):  # three steps: the average and the optimizer's moments differ from the weights
        saved.optimizer.zero_grad()
        saved.model(torch.randn(4, 3)).sum().backward()
        saved.optimizer.step()
        saved.schedule.after_step()
        saved.average.update_parameters(saved.model)
    loop = LoopState(1, Position(batches=5, loss_sum=2.5, examples=20), 3, Best(1, 0.75), [{"epoch": 1, "step": 3}])
    artifacts = {"vocabulary": ["<pad>", "a"]}
    state = training_state(saved, loop, ranks=2, metrics={"accuracy": 0.75}, config={"seed": 1}, artifacts=artifacts)
    assert all(torch.equal(state["model"][k], v) for k, v in saved.average.module.state_dict().items())
    assert all(torch.equal(state["trained_model"][k], v) for k, v in saved.model.state_dict().items())
    assert state["average_updates"] == 3 and state["ranks"] == 2 and state["best"] == {"epoch": 1, "value": 0.75}
    save_checkpoint(state, tmp_path / "checkpoints" / "last.pt")

    path, cpu = tmp_path / "checkpoints" / "last.pt", torch.device("cpu")
    resumed = trained_parts(seed=1)
    with caplog.at_level(logging.WARNING, logger="seqmodels"):
        back = resume_training(path, resumed, artifacts, ranks=1, device=cpu)
    for module, weights in ((resumed.model, "trained_model"), (resumed.evaluated, "model")):
        assert all(torch.equal(state[weights][k], v) for k, v in module.state_dict().items())
    assert int(resumed.average.n_averaged) == 3
    assert resumed.optimizer.state_dict()["state"][0]["step"] == saved.optimizer.state_dict()["state"][0]["step"]
    assert resumed.optimizer.param_groups[0]["lr"] == saved.optimizer.param_groups[0]["lr"] < 0.1  # the schedule's
    # two processes had read 5 batches each: one process goes on after the 10 they read together
    assert back == LoopState(1, Position(batches=10, loss_sum=2.5, examples=20), 3, Best(1, 0.75), loop.history)
    assert "checkpoint of 2 processes resumed by 1: the rest of epoch 2 starts at the same place" in caplog.text

    with pytest.raises(CheckpointError) as refused:
        resume_training(path, trained_parts(seed=1), {"vocabulary": ["<pad>", "b"]}, 1, cpu)
    assert str(refused.value) == (
        f"{path} was trained on other prepared data (vocabulary or labels differ); "
        f"resume with the data.* settings of the original run"
    )
    without_average = trained_parts(seed=1, decay=None)  # trained without trainer.ema_decay: the trained weights go on
    resume_training(path, without_average, artifacts, 2, cpu)
    assert all(torch.equal(state["trained_model"][k], v) for k, v in without_average.model.state_dict().items())


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    """A finished 1-epoch run, trained in-process, and its config's overrides."""
    tmp = tmp_path_factory.mktemp("finished")
    overrides = [*TINY, f"data.root={data_root}", f"data.cache_dir={tmp / 'cache'}"]
    run(composed(*overrides), tmp / "run")
    return tmp / "run", overrides


def test_resume_refusals_come_before_any_data_is_read(finished, tmp_path, monkeypatch):
    run_dir, overrides = finished

    def no_data(self):
        raise AssertionError("data was prepared before the refusal")

    monkeypatch.setattr("seqmodels.tasks.classification.ClassificationTask.prepare", no_data)
    (tmp_path / "empty").mkdir()
    damaged = tmp_path / "damaged" / "checkpoints"
    damaged.mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        (damaged / name).write_bytes((run_dir / "checkpoints" / name).read_bytes())
    (damaged / "last.pt").write_bytes((damaged / "last.pt").read_bytes()[:3000])  # cut short
    cases = {
        "model.hidden_size=16": f"cannot resume from {run_dir / 'checkpoints' / 'last.pt'}: model.hidden_size: 12 "
        f"in the run, 16 given; resume with the run's settings (its .hydra/overrides.yaml), or start a new run "
        f"without trainer.resume",
        "data.vocab_size=50": "data.vocab_size: 30000 in the run, 50 given",
        "trainer.resume=/no/such/run": "trainer.resume=/no/such/run: no such run directory or checkpoint file",
        f"trainer.resume={tmp_path / 'empty'}": f"trainer.resume={tmp_path / 'empty'}: the directory holds no "
        f"checkpoints/last.pt (a run writes it after its first epoch or when interrupted); pass a run directory "
        f"that has one, or a checkpoint file",
        f"trainer.resume={tmp_path / 'damaged'}": f"{damaged / 'last.pt'} is not a readable seqmodels checkpoint: "
        f"the file is damaged (cut short or overwritten); {damaged / 'best.pt'} beside it is intact and can be used "
        f"in its place, or a checkpoint of an earlier run",
    }
    for override, message in cases.items():
        resume = [] if override.startswith("trainer.resume") else [f"trainer.resume={run_dir}"]
        with pytest.raises(CheckpointError) as refused:
            run(composed(*overrides, "trainer.max_epochs=2", *resume, override), tmp_path / "new")
        assert message in str(refused.value) and "\n" not in str(refused.value), override
    assert not (tmp_path / "new").exists()


def test_the_resume_line_names_the_monitored_metric(data_root, tmp_path, caplog):
    overrides = [*TINY, f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}", "trainer.monitor=macro_f1"]
    first = run(composed(*overrides), tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        run(composed(*overrides, "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'run'}"), tmp_path / "run")
    best = first["history"][0]["val_macro_f1"]
    assert f"at epoch 2, batch 0 (best macro_f1 {best:.4f} at epoch 1)" in caplog.text


def test_a_damaged_best_checkpoint_for_predict_names_last_pt(finished, tmp_path):
    run_dir, _ = finished
    path = tmp_path / "checkpoints" / "best.pt"
    save_checkpoint({"epoch": 1}, tmp_path / "checkpoints" / "last.pt")
    path.write_bytes((run_dir / "checkpoints" / "best.pt").read_bytes()[:-100])
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    assert str(refused.value) == (
        f"{path} is not a readable seqmodels checkpoint: the file is damaged (cut short or overwritten); "
        f"{tmp_path / 'checkpoints' / 'last.pt'} beside it is intact and can be used in its place, or a checkpoint "
        f"of an earlier run"
    )


# -- the command line ---------------------------------------------------------------------------------
def refuse(args: list[str], env: dict[str, str]) -> str:
    """The one line a refused command prints (exit 2, no traceback)."""
    result = run_script(args, env, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    return lines[-1]


@pytest.fixture(scope="module")
def finished_cli_run(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(tmp / "cache")}
    train(tmp / "run", [], env)
    return tmp / "run", env


REFUSED = {
    "a new run": ([], "holds the checkpoints of another run (checkpoints/best.pt, checkpoints/last.pt)"),
    "another hidden size": (["model.hidden_size=16", "RESUME"], "model.hidden_size: 12 in the run, 16 given"),
    "another vocabulary": (["data.vocab_size=50", "RESUME"], "data.vocab_size: 30000 in the run, 50 given"),
    "a bad value": (["model.dropout=2", "RESUME"], "model.dropout=2 is impossible"),
    "missing data": (["data.root=EMPTY", "data.download=false", "RESUME"], "IMDB not found in"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_command_leaves_an_existing_run_directory_byte_identical(finished_cli_run, tmp_path, case):
    run_dir, env = finished_cli_run
    overrides, message = REFUSED[case]
    overrides = [
        {"RESUME": f"trainer.resume={run_dir}", "data.root=EMPTY": f"data.root={tmp_path}"}.get(o, o) for o in overrides
    ]
    before = contents(run_dir)
    line = refuse([str(ROOT / "train.py"), *TINY, "trainer.max_epochs=2", *overrides, f"hydra.run.dir={run_dir}"], env)
    assert line.startswith("error: ") and message in line, line
    assert contents(run_dir) == before


@pytest.mark.slow
def test_refused_predict_and_evaluate_leave_the_run_directory_byte_identical(finished_cli_run):
    run_dir, env = finished_cli_run
    before = contents(run_dir)
    log = str(run_dir / "train.log")
    line = refuse([str(ROOT / "scripts" / "predict.py"), str(run_dir), "--input", log, "--output", log], env)
    assert line == f"error: --output {log} is the --input file {log}; write the predictions to another file " + (
        "(nothing was written, the input is as it was)"
    )
    line = refuse([str(ROOT / "scripts" / "evaluate.py"), str(run_dir), "--checkpoint", "nothing.pt"], env)
    assert line.startswith(f"error: no checkpoint at {run_dir / 'checkpoints' / 'nothing.pt'}")
    assert contents(run_dir) == before


@pytest.mark.slow
def test_a_second_run_into_a_running_runs_directory_is_refused_and_the_first_goes_on(tmp_path, env):
    run_dir = tmp_path / "run"
    endless = ["data.batch_size=1", "trainer.max_epochs=1000", "trainer.early_stopping_patience=null"]
    first = start_training(run_dir, endless, env)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.pt").exists():  # training, and so past any preparation
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    hydra_record = contents(run_dir / ".hydra")
    record = json.loads((run_dir / LOCK_FILE).read_text())
    line = refuse([str(ROOT / "train.py"), *TINY, *endless, f"hydra.run.dir={run_dir}"], env)
    assert line == (
        f"error: {run_dir} is in use by another run (pid {first.pid} on {socket.gethostname()}, started "
        f"{record['started']}); give this run another directory (hydra.run.dir) or wait for that run to end"
    )
    assert first.poll() is None and contents(run_dir / ".hydra") == hydra_record  # Hydra never ran for it
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM == 143, stderr
    assert "interrupted (SIGTERM); checkpoints/last.pt is saved. Resume with: python train.py" in stderr
    assert (run_dir / "train.log").read_text().count("task: imdb") == 1  # one run's log
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert (run_dir / LOCK_FILE).read_text() == ""  # released at exit
