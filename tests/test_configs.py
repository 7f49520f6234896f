"""Every config group option composes and is fully valid; the declared schema refuses bad values in
one line that names the key, the value and what to use."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf

from conftest import composed
from seqmodels.cli import check_group_overrides
from seqmodels.config import CONFIG_DIR, job_dirname, register_configs
from seqmodels.errors import ConfigError
from seqmodels.schema import defaults, help_lines
from seqmodels.train import check_config, check_override_keys
from seqmodels.training.trainer import TrainerConfig


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_defaults_are_the_lstm_on_imdb(monkeypatch, tmp_path):
    monkeypatch.delenv("SEQMODELS_DATA_DIR", raising=False)
    monkeypatch.delenv("SEQMODELS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    cfg = composed()
    assert (cfg.model.cell, cfg.model.bidirectional, cfg.task.name) == ("lstm", False, "imdb")
    # data.root defaults to data/ where train.py runs (not Hydra's run directory); the cache to the user's
    assert cfg.data.root == str(tmp_path / "data")
    assert cfg.data.cache_dir == str(tmp_path / "xdg" / "seqmodels")


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQMODELS_DATA_DIR", str(tmp_path))
    assert composed().data.root == str(tmp_path)


def test_every_key_comes_from_its_declaration():
    """The YAML holds no default of its own: a composed trainer section is exactly the declared one."""
    assert OmegaConf.to_container(composed().trainer) == defaults(TrainerConfig)
    assert any(
        line.startswith("trainer.max_epochs (int, default 5): epochs to train")
        for line in help_lines(TrainerConfig, "trainer")
    )


@pytest.mark.parametrize(
    "group,preset",
    [(group, preset) for group in ("model", "task", "optim", "debug", "experiment") for preset in presets(group)],
)
def test_every_preset_is_fully_valid(group, preset):
    needs = ["data.path=any.txt"] if preset in ("chars", "translation", "words") else []  # the keys without a default
    needs += ["data.train=any.csv"] if preset == "classification" else []
    needs += ["data.train=any.conllu"] if preset == "tagging" else []
    task = check_config(composed(f"{group}={preset}", *needs))  # data, model, trainer, optim and rules between them
    assert task.describe()


GPU_PRESETS = ["imdb_gpu", "conll2003_gpu", "ptb_medium", "wikitext2"]


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_a_gpu_preset_composes_on_a_cpu_and_takes_the_gpu_where_there_is_one(preset):
    """Sized for a GPU, yet valid on any machine: the device and the encoder's implementation are left
    to `auto` (CUDA and its fused packed RNN where present), never pinned to a GPU that may be missing."""
    cfg = composed(f"experiment={preset}")
    assert preset in presets("experiment")
    assert (cfg.trainer.device, cfg.model.rnn_impl) == ("auto", "auto")
    check_config(cfg)


def sweep_values(key: str, value: str) -> list:
    """The values a sweeper may try for `key`: every choice, and the ends of an interval."""
    override = OverridesParser.create().parse_overrides([f"{key}={value}"])[0]
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return list(sweep.list)
    assert isinstance(sweep, IntervalSweep), (key, value)
    return [sweep.start, sweep.end]


@pytest.mark.parametrize("name", presets("hparams_search"))
def test_every_search_space_holds_only_valid_configs(name):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    space = dict(cfg.hydra.sweeper.params)
    cfg = composed(f"hparams_search={name}")
    check_config(cfg.copy())
    for key, value in space.items():
        for candidate in sweep_values(key, value):
            trial = cfg.copy()
            OmegaConf.update(trial, key, candidate)
            check_config(trial)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.hidden_size=0"], "model.hidden_size=0 is impossible; it must be a positive integer"),
        (["model.dropout=1.0"], "model.dropout=1.0 is impossible; it must be a number in [0, 1)"),
        (
            ["model.cell=transformer"],
            "model.cell='transformer' is unknown; use one of ['gru', 'lstm', 'rnn'] (e.g. model=lstm)",
        ),
        (["model.pooling=attention"], "model.pooling='attention' is unknown; use one of"),
        (["model.bidirectional=2"], "model.bidirectional=2 must be true or false"),
        (["+model.hiden_size=64"], "model.hiden_size is not a setting of `model`; did you mean model.hidden_size?"),
        (["+model.crf=true"], "model.crf is not a setting of `model`"),  # a tagger's key, not a classifier's
        (["optim.name=adamx"], "optim.name='adamx' is unknown; use one of ['adam', 'adamw', 'sgd'] (e.g. optim=adamw)"),
        (["optim.betas=[0.9]"], "optim.betas=[0.9] is impossible; use two numbers in [0, 1), e.g. [0.9,0.999]"),
        (["trainer.precision=64"], "trainer.precision=64 is unknown; use one of ['16', '32', 'bf16']"),
        (
            ["trainer.device=cuda"],
            "trainer.device=cuda but no CUDA device is available; use trainer.device=auto or cpu",
        ),
        (["trainer.ema_decay=1.5"], "trainer.ema_decay=1.5 is impossible; it must be a number in (0, 1) or null"),
        (["data.batch_size=0"], "data.batch_size=0 is impossible; it must be a positive integer"),
        (["data.keep=middle"], "data.keep='middle' is unknown; use one of ['head', 'tail'] (head: first tokens"),
        (["seed=-1"], "seed=-1 is impossible; it must be an integer >= 0"),
        (["+sed=1"], "sed is not a setting at the top level; did you mean seed?"),
        (["task=ptb", "model.bidirectional=true"], "model.bidirectional=true cannot predict the next token"),
        (
            ["task=ptb", "model.tie_weights=true", "model.hidden_size=12"],
            "model.tie_weights=true needs model.embedding_dim == model.hidden_size (got 128 and 12)",
        ),
        (
            ["task=ptb", "model.tie_weights=true", "model.adaptive_cutoffs=[10]"],
            "model.tie_weights=true needs a full softmax",
        ),
        (["task=ptb", "model.adaptive_cutoffs=[20,10]"], "model.adaptive_cutoffs=[20, 10] is impossible"),
        (
            ["task=ptb", "model.adaptive_cutoffs=abc"],
            "model.adaptive_cutoffs='abc' is impossible; use a list of word counts",
        ),
        (["task=chars"], "task=chars needs a text file: add data.path=/path/to/file.txt"),
        (["task=chars", "data.path=x", "data.val_fraction=0.6", "data.test_fraction=0.5"], "together below 1"),
        (["task=conll2003", "model.char_dim=8", "model.char_kernel_size=4"], "model.char_kernel_size=4 must be odd"),
        (
            ["task=conll2003", "model.singleton_dropout=0.5"],
            "model.singleton_dropout needs words seen once in the vocabulary, but data.min_freq=2",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_fix(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_config(composed(*overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.hiden_size=64", "model.hiden_size is not a setting of `model`; did you mean model.hidden_size?"),
        ("trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
        ("sed=3", "did you mean seed?"),
    ],
)
def test_a_misspelt_key_is_named_before_hydra_composes(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_override_keys([override])
    check_override_keys(["model.crf=true", "data.bptt=20", "seed=1", "+x.y=1", "hydra.run.dir=x"])  # some task has them


@pytest.mark.parametrize(
    "override,message",
    [
        ("model=transformer", "model=transformer is not a model config; use one of ['bilstm', 'gru', 'lstm', 'rnn']"),
        ("task=0", "task=0 is not a task config; use one of"),
        ("model=lstm,transformer", "model=transformer is not a model config"),  # a sweep's every choice
    ],
)
def test_an_unknown_group_choice_lists_the_valid_ones(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_group_overrides([override])
    check_group_overrides(["model=gru", "task=conll2003", "model=rnn,lstm"])


def test_multirun_job_directories_are_flat_and_readable():
    name = job_dirname(
        3,
        [
            "model=lstm",
            "data.root=/some/folder/data",
            "trainer.resume=/runs/a/checkpoints/last.pt",
            "seed=4",
            "trainer.num_threads=1",
        ],
    )
    assert name == "3_model=lstm,data.root=data,trainer.resume=last.pt"
    assert job_dirname(0, ["data.path=/a/b/"]) == "0_data.path=b" and job_dirname(7, []) == "7"
    assert len(job_dirname(1, [f"model.hidden_size={'9' * 300}"])) < 130


def test_keys_prints_each_key_on_one_line_list_defaults_included():
    from seqmodels.training.optim import OptimConfig

    lines = help_lines(OptimConfig, "optim")
    assert "optim.betas (list of float, default [0.9, 0.999]): Adam's moment decays" in lines
    assert all("\n" not in line for line in lines)
