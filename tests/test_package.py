"""`pip install .` (not editable): the wheel carries the configs, and training works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TINY


@pytest.mark.slow
def test_the_installed_wheel_trains_from_any_directory(tmp_path, data_root):
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "anywhere"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("seqmodels-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "seqmodels" / "configs" / "config.yaml").is_file()  # the configs are package data
    # the wheel's code, not the checkout's, with the dependencies of this environment
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "SEQMODELS_DATA_DIR": str(data_root),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    env.pop("SEQMODELS_CACHE_DIR", None)
    where = subprocess.run(
        [sys.executable, "-c", "import seqmodels; print(seqmodels.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))
    result = subprocess.run(
        [str(target / "bin" / "seqmodels-train"), *TINY, "trainer.limit_train_batches=2"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    runs = list((work / "outputs").glob("imdb/*/*/metrics.json"))  # outputs/TASK/MODEL/TIME in the current directory
    assert len(runs) == 1 and json.loads(runs[0].read_text())["status"] == "completed"
    assert list((tmp_path / "xdg" / "seqmodels").glob("imdb-*.pt"))  # the cache in the user's cache folder
