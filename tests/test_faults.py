"""Faults lose nothing: Ctrl-C and SIGKILL resume exactly, NaN stops cleanly, saves are atomic."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, composed, start_training, train
from seqmodels.atomic import save_json, save_torch
from seqmodels.data.cache import cached
from seqmodels.errors import TrainingError
from seqmodels.tasks.classification import ClassificationTask
from seqmodels.train import run

SLOW = ["data.batch_size=1", "trainer.max_epochs=2", "trainer.progress_interval_s=0"]  # 43 steps of ~2 ms an epoch


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"run ended before the fault: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.002)  # a step takes ~2 ms: the signal must land well before the epoch's end


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    import os

    tmp = tmp_path_factory.mktemp("straight")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(tmp / "cache")}
    train(tmp / "run", SLOW, env)
    return metrics(tmp / "run")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; torchrun's or SLURM's stop
def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(stop_signal, uninterrupted, tmp_path, env):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, SLOW, env)
    log = run_dir / "train.log"
    wait_for(lambda: log.exists() and "epoch 1/2 [20/" in log.read_text(), process)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + stop_signal  # 130 for Ctrl-C, 143 for SIGTERM, as the shell reports them
    assert f"interrupted ({stop_signal.name}); checkpoints/last.pt is saved. Resume with: python train.py" in stderr
    assert f"trainer.resume={run_dir}" in stderr and "Traceback" not in stderr
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and 20 <= state["position"]["batches"] < 90  # mid-epoch
    assert metrics(run_dir)["status"] == "interrupted"
    train(run_dir, [*SLOW, f"trainer.resume={run_dir}"], env)
    resumed = metrics(run_dir)
    assert resumed["status"] == "completed"
    assert resumed["val"] == uninterrupted["val"] and resumed["test"] == uninterrupted["test"]
    assert "at epoch 1, batch " in (run_dir / "train.log").read_text()
    assert "(no epoch validated yet)" in (run_dir / "train.log").read_text()


def test_sigkill_after_an_epoch_resumes_exactly(uninterrupted, tmp_path, env):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, SLOW, env)
    wait_for(lambda: (run_dir / "checkpoints" / "last.pt").exists(), process)
    process.kill()  # no chance to clean up: whatever is on disk must be usable
    process.communicate()
    train(run_dir, [*SLOW, f"trainer.resume={run_dir}"], env)
    resumed = metrics(run_dir)
    assert resumed["val"] == uninterrupted["val"] and resumed["test"] == uninterrupted["test"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, env):
    train(tmp_path / "first", [], env)
    result = train(
        tmp_path / "second", ["model.hidden_size=6", f"trainer.resume={tmp_path / 'first'}"], env, check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot resume from {tmp_path / 'first' / 'checkpoints' / 'last.pt'}: model.hidden_size: 12 in the "
        f"run, 6 given; resume with the run's settings (its .hydra/overrides.yaml), or start a new run without "
        f"trainer.resume"
    )
    assert not (tmp_path / "second").exists()  # refused before Hydra made the directory


def test_a_nan_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(tmp_path, data_root, monkeypatch):
    # gradient_flow=false: the measurement after validation would be one more call of step()
    cfg = composed(
        *TINY,
        "trainer.max_epochs=3",
        "trainer.gradient_flow=false",
        f"data.root={data_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    real_step = ClassificationTask.step
    steps = []

    def step_that_diverges(self, model, batch):
        out = real_step(self, model, batch)
        steps.append(1)
        if len(steps) == 9:  # 6 training + 1 validation call in epoch 1, then training step 8
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(ClassificationTask, "step", step_that_diverges)
    with pytest.raises(
        TrainingError,
        match=r"training loss became nan at epoch 2, step 8; lower optim\.lr or set "
        r"trainer\.grad_clip .* checkpoints/last\.pt holds the last good epoch",
    ):
        run(cfg, tmp_path / "run")
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    record = metrics(tmp_path / "run")
    assert record["status"] == "failed" and [h["epoch"] for h in record["history"]] == [1]


def test_a_failing_multirun_job_is_recorded_and_does_not_stop_the_others(tmp_path, env):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", *TINY, "model.hidden_size=0,4", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0  # the sweep as a whole reports the failure
    failed, finished = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert metrics(failed) == {
        "status": "failed",
        "error": "model.hidden_size=0 is impossible; it must be a positive integer",
    }
    assert metrics(finished)["status"] == "completed"


def test_a_crash_during_a_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_torch({"epoch": 1}, path)
    save_json({"epoch": 1}, tmp_path / "metrics.json")

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space left"):
        save_torch({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "metrics.json"]  # no temporary left


def test_a_damaged_cache_entry_is_rebuilt_not_used(tmp_path):
    entry, was_cached = cached(tmp_path, "demo", "key", lambda: {"ids": torch.arange(3)})
    assert not was_cached
    (tmp_path / "demo-key.pt").write_bytes((tmp_path / "demo-key.pt").read_bytes()[:50])  # truncated
    entry, was_cached = cached(tmp_path, "demo", "key", lambda: {"ids": torch.arange(5)})
    assert not was_cached and entry["ids"].tolist() == [0, 1, 2, 3, 4]


def test_archive_members_cannot_write_outside_the_dataset_folder(tmp_path):
    import zipfile

    from seqmodels.data import wikitext2

    root = tmp_path / "root"
    (root / "wikitext-2").mkdir(parents=True)
    with zipfile.ZipFile(root / "wikitext-2" / wikitext2.ARCHIVE, "w") as archive:
        for name in wikitext2.FILES.values():
            archive.writestr(f"../../escaped/{name}", " a b c \n")
    paths = wikitext2.locate(root, allow_download=False)
    assert all(path.parent == root / "wikitext-2" and path.read_text() == " a b c \n" for path in paths.values())
    assert not (tmp_path / "escaped").exists() and not (root.parent.parent / "escaped").exists()


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"not a checkpoint at all", "is not a readable seqmodels checkpoint"),
        ("pickled code", "is not a readable seqmodels checkpoint"),
        ({"format": 99}, "is not a seqmodels checkpoint of format 1"),
    ],
)
def test_predict_refuses_what_is_not_a_checkpoint_without_running_it(tmp_path, env, content, problem):
    from conftest import run_script

    path = tmp_path / "run" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickled code":
        torch.save({"format": 1, "payload": Path("/")}, path)  # an object a weights-only load must refuse
    else:
        torch.save(content, path)
    result = run_script([str(ROOT / "scripts" / "predict.py"), str(tmp_path / "run"), "text"], env, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path} {problem}"), result.stderr


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_keep_the_mode_the_umask_gives_new_files(tmp_path, mask):
    from seqmodels.atomic import AtomicOutput

    previous = os.umask(mask)
    try:
        save_json({"epoch": 1}, tmp_path / "metrics.json")
        save_torch({"epoch": 1}, tmp_path / "checkpoints" / "last.pt")
        output = AtomicOutput(str(tmp_path / "predictions.jsonl"))
        output.commit('{"label": "positive"}\n')
        (tmp_path / "train.log").write_text("as any file the run opens itself\n")
    finally:
        os.umask(previous)
    expected = 0o666 & ~mask
    for path in ("metrics.json", "checkpoints/last.pt", "predictions.jsonl", "train.log"):
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == expected, path
