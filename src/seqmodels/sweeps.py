"""Hyper-parameter searches that survive an interruption.

`python train.py -m hparams_search=imdb_optuna` runs an Optuna study (hydra-optuna-sweeper,
seeded TPE) stored in `<sweep dir>/optuna.db` (sqlite). Running the same command again
continues that study instead of starting over. hydra-optuna-sweeper alone would load the
stored study but then run `n_trials` *more* trials, number the new jobs from 0 again (job
directories named like the first run's), and redraw the seeded sampler's first suggestions,
i.e. repeat the trials already done. `continue_study` fixes that before the sweep starts:

- `hydra.sweeper.n_trials` is the study's total: finished trials (completed or failed) count;
- a trial left running by an interruption is marked failed and its parameters run again first;
- new jobs are numbered after the trials already in the study (no directory is reused);
- the sampler is re-seeded with (seed + trials so far): reproducible, and not a replay;
- a study started with other overrides is refused with one line: continuing it would mix
  trials of two different searches.

A sweep runs as one process per study (not several workers sharing the database).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seqmodels.errors import ConfigError

log = logging.getLogger("seqmodels")

SQLITE = "sqlite:///"
# Overrides that change how fast a trial runs, not what it computes: a study may go on without them.
SPEED_ONLY = ("trainer.num_threads", "trainer.device")


def _relevant(arguments: list[str]) -> list[str]:
    return sorted(a for a in arguments if a.split("=", 1)[0].lstrip("+~") not in SPEED_ONLY)


def continue_study(impl: Any, config: DictConfig, arguments: list[str]) -> None:
    """Prepare hydra-optuna-sweeper's `OptunaSweeperImpl` to continue its stored study (see above)."""
    import optuna
    from hydra.utils import instantiate
    from optuna.trial import TrialState

    if impl.storage is None:  # an in-memory study: nothing to continue
        return
    if isinstance(impl.storage, str) and impl.storage.startswith(SQLITE):
        Path(impl.storage[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
    directions = impl._get_directions()
    study = optuna.create_study(
        study_name=impl.study_name, storage=impl.storage, directions=directions, load_if_exists=True
    )
    overrides = _relevant(list(arguments))
    trials = study.get_trials(deepcopy=False)
    if not trials and "overrides" not in study.user_attrs:
        study.set_user_attr("overrides", overrides)
        study.set_user_attr("interrupted_trials", [])
        return  # a new study: the sweeper runs as usual
    started_with = study.user_attrs.get("overrides", overrides)
    if started_with != overrides:
        raise ConfigError(
            f"the study {study.study_name!r} in {impl.storage} was started with the overrides "
            f"{started_with}, not {overrides}; continue it with those, or start a new one with "
            f"another hydra.sweep.dir"
        )
    if [d.name.lower() for d in study.directions] != [d.lower() for d in directions]:
        raise ConfigError(
            f"the study {study.study_name!r} in {impl.storage} was started to "
            f"{[d.name.lower() for d in study.directions]}, not {directions}"
        )

    interrupted = list(study.user_attrs.get("interrupted_trials", []))
    for trial in trials:
        if trial.state == TrialState.RUNNING:  # its sweep was stopped: run the same parameters again
            study.tell(trial.number, state=TrialState.FAIL)
            interrupted.append(trial.number)
            study.enqueue_trial(dict(trial.params))
            log.warning("trial %d was interrupted; it runs again first", trial.number)
    study.set_user_attr("interrupted_trials", interrupted)

    finished = sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and t.number not in interrupted
    )
    impl.n_trials = max(0, impl.n_trials - finished)
    impl.job_idx = len(trials)  # job directories continue the numbering
    sampler = config.hydra.sweeper.get("sampler")
    if sampler is not None and sampler.get("seed") is not None:
        impl.sampler = instantiate(sampler, seed=int(sampler.seed) + len(trials))
    log.info(
        "continuing study %r (%s): %d trials finished, %d to go",
        study.study_name,
        impl.storage,
        finished,
        impl.n_trials,
    )
