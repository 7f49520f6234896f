"""`scripts/compare.py`: the table and plots of a multirun, failed jobs included."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, TINY, run_script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ["val_curves.png", "metric_vs_parameters.png", "gradient_flow.png"]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory, data_root):
    """A 2-job multirun in which the first job fails (an impossible hidden size) and the second trains 2 epochs."""
    import os

    tmp = tmp_path_factory.mktemp("compare")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(tmp / "cache")}
    sweep = tmp / "sweep"
    run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            *TINY,
            "model.hidden_size=0,8",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
        check=False,
    )
    return sweep, env


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "compare.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_compare_writes_the_table_and_plots_of_a_multirun(multirun):
    sweep, env = multirun
    result = run_script([str(ROOT / "scripts" / "compare.py"), str(sweep)], env)
    failed, completed = rows(sweep)
    assert failed["run"].startswith("0_") and completed["run"].startswith("1_")
    assert failed["status"] == "failed" and "model.hidden_size=0 is impossible" in failed["error"]
    assert failed["overrides"] == "model.hidden_size=0" and completed["overrides"] == "model.hidden_size=8"
    record = json.loads((sweep / completed["run"] / "metrics.json").read_text())
    assert (completed["status"], completed["task"]) == ("completed", "imdb")
    assert completed["model"] == record["model"] == "LSTM x1, emb 8, hidden 8, dropout 0.3, pooling max"
    assert (completed["hp.cell"], completed["hp.hidden_size"], completed["hp.pooling"]) == ("lstm", "8", "max")
    assert int(completed["parameters"]) == record["parameters"]
    assert completed["metric"] == "accuracy"
    assert float(completed["best_val"]) == record["val"]["accuracy"]
    assert float(completed["test"]) == record["test"]["accuracy"]
    assert int(completed["best_epoch"]) == record["best_epoch"] and completed["epochs"] == "2"
    assert float(completed["wall_time_s"]) > 0 and float(completed["tokens_per_s"]) > 0
    report = (sweep / "COMPARE.md").read_text()
    assert "2 runs from" in report and "1 completed, 1 failed" in report
    assert f"Best: **{completed['run']}**" in report
    assert f"| {failed['run']} | **failed**: model.hidden_size=0 is impossible" in report
    for plot in PLOTS:
        assert f"]({plot})" in report
        data = (sweep / plot).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(sweep / plot) as image:
            image.verify()
        with Image.open(sweep / plot) as image:
            assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 300
    assert f"wrote {sweep / 'COMPARE.md'}" in result.stdout and "| run | status |" in result.stdout


@pytest.mark.slow
def test_a_job_without_metrics_shows_as_failed_and_any_run_directories_compare(multirun, tmp_path):
    sweep, env = multirun
    completed = next(p for p in sweep.iterdir() if p.name.startswith("1_"))
    killed = tmp_path / "killed"
    shutil.copytree(completed / ".hydra", killed / ".hydra")  # started, then killed before writing metrics.json
    out = tmp_path / "report"
    run_script([str(ROOT / "scripts" / "compare.py"), str(completed), str(killed), "--out", str(out)], env)
    finished, missing = rows(out)
    assert finished["status"] == "completed"
    assert missing["status"] == "failed" and missing["error"].startswith("no metrics.json")
    assert missing["task"] == "imdb"  # what it was, from its config
    assert missing["run"].endswith("killed")  # named relative to the folder that holds both runs
    assert f"| {missing['run']} | **failed**: no metrics.json" in (out / "COMPARE.md").read_text()


def test_compare_on_a_folder_without_runs_is_one_clear_line(tmp_path, env):
    result = run_script([str(ROOT / "scripts" / "compare.py"), str(tmp_path)], env, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path} holds no run directories (folders with .hydra/ or metrics.json)"


@pytest.mark.slow
def test_compare_finds_runs_however_deeply_nested(multirun, tmp_path):
    sweep, env = multirun
    completed = next(p for p in sweep.iterdir() if p.name.startswith("1_"))
    shutil.copytree(completed, tmp_path / "all" / "a" / "b" / "job")
    shutil.copytree(completed, tmp_path / "all" / "c" / "job")
    out = tmp_path / "report"
    run_script([str(ROOT / "scripts" / "compare.py"), str(tmp_path / "all"), "--out", str(out)], env)
    assert [(row["run"], row["status"]) for row in rows(out)] == [("a/b/job", "completed"), ("c/job", "completed")]
