"""scripts/gpu_check.sh in its dry mode: every stage on the CPU with tiny models, on tiny data written here,
one table with a row for each stage's every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, tar_directory, write_aclimdb, write_conll, write_ptb
from test_translation import write_multi30k


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
    assert "failed" not in table["pytest -m cuda tests/test_cuda.py"][3]
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
