"""Hyper-parameter searches: Optuna studies that survive an interruption.

`python train.py -m hparams_search=imdb_optuna` runs an Optuna study through seqmodels' Hydra
sweeper (`hydra/sweeper=seqmodels_optuna`, in src/hydra_plugins/seqmodels_sweeper), which drives
Optuna's ask-and-tell interface: it asks the study for `n_jobs` trials, hands them to Hydra's
launcher as one batch of jobs (in parallel with hydra/launcher=joblib) and tells the study each
job's result, the validation metric `train.py` returns. A job that raises is a failed trial.

The search space is `hydra.sweeper.params` in Hydra's override syntax, parsed by Hydra's own
parser: `choice(a, b)` (categorical), `interval(a, b)` (floats), `int(interval(a, b))` (integers),
`tag(log, interval(a, b))` (log scale), `range(a, b, step)` (a stepped grid, without b). A plain
value on the command line (`model.hidden_size=128`) fixes that key for every trial.

The study is stored in `<sweep dir>/optuna.db` (sqlite). Running the same command again continues
it instead of starting over:

- `hydra.sweeper.n_trials` is the study's total: finished trials (completed or failed) count;
- a trial left running by an interruption is marked failed and its parameters run again first;
- job directories are named by trial number, so new jobs come after the existing ones;
- the sampler is seeded with (seed + trials so far): reproducible, and not a replay;
- a study started with other overrides is refused with one line: continuing it would mix
  trials of two different searches.

A sweep runs as one process per study (not several workers sharing the database).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from seqmodels.errors import ConfigError, SeqmodelsError

if TYPE_CHECKING:
    import optuna
    from hydra.core.override_parser.types import Override
    from hydra.core.utils import JobReturn
    from optuna.distributions import BaseDistribution, CategoricalChoiceType

log = logging.getLogger("seqmodels")

SQLITE = "sqlite:///"
# Overrides that change how fast a trial runs, not what it computes: a study may go on without them.
SPEED_ONLY = ("trainer.num_threads", "trainer.device")
RESULTS = "optimization_results.yaml"
DIRECTIONS = ("minimize", "maximize")

# launch(batch of job overrides, number of the first job) -> one JobReturn per job (Hydra's Launcher.launch)
Launch = Callable[[Sequence[Sequence[str]], int], Sequence["JobReturn"]]


class SweepError(SeqmodelsError):
    """A search that cannot go on (too many of a batch's trials failed)."""


def _relevant(arguments: Sequence[str]) -> list[str]:
    return sorted(a for a in arguments if a.split("=", 1)[0].lstrip("+~") not in SPEED_ONLY)


# -- the search space ------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # choice(1, true): 1 and True are different choices


@dataclass
class SearchSpace:
    """What each trial runs: Optuna distributions for the searched keys, the other overrides as given."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # key -> the override as written
    # a categorical key's choices as override text (a list or dict choice is stored as its text)
    choice_texts: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # keys in the order given: the jobs' overrides

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's job overrides: its suggested values and the fixed overrides, in the order given."""
        from hydra.core.override_parser.types import Override

        lines = []
        for key in self.order:
            if key in self.fixed:
                lines.append(self.fixed[key])
                continue
            value = params[key]
            if key in self.choice_texts:
                choices = self.distributions[key].choices  # type: ignore[attr-defined]
                index = next(i for i, choice in enumerate(choices) if _same(choice, value))
                text = self.choice_texts[key][index]
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = Override._get_value_element_as_str(value)
            lines.append(f"{key}={text}")
        return lines


def _distribution(override: Override) -> tuple[BaseDistribution, list[str] | None]:
    """The Optuna distribution of a sweep override, and a categorical's choices as override text."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    where = override.input_line or override.get_key_element()
    value = override.value() if override.is_range_sweep() or override.is_interval_sweep() else None
    if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
        # encode: a list or dict choice as its override text, so that Optuna can store it
        choices = cast("list[CategoricalChoiceType]", list(override.sweep_iterator(transformer=Transformer.encode)))
        texts = [str(text) for text in override.sweep_iterator(transformer=Transformer.str)]
        texts = ["true" if c is True else "false" if c is False else t for c, t in zip(choices, texts)]
        return CategoricalDistribution(choices), texts
    if isinstance(value, RangeSweep):  # Hydra's range: start, start + step, ... before stop
        values = [v for v in override.sweep_iterator() if isinstance(v, (int, float))]
        if not values:
            raise ConfigError(f"{where}: the range is empty")
        step = abs(value.step if value.step is not None else 1)
        low, high = min(values), max(values)
        if all(isinstance(v, int) for v in values) and isinstance(step, int):
            return IntDistribution(int(low), int(high), step=step), None
        return FloatDistribution(float(low), float(high), step=float(step)), None
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if value.start is None or value.end is None:
            raise ConfigError(f"{where}: an interval needs both ends")
        if value.start > value.end:
            raise ConfigError(f"{where}: the interval's start is above its end")
        if log_scale and value.start <= 0:
            raise ConfigError(f"{where}: a log-scale interval must start above 0")
        if isinstance(value.start, int) and isinstance(value.end, int):  # int(interval(a, b))
            return IntDistribution(value.start, value.end, log=log_scale), None
        return FloatDistribution(float(value.start), float(value.end), log=log_scale), None
    raise ConfigError(f"{where}: an Optuna search takes choice(...), interval(...) or range(...), not this sweep")


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """The space of `hydra.sweeper.params` and the command line's overrides (the command line wins:
    a plain value there fixes a key the params search)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    parser = OverridesParser.create()
    parsed = []
    for line in [*lines, *arguments]:
        try:
            parsed.extend(parser.parse_overrides([line]))
        except OverrideParseException as error:
            raise ConfigError(f"{line}: {str(error).splitlines()[0]}") from None
    space = SearchSpace()
    for override in parsed:
        key = override.get_key_element()
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        space.choice_texts.pop(key, None)
        if key not in space.order:
            space.order.append(key)
        if not override.is_sweep_override():
            space.fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
            continue
        distribution, texts = _distribution(override)
        space.distributions[key] = distribution
        if texts is not None:
            space.choice_texts[key] = texts
    return space


# -- the stored study ------------------------------------------------------------------------
@dataclass
class Opened:
    study: optuna.Study
    to_go: int  # trials still to run
    trials_so_far: int  # every trial in the study, interrupted ones included


def open_study(
    storage: str | None, study_name: str | None, direction: str, n_trials: int, arguments: Sequence[str]
) -> Opened:
    """Create the study, or continue the stored one (see the module's docstring)."""
    import optuna
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    if isinstance(storage, str) and storage.startswith(SQLITE):
        Path(storage[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction=StudyDirection[direction.upper()], load_if_exists=True
    )
    if storage is None:  # an in-memory study: nothing to continue
        return Opened(study, n_trials, 0)
    overrides = _relevant(arguments)
    trials = study.get_trials(deepcopy=False)
    if not trials and "overrides" not in study.user_attrs:  # a new study
        study.set_user_attr("overrides", overrides)
        study.set_user_attr("interrupted_trials", [])
        return Opened(study, n_trials, 0)
    started_with = study.user_attrs.get("overrides", overrides)
    if started_with != overrides:
        raise ConfigError(
            f"the study {study.study_name!r} in {storage} was started with the overrides "
            f"{started_with}, not {overrides}; continue it with those, or start a new one with "
            f"another hydra.sweep.dir"
        )
    if len(study.directions) != 1 or study.direction.name.lower() != direction:
        started = [d.name.lower() for d in study.directions]
        raise ConfigError(f"the study {study.study_name!r} in {storage} was started to {started}, not {direction}")

    interrupted = list(study.user_attrs.get("interrupted_trials", []))
    for trial in trials:
        if trial.state == TrialState.RUNNING:  # its sweep was stopped: run the same parameters again
            study.tell(trial.number, state=TrialState.FAIL)
            interrupted.append(trial.number)
            study.enqueue_trial(dict(trial.params))
            log.warning("trial %d was interrupted; it runs again first", trial.number)
    study.set_user_attr("interrupted_trials", interrupted)

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    finished = sum(1 for t in trials if t.state in done and t.number not in interrupted)
    to_go = max(0, n_trials - finished)
    log.info("continuing study %r (%s): %d trials finished, %d to go", study.study_name, storage, finished, to_go)
    return Opened(study, to_go, len(trials))


def make_sampler(sampler: DictConfig | None, trials_so_far: int) -> optuna.samplers.BaseSampler | None:
    """`hydra.sweeper.sampler` (a `_target_` node; None: Optuna's default), its seed moved on by the
    trials so far: a continued study draws new suggestions, the same ones each time it is run."""
    import optuna
    from hydra.utils import instantiate

    if sampler is None:
        return None
    seed = sampler.get("seed")
    made = instantiate(sampler, seed=int(seed) + trials_so_far) if seed is not None else instantiate(sampler)
    if not isinstance(made, optuna.samplers.BaseSampler):
        raise ConfigError(f"hydra.sweeper.sampler makes a {type(made).__name__}, not an Optuna sampler")
    return made


# -- the search ------------------------------------------------------------------------------
def _value(result: JobReturn) -> float:
    value = result.return_value  # raises the job's exception if it failed
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the job returned {value!r}, not a number") from None
    if math.isnan(number):
        raise ValueError("the job's metric is NaN")
    return number


def _launch_in_order(launch: Launch, batch: Sequence[Sequence[str]], numbers: list[int]) -> list[JobReturn]:
    """Launch a batch with each job numbered as its trial (job directories trial_<number>)."""
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return list(launch(batch, numbers[0]))
    results: list[JobReturn] = []
    for overrides, number in zip(batch, numbers):  # waiting trials from an earlier run: one at a time
        results.extend(launch([overrides], number))
    return results


def run_search(settings: DictConfig, sweep_dir: str | Path, arguments: Sequence[str], launch: Launch) -> None:
    """Run `hydra.sweeper` (`settings`) to its `n_trials` and write `<sweep_dir>/optimization_results.yaml`."""
    from optuna.trial import TrialState

    direction = str(getattr(settings.direction, "name", settings.direction)).lower()
    if direction not in DIRECTIONS:
        raise ConfigError(f"hydra.sweeper.direction={direction} is unknown; use one of {list(DIRECTIONS)}")
    n_trials, n_jobs, max_failure_rate = int(settings.n_trials), int(settings.n_jobs), float(settings.max_failure_rate)
    if n_trials < 0 or n_jobs < 1:
        raise ConfigError("hydra.sweeper.n_trials must be 0 or more and hydra.sweeper.n_jobs 1 or more")
    if not 0.0 <= max_failure_rate <= 1.0:
        raise ConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1]")
    space = search_space(settings.get("params"), arguments)
    opened = open_study(settings.get("storage"), settings.get("study_name"), direction, n_trials, arguments)
    study = opened.study
    sampler = make_sampler(settings.get("sampler"), opened.trials_so_far)
    if sampler is not None:
        study.sampler = sampler
    log.info(
        "study %r, %s %s with %s: %d trials to run, %d at a time",
        study.study_name,
        direction,
        settings.get("storage") or "in memory",
        type(study.sampler).__name__,
        opened.to_go,
        n_jobs,
    )

    to_go = opened.to_go
    while to_go > 0:
        trials = [study.ask(fixed_distributions=space.distributions) for _ in range(min(n_jobs, to_go))]
        batch = [space.overrides(trial.params) for trial in trials]
        for trial, overrides in zip(trials, batch):
            trial.set_user_attr("overrides", overrides)
        results = _launch_in_order(launch, batch, [trial.number for trial in trials])
        failures = []
        for trial, result in zip(trials, results):
            try:
                study.tell(trial, _value(result))
            except Exception as error:  # the job's own error, or no usable metric
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, error)
                failures.append(error)
        if failures and len(failures) / len(results) > max_failure_rate:
            raise SweepError(
                f"{len(failures)} of the {len(results)} trials of a batch failed "
                f"(hydra.sweeper.max_failure_rate={max_failure_rate}); the last: {failures[-1]}"
            )
        to_go -= len(trials)

    write_results(study, Path(sweep_dir))


def write_results(study: optuna.Study, sweep_dir: Path) -> None:
    """`optimization_results.yaml`: the best trial of the whole study (scripts/compare.py reads it)."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("no trial of study %r has completed: no %s", study.study_name, RESULTS)
        return
    best = study.best_trial
    results = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS)
    log.info("best trial %d: value %s with %s", best.number, best.value, best.params)
