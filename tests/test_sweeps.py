"""Hyper-parameter search with Optuna (a stored study continues where it stopped) and parallel
multirun jobs that share the cores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf
from optuna.trial import TrialState

from conftest import ROOT, TINY, run_script
from seqmodels.cli import parallel_jobs
from seqmodels.config import CONFIG_DIR, register_configs
from seqmodels.tasks import get_task
from seqmodels.training import runtime

SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
SMALL = [*TINY, "model.hidden_size=8", "model.num_layers=1", "trainer.limit_train_batches=2"]


def search(sweep: Path, n_trials: int, env, *overrides: str, check: bool = True):
    return run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "hparams_search=imdb_optuna",
            *SMALL,
            *overrides,
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
        check=check,
    )


def study(sweep: Path, name: str = "imdb_optuna") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


def trial_dirs(sweep: Path) -> list[str]:
    return sorted((p.name for p in sweep.glob("trial_*")), key=lambda name: int(name.split("_")[1]))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_optimises_its_tasks_metric_in_a_stored_seeded_study(name, monkeypatch):
    monkeypatch.delenv("SEQMODELS_DATA_DIR", raising=False)
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    task = get_task(cfg)
    assert sweeper.direction == {"max": "maximize", "min": "minimize"}[task.mode]
    assert name.startswith(cfg.task.name) and sweeper.study_name == name
    assert sweeper._target_.endswith("ResumableOptunaSweeper") and sweeper.max_failure_rate == 1.0
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db" and cfg.hydra.sweep.dir.endswith(name)
    assert sweeper.sampler.seed is not None
    params = set(sweeper.params)
    assert {"optim.lr", "model.hidden_size", "model.num_layers", "model.dropout"} <= params
    assert ("model.bidirectional" in params) == (cfg.task.kind != "language_model")  # a LM reads left to right
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, key  # every searched key exists


def test_a_two_trial_search_runs_end_to_end(tmp_path, env):
    sweep = tmp_path / "sweep"
    search(sweep, 2, env)
    trials = study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trial_dirs(sweep) == ["trial_0", "trial_1"]
    for trial in trials:  # each trial's value is its run's validation accuracy; its parameters, its overrides
        run_dir = sweep / f"trial_{trial.number}"
        assert trial.value == metrics(run_dir)["val"]["accuracy"]
        overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
        assert f"optim.lr={trial.params['optim.lr']}" in overrides
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(t.value for t in trials)


def test_a_stored_study_continues_where_it_stopped(tmp_path, env):
    sweep = tmp_path / "sweep"
    search(sweep, 1, env)
    first = study(sweep).trials[0]
    # the same command with n_trials=2: one more trial, not two, and not a replay of the first
    result = search(sweep, 2, env)
    assert "1 trials finished, 1 to go" in result.stderr + result.stdout
    trials = study(sweep).trials
    assert len(trials) == 2 and [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].datetime_start == first.datetime_start and trials[0].params == first.params
    assert trials[1].params != first.params  # the seeded sampler was not restarted from its first draw
    assert trial_dirs(sweep) == ["trial_0", "trial_1"]
    # a sweep interrupted in the middle of a trial leaves it "running" in the database
    stopped = study(sweep).ask(fixed_distributions=dict(first.distributions))
    search(sweep, 3, env)
    trials = study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[3].params == stopped.params  # the interrupted trial ran again, first
    assert trial_dirs(sweep) == ["trial_0", "trial_1", "trial_3"]
    # a finished study runs nothing more; one with other overrides is refused in one line
    search(sweep, 3, env)
    assert len(study(sweep).trials) == 4
    refused = search(sweep, 4, env, "model.embedding_dim=6", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert re.search(r"error: the study 'imdb_optuna' in .* was started with the overrides", refused.stderr)


def test_a_failed_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path, env):
    sweep = tmp_path / "sweep"
    # a language model refuses model.bidirectional=true: those trials fail, the others complete
    search(sweep, 2, env, "task=ptb", "data.bptt=8")
    trials = study(sweep).trials
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}
    for trial in trials:
        record = metrics(sweep / f"trial_{trial.number}")
        failed = trial.params["model.bidirectional"]
        assert (trial.state == TrialState.FAIL) == failed
        assert record["status"] == ("failed" if failed else "completed")


# -- parallel jobs share the cores -----------------------------------------------------------
def test_a_job_gets_its_share_of_the_cores():
    assert runtime.job_threads(None, 4, cores=8) == 2
    assert runtime.job_threads(None, 3, cores=2) == 1  # never less than one
    assert runtime.job_threads(None, 1, cores=8) is None  # alone: torch's default
    assert runtime.job_threads(3, 4, cores=8) == 3  # an explicit trainer.num_threads wins


def hydra_node(mode: RunMode, launcher: dict, sweeper: dict):
    return OmegaConf.create({"mode": mode, "launcher": launcher, "sweeper": sweeper})


def test_parallel_jobs_come_from_the_launcher_and_the_sweeper(monkeypatch):
    monkeypatch.setattr("seqmodels.cli.available_cores", lambda: 8)
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert parallel_jobs(hydra_node(RunMode.RUN, {"n_jobs": 4}, {})) == 1
    assert parallel_jobs(hydra_node(RunMode.MULTIRUN, basic, {"max_batch_size": None})) == 1
    assert parallel_jobs(hydra_node(RunMode.MULTIRUN, {"n_jobs": 4}, {})) == 4
    assert parallel_jobs(hydra_node(RunMode.MULTIRUN, {"n_jobs": -1}, {})) == 8  # joblib: -1 is every core
    assert parallel_jobs(hydra_node(RunMode.MULTIRUN, {"n_jobs": -2}, {})) == 7
    assert parallel_jobs(hydra_node(RunMode.MULTIRUN, {"n_jobs": 4}, {"n_jobs": 2})) == 2  # Optuna asks 2 at a time


def test_parallel_multirun_jobs_split_the_cores(tmp_path, env):
    sweep = tmp_path / "sweep"
    tiny = [o for o in SMALL if not o.startswith("trainer.num_threads")]
    run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "model=rnn,gru",
            *tiny,
            "trainer.num_threads=null",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    share = max(1, runtime.available_cores() // 2)
    for job in jobs:
        assert metrics(job)["status"] == "completed"
        log = (job / "train.log").read_text()
        assert f"threads: {share} (2 parallel jobs share {runtime.available_cores()} cores)" in log
