"""`scripts/evaluate.py` runs the final evaluation `Trainer.finish` runs: the same precision, the same batches
under `trainer.limit_val_batches`, the task's same settings; so it reproduces a run's metrics.json."""

from __future__ import annotations

import json

import pytest

from conftest import TINY, composed
from helpers.parallel_text import write_multi30k
from seqmodels.evaluate import evaluate_checkpoint
from seqmodels.inference.loading import load_run
from seqmodels.train import run

pytestmark = pytest.mark.usefixtures("one_thread")

RUNS = {
    "sentiment": ["task=imdb", "trainer.limit_val_batches=2"],
    "language model, weight average": ["task=ptb", "trainer.limit_val_batches=3", "trainer.ema_decay=0.9"],
    "translation, extra test sets": ["task=multi30k", "model=gru", "data.vocab_size=40", "trainer.limit_val_batches=1"],
}


@pytest.mark.parametrize("overrides", RUNS.values(), ids=RUNS.keys())
def test_evaluate_reproduces_the_runs_metrics(overrides, data_root, tmp_path):
    root = write_multi30k(tmp_path / "data") if "task=multi30k" in overrides else data_root
    cfg = composed(
        *TINY,
        *overrides,
        "trainer.gradient_flow=false",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    run(cfg, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    evaluated = evaluate_checkpoint(load_run(tmp_path / "run"))
    splits = [split for split in recorded if split in evaluated and isinstance(recorded[split], dict)]
    assert {"val", "test"} <= set(splits)
    for split in splits:
        assert evaluated[split] == pytest.approx(recorded[split], rel=1e-6), split
    for key, value in recorded.get("evaluation", {}).items():  # the task's settings (translation: its beam)
        assert evaluated[key] == value
