"""Every config group option composes, and the presets say what they promise."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from seqmodels.config import CONFIG_DIR, PROJECT_ROOT, register_resolvers
from seqmodels.models import check_model_config


def composed(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_defaults_are_the_lstm_on_imdb(monkeypatch):
    monkeypatch.delenv("SEQMODELS_DATA_DIR", raising=False)
    cfg = composed()
    assert (cfg.model.cell, cfg.model.bidirectional, cfg.task.name) == ("lstm", False, "imdb")
    # data.root defaults to data/ in the checkout, not to Hydra's run directory
    assert cfg.data.root == str(PROJECT_ROOT / "data")


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQMODELS_DATA_DIR", str(tmp_path))
    assert composed().data.root == str(tmp_path)


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")))
def test_every_model_preset_is_valid(model):
    cfg = composed(f"model={model}")
    check_model_config(cfg.model)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_is_valid(experiment):
    cfg = composed(f"experiment={experiment}")
    check_model_config(cfg.model)
    assert cfg.trainer.max_epochs >= 1


def test_the_best_imdb_experiment_is_a_bidirectional_lstm():
    cfg = composed("experiment=imdb_best")
    assert (cfg.model.cell, cfg.model.bidirectional, cfg.optim.name) == ("lstm", True, "adamw")


def test_debug_fast_limits_the_run():
    cfg = composed("debug=fast")
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 5
