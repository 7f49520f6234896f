"""scripts/gpu_check.sh in its dry mode (slow): every stage on the CPU with tiny models, on tiny data written
here, one table with a row for each stage's every run; and scripts/gpu_check_report.py's reading of what a
GPU run leaves (pytest's log, a stopped run's metrics, torch without CUDA), which the dry mode cannot show."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, tar_directory, write_aclimdb, write_conll, write_ptb
from helpers.parallel_text import write_multi30k


def tiny_data(root: Path, staging: Path) -> Path:
    """Every dataset gpu_check trains but WikiText-2, whose runs are then skipped with a note."""
    (root / "imdb").mkdir(parents=True)
    tar_directory(write_aclimdb(staging), root / "imdb" / "aclImdb_v1.tar.gz")
    write_conll(root / "conll2003")
    write_ptb(root / "ptb")
    write_multi30k(root)
    return root


def rows(results: str) -> dict[str, list[str]]:
    """The table's rows, keyed by their run column: [stage, status, ...]."""
    found = {}
    for line in results.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) >= 3 and cells[0] != "stage":
            found[cells[1]] = [cells[0], *cells[2:]]
    return found


@pytest.mark.slow
def test_the_dry_mode_runs_every_stage_and_writes_one_table(tmp_path):
    data = tiny_data(tmp_path / "data", tmp_path / "staging")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "SEQMODELS_DATA_DIR": str(data),
        "GPU_CHECK_PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    env.pop("SEQMODELS_CACHE_DIR", None)  # the script's own: OUT_DIR/cache
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = (out / "results.md").read_text()
    assert results.startswith("# GPU check, dry mode")
    table = rows(results)
    assert len(table) == 16  # setup, data, the tests, 5 tasks x 2 precisions, 2 benchmarks, ptb_medium

    expected_ok = ["environment", "data (cached while stage 1 ran)", "pytest -m cuda tests/test_cuda.py"]
    for task, preset in [("imdb", "imdb_gpu"), ("conll2003", "conll2003_gpu"), ("ptb", "ptb_medium")]:
        expected_ok += [f"{task} (experiment={preset}) precision {p}" for p in ("32", "bf16")]
    expected_ok += [f"multi30k (experiment=multi30k_best) precision {p}" for p in ("32", "bf16")]
    expected_ok += [f"benchmark imdb (experiment=imdb_gpu) rnn_impl={impl} batch 8" for impl in ("dense", "packed")]
    expected_ok += ["experiment=ptb_medium (Zaremba et al. 2014 medium: test perplexity 82.7)"]
    for run in expected_ok:
        assert run in table and table[run][1] == "ok", (run, table.get(run), results)
    for precision in ("32", "bf16"):
        skipped = table[f"wikitext2 (experiment=wikitext2) precision {precision}"]
        assert skipped[1] == f"skipped: no {data}/wikitext-2"

    prepared = table["data (cached while stage 1 ran)"][-2]
    assert re.search(r"imdb prepared in [\d.]+ s", prepared) and f"wikitext2: no {data}/wikitext-2" in prepared
    stages = {row[0] for row in table.values()}
    assert stages == {"setup", "1 tests", "2 train", "3 benchmark", "4 ptb_medium"}
    assert re.search(r"\b\d+ passed\b", table["pytest -m cuda tests/test_cuda.py"][3])
    assert not re.search(r"\b\d+ (failed|errors?)\b", table["pytest -m cuda tests/test_cuda.py"][3])
    imdb = table["imdb (experiment=imdb_gpu) precision 32"]
    assert re.fullmatch(r"\d+\.\d{4}", imdb[2]) and imdb[3].startswith("val accuracy")  # train loss, metric
    assert re.fullmatch(r"[\d,]+", imdb[4]) and imdb[5] == "—"  # tokens/s; no GPU memory on the CPU
    assert (
        "val perplexity per epoch: "
        in table["experiment=ptb_medium (Zaremba et al. 2014 medium: test perplexity 82.7)"][3]
    )

    with tarfile.open(out / "logs.tar.gz") as archive:
        names = archive.getnames()
    assert "results.md" in names and "logs/pytest-cuda.log" in names
    assert any(name.endswith("train-imdb-32/metrics.json") for name in names)
    assert not any(name.endswith(".pt") for name in names)  # checkpoints stay out


@pytest.mark.slow
def test_without_an_out_dir_the_usage_is_printed():
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--dry OUT_DIR" in result.stdout and "set -uo" not in result.stdout


# -- the report's reading of what the runs left, in this process --------------------------------------
SPEC = importlib.util.spec_from_file_location("gpu_check_report", ROOT / "scripts" / "gpu_check_report.py")
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)


def added(tmp_path: Path, *args: str) -> dict:
    rows = tmp_path / "rows.jsonl"
    report.main(["add", str(rows), "--stage", "s", "--run", "r", "--status", "ok", *args])
    return json.loads(rows.read_text().splitlines()[-1])


def test_a_pytest_row_has_the_summary_and_the_failed_tests(tmp_path):
    log = tmp_path / "pytest.log"
    log.write_text(
        "..F.x\nFAILED tests/test_cuda.py::test_one[ner-packed] - AssertionError: gradient\n"
        "XFAIL tests/test_cuda.py::test_sync[imdb] - only the known syncs\n"
        "===== 1 failed, 27 passed, 15 xfailed in 31.20s =====\n"
    )
    row = added(tmp_path, "--kind", "pytest", "--pytest-log", str(log))
    assert row["metric"] == "1 failed, 27 passed, 15 xfailed in 31.20s"
    assert row["notes"] == "failed: test_one[ner-packed]"


def test_a_stopped_long_run_lists_validation_perplexity_per_epoch(tmp_path):
    metrics = tmp_path / "metrics.json"
    history = [
        {"epoch": e, "train_loss": 5.0 - e, "val_perplexity": p, "seconds": 20.5, "tokens_per_s": 9e4}
        for e, p in ((1, 150.0), (2, 120.5))
    ]
    metrics.write_text(
        json.dumps(
            {
                "status": "interrupted",
                "monitor": "val/perplexity",
                "hparams": {"max_epochs": 39},
                "train_tokens_per_s": 90000.0,
                "history": history,
                "device": "cuda",
            }
        )
    )
    peak = tmp_path / "peak.json"
    peak.write_text(json.dumps({"max_memory_allocated": 3 * 2**30, "max_memory_reserved": 4 * 2**30}))
    row = added(tmp_path, "--kind", "long_run", "--metrics", str(metrics), "--peak", str(peak))
    assert row["metric"] == "val perplexity per epoch: 150.00, 120.50"
    assert (row["train loss"], row["tokens/s"], row["peak GPU memory"]) == ("3.0000", "90,000", "3.00 GiB")
    assert row["notes"].startswith("2 of 39 epochs, 20 s each; reserved 4.00 GiB; run interrupted")


def test_torch_without_cuda_is_said_loudly_on_a_gpu_check(tmp_path):
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"torch": "2.13.0+cpu", "cuda": None, "cuda_available": False, "venv": ".venv"}))
    out = tmp_path / "results.md"
    report.main(["table", str(tmp_path / "none.jsonl"), str(out), "--env", str(env), "--mode", "gpu"])
    assert "**NO CUDA: torch here is a CPU-only build; every GPU stage below is void.**" in out.read_text()
    report.main(["table", str(tmp_path / "none.jsonl"), str(out), "--env", str(env), "--mode", "dry"])
    assert "NO CUDA" not in out.read_text()
