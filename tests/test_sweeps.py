"""Hyper-parameter search with Optuna (seqmodels' sweeper around Optuna's ask-and-tell interface; a
stored study continues where it stopped) and parallel multirun jobs that share the cores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from conftest import ROOT, TINY, run_script
from hydra_plugins.seqmodels_sweeper.resumable_optuna import ResumableOptunaSweeperConf
from seqmodels.cli import parallel_jobs
from seqmodels.config import CONFIG_DIR, register_configs
from seqmodels.errors import ConfigError
from seqmodels.sweeps import SweepError, run_search, search_space
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
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == "seqmodels_optuna"
    assert sweeper.direction.name == {"max": "maximize", "min": "minimize"}[task.mode]
    assert name.startswith(cfg.task.name) and sweeper.study_name == name
    assert sweeper._target_.endswith("ResumableOptunaSweeper") and sweeper.max_failure_rate == 1.0
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db" and cfg.hydra.sweep.dir.endswith(name)
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    params = set(sweeper.params)
    assert {"optim.lr", "model.hidden_size", "model.num_layers", "model.dropout"} <= params
    assert ("model.bidirectional" in params) == (cfg.task.kind != "language_model")  # a LM reads left to right
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, key  # every searched key exists


# -- the search space: Hydra's sweep syntax as Optuna distributions ----------------------------
def parsed(override: str):
    return OverridesParser.create().parse_overrides([override])[0].value()


def test_the_params_syntax_becomes_optuna_distributions():
    space = search_space(
        {
            "optim.lr": "tag(log, interval(3e-4, 1e-2))",
            "model.dropout": "interval(0, 0.6)",
            "model.hidden_size": "choice(64, 128, 256)",
            "model.num_layers": "int(interval(1, 4))",
            "model.embedding_dim": "tag(log, int(interval(16, 256)))",
            "data.batch_size": "range(8, 40, 8)",
            "model.bidirectional": "choice(false, true)",
            "model.cell": "choice(gru, lstm)",
        },
        [],
    )
    d = space.distributions
    assert d["optim.lr"] == FloatDistribution(3e-4, 1e-2, log=True)
    assert d["model.dropout"] == FloatDistribution(0.0, 0.6)  # interval: floats, even with whole ends
    assert d["model.hidden_size"] == CategoricalDistribution([64, 128, 256])
    assert d["model.num_layers"] == IntDistribution(1, 4)
    assert d["model.embedding_dim"] == IntDistribution(16, 256, log=True)
    assert d["data.batch_size"] == IntDistribution(8, 32, step=8)  # Hydra's range stops before its end
    assert d["model.bidirectional"] == CategoricalDistribution([False, True])
    assert d["model.cell"] == CategoricalDistribution(["gru", "lstm"])
    assert not space.fixed


def test_a_value_on_the_command_line_leaves_the_search():
    params = {"optim.lr": "tag(log, interval(3e-4, 1e-2))", "model.hidden_size": "choice(64, 128)"}
    space = search_space(params, ["model.hidden_size=32", "+trainer.extra=a b", "task=ptb", "model.cell=gru,lstm"])
    assert set(space.distributions) == {"optim.lr", "model.cell"}  # a sweep on the command line is searched too
    assert space.fixed == {
        "model.hidden_size": "model.hidden_size=32",
        "+trainer.extra": "+trainer.extra=a b",
        "task": "task=ptb",
    }
    overrides = space.overrides({"optim.lr": 1e-3, "model.cell": "lstm"})
    assert overrides == ["optim.lr=0.001", "model.hidden_size=32", "+trainer.extra=a b", "task=ptb", "model.cell=lstm"]


def test_a_trials_overrides_read_back_as_its_parameters():
    space = search_space(
        {
            "a": "choice(false, true)",
            "b": "choice('x y', 'p,q', 12)",
            "c": "choice([1, 2], [3])",
            "d": "tag(log, interval(1e-5, 1e-1))",
            "e": "int(interval(1, 9))",
        },
        [],
    )
    params = {"a": True, "b": "p,q", "c": "[3]", "d": 1.2345e-05, "e": 7}
    overrides = space.overrides(params)
    assert overrides[0] == "a=true"
    read = {o.split("=", 1)[0]: parsed(o) for o in overrides}
    assert read == {"a": True, "b": "p,q", "c": [3], "d": 1.2345e-05, "e": 7}


@pytest.mark.parametrize(
    "value,message",
    [
        ("interval(0.5, 0.1)", "x=interval(0.5, 0.1): the interval's start is above its end"),
        ("tag(log, interval(0, 1))", "a log-scale interval must start above 0"),
        ("range(5, 1)", "x=range(5, 1): the range is empty"),
        ("choice(1,", "x=choice(1,: no viable alternative"),
    ],
)
def test_an_impossible_search_space_is_refused(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        search_space({"x": value}, [])


# -- the search, with a stand-in for Hydra's launcher -----------------------------------------
class Launcher:
    """Hydra's launcher as the sweeper sees it: a batch of jobs in, one JobReturn per job out. A job's
    value is a function of its overrides; `model.bidirectional=true` fails, as it does for a language model."""

    def __init__(self, interrupt_at: int | None = None):
        self.batches: list[tuple[int, list[list[str]]]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, batch, initial_job_idx):
        self.batches.append((initial_job_idx, [list(b) for b in batch]))
        if self.interrupt_at is not None and len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a batch: the trials are left running
        results = []
        for overrides in batch:
            values = {o.split("=", 1)[0]: parsed(o) for o in overrides}
            if values.get("model.bidirectional"):
                results.append(JobReturn(overrides, status=JobStatus.FAILED, _return_value=ConfigError("no")))
            else:
                value = 1.0 - abs(values.get("optim.lr", 0.003) - 0.003) - values.get("model.dropout", 0.0) / 10
                results.append(JobReturn(overrides, status=JobStatus.COMPLETED, _return_value=value))
        return results

    @property
    def jobs(self) -> list[int]:
        return [start + i for start, batch in self.batches for i in range(len(batch))]


def settings(sweep: Path, **changes):
    conf = OmegaConf.structured(ResumableOptunaSweeperConf)
    conf.merge_with(
        {
            "storage": f"sqlite:///{sweep / 'optuna.db'}",
            "study_name": "s",
            "direction": "maximize",
            "n_trials": 3,
            "max_failure_rate": 1.0,
            "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 7, "n_startup_trials": 2},
            "params": {
                "optim.lr": "tag(log, interval(3e-4, 1e-2))",
                "model.dropout": "interval(0.0, 0.6)",
                "model.hidden_size": "choice(64, 128, 256)",
            },
            **changes,
        }
    )
    return conf


def stored(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    return study(sweep, "s").trials  # optuna's own API opens the stored study


def test_a_search_asks_tells_and_writes_its_best_trial(tmp_path):
    sweep = tmp_path / "sweep"
    launch = Launcher()
    run_search(settings(sweep, n_trials=5, n_jobs=2), sweep, ["task=imdb"], launch)
    trials = stored(sweep)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert [len(b) for _, b in launch.batches] == [2, 2, 1] and launch.jobs == [0, 1, 2, 3, 4]
    ran = [job for _, batch in launch.batches for job in batch]
    for trial, overrides in zip(trials, ran):
        assert overrides == trial.user_attrs["overrides"]  # what the job ran, in the study
        assert overrides[-1] == "task=imdb" and f"optim.lr={trial.params['optim.lr']}" in overrides
    best = max(trials, key=lambda t: t.value)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == best.value and results.best_params == best.params and results.best_trial == best.number


def test_a_minimising_search_writes_its_lowest_value(tmp_path):
    sweep = tmp_path / "sweep"
    run_search(settings(sweep, direction="minimize"), sweep, [], Launcher())
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == min(t.value for t in stored(sweep))


def test_a_stored_study_continues_reproducibly(tmp_path):
    def grow(sweep: Path) -> list[dict]:
        for n_trials in (1, 3, 3):  # the third run finds the study finished and launches nothing
            run_search(settings(sweep, n_trials=n_trials), sweep, [], launch := Launcher())
        assert launch.batches == []
        return [t.params for t in stored(sweep)]

    first, second = grow(tmp_path / "a"), grow(tmp_path / "b")
    assert len(first) == 3 and first == second  # seeded: the same command gives the same trials
    assert first[1] != first[0]  # the sampler's seed moved on: the second run did not replay the first draw


def test_an_interrupted_trial_runs_again_first_and_jobs_are_numbered_after_it(tmp_path):
    sweep = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        run_search(settings(sweep, n_trials=4, n_jobs=2), sweep, [], Launcher(interrupt_at=2))
    assert [t.state for t in stored(sweep)] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING] * 2
    stopped = [t.params for t in stored(sweep)[2:]]
    launch = Launcher()
    run_search(settings(sweep, n_trials=4, n_jobs=2), sweep, [], launch)
    trials = stored(sweep)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2
    assert [t.params for t in trials[4:]] == stopped and launch.jobs == [4, 5]  # job i is trial i
    assert study(sweep, "s").user_attrs["interrupted_trials"] == [2, 3]


def test_a_study_started_with_other_overrides_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    run_search(settings(sweep, n_trials=1), sweep, ["task=imdb", "trainer.num_threads=1"], Launcher())
    run_search(settings(sweep, n_trials=2), sweep, ["task=imdb", "trainer.num_threads=2"], Launcher())  # speed only
    with pytest.raises(
        ConfigError, match=r"the study 's' in sqlite:///.* was started with the overrides \['task=imdb'\]"
    ):
        run_search(settings(sweep, n_trials=3), sweep, ["task=ptb"], Launcher())
    with pytest.raises(ConfigError, match=r"was started to \['maximize'\], not minimize"):
        run_search(settings(sweep, n_trials=3, direction="minimize"), sweep, ["task=imdb"], Launcher())
    assert len(stored(sweep)) == 2


def test_failed_trials_are_recorded_and_max_failure_rate_stops_the_search(tmp_path):
    both = {"model.bidirectional": "choice(false, true)"}
    sweep = tmp_path / "goes_on"
    run_search(settings(sweep, n_trials=6, params=both), sweep, [], Launcher())
    trials = stored(sweep)
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}
    assert all((t.state == TrialState.FAIL) == t.params["model.bidirectional"] for t in trials)

    sweep = tmp_path / "stops"
    with pytest.raises(SweepError, match=r"1 of the 1 trials of a batch failed \(hydra.sweeper.max_failure_rate=0.0\)"):
        run_search(settings(sweep, n_trials=6, max_failure_rate=0.0), sweep, ["model.bidirectional=true"], Launcher())
    assert [t.state for t in stored(sweep)] == [TrialState.FAIL]
    assert not (sweep / "optimization_results.yaml").exists()  # no trial completed


# -- the real thing: train.py -m hparams_search=... -------------------------------------------
@pytest.mark.slow
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
        assert "model.hidden_size=8" in overrides and "model.hidden_size" not in trial.params  # fixed
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(t.value for t in trials)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_search_runs_its_trials_in_parallel_with_the_joblib_launcher(tmp_path, env):
    sweep = tmp_path / "sweep"
    tiny = [o for o in SMALL if not o.startswith("trainer.num_threads")]
    run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "hparams_search=imdb_optuna",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            "model.bidirectional=false",
            *tiny,
            f"hydra.sweep.dir={sweep}",
        ],
        env,
    )
    assert [t.state for t in study(sweep).trials] == [TrialState.COMPLETE] * 2
    assert trial_dirs(sweep) == ["trial_0", "trial_1"]
    for job in ("trial_0", "trial_1"):  # two at once, each on its share of the cores
        log = (sweep / job / "train.log").read_text()
        assert f"(2 parallel jobs share {runtime.available_cores()} cores)" in log


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
