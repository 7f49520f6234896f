"""scripts/label_curve.py: the schedule of small subsets, the arms' overrides, resuming and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqmodels import label_curve
from seqmodels.label_curve import Point, arm_overrides, schedule


def test_small_subsets_train_a_fixed_schedule_without_early_stopping():
    assert schedule(100, 64, min_steps=40, min_epochs=3) == [
        "trainer.max_epochs=20",  # 2 batches an epoch: 20 epochs reach 40 steps
        "trainer.early_stopping_patience=null",
    ]
    assert schedule(5000, 64, min_steps=40, min_epochs=3)[0] == "trainer.max_epochs=3"
    assert schedule(None, 64, min_steps=40, min_epochs=3) == []  # all labels: the preset's own schedule


def test_arms_start_the_encoder_from_their_source():
    assert arm_overrides("scratch", []) == []
    assert "model.embedding_dim=50" in arm_overrides("glove", [])
    assert arm_overrides("lm", ["runs/fwd"]) == ["model.init_from=runs/fwd"]
    assert arm_overrides("lm", ["runs/fwd", "runs/bwd"]) == ["model.init_from=[runs/fwd,runs/bwd]"]
    with pytest.raises(SystemExit, match="--lm"):
        arm_overrides("lm", [])


def test_finished_points_are_reported_not_run_again(tmp_path: Path, monkeypatch):
    """Points whose run directory holds test metrics are tabulated; the others are trained (here: refused)."""
    for point, accuracy in ((Point("scratch", 100, 1), 0.61), (Point("lm", 100, 1), 0.83), (Point("lm", None, 1), 0.9)):
        (tmp_path / point.name).mkdir()
        (tmp_path / point.name / "metrics.json").write_text(json.dumps({"test": {"accuracy": accuracy}}))
    trained: list[str] = []
    monkeypatch.setattr(label_curve, "run_point", lambda point, args, run_dir: trained.append(point.name))
    plot = tmp_path / "curve.png"
    argv = ["--arms", "scratch", "lm", "--labels", "100", "all", "--out", str(tmp_path), "--plot", str(plot)]
    assert label_curve.main(argv) == 0
    assert trained == ["scratch-all-s1"]  # the one point without metrics
    table = (tmp_path / "label_curve.md").read_text()
    assert "| 100 | 83.00 | 61.00 |" in table
    assert "| 22,500 | 90.00 | — |" in table
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "label_curve.json").read_text())["points"]
    assert {(r["arm"], r["labels"]) for r in rows} == {("scratch", 100), ("lm", 100), ("lm", 22500)}


def test_seeds_give_mean_and_spread(tmp_path: Path):
    for seed, accuracy in ((1, 0.80), (2, 0.84)):
        point = Point("lm", 500, seed)
        (tmp_path / point.name).mkdir()
        (tmp_path / point.name / "metrics.json").write_text(json.dumps({"test": {"accuracy": accuracy}}))
    argv = ["--arms", "lm", "--labels", "500", "--seeds", "1", "2", "--out", str(tmp_path), "--report-only"]
    assert label_curve.main(argv) == 0
    assert "| 500 | 82.00 ± 2.83 (2) |" in (tmp_path / "label_curve.md").read_text()
