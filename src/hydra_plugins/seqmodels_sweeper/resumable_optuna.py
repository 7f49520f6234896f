"""The `seqmodels_optuna` sweeper: an Optuna study, stored and resumable, run through Hydra's launcher.

Hydra imports this module whenever it starts (it scans the `hydra_plugins` namespace), so it imports
neither Optuna nor seqmodels until a sweep runs. It loads the module without entering it in
`sys.modules`, so the config dataclass needs evaluated annotations (no `from __future__ import annotations`).
"""

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

# Optuna's sqlite storage runs alembic, which logs each of its plugins at INFO into the sweep's log
logging.getLogger("alembic").setLevel(logging.WARNING)


class Direction(Enum):
    minimize = 1
    maximize = 2


@dataclass
class ResumableOptunaSweeperConf:
    """`hydra.sweeper` for `hydra/sweeper=seqmodels_optuna` (see seqmodels.sweeps)."""

    _target_: str = "hydra_plugins.seqmodels_sweeper.resumable_optuna.ResumableOptunaSweeper"
    _recursive_: bool = False  # the sampler node is instantiated per run, with its seed moved on
    direction: Direction = Direction.minimize  # of the value train.py returns: the validation metric
    storage: str | None = None  # e.g. sqlite:///${hydra.sweep.dir}/optuna.db; None: in memory, not resumable
    study_name: str | None = None
    n_trials: int = 20  # the study's total: finished trials of a stored study count
    n_jobs: int = 1  # trials asked for and launched together (in parallel with hydra/launcher=joblib)
    max_failure_rate: float = 0.0  # the share of a batch's trials that may fail before the search stops
    # an Optuna sampler, e.g. {_target_: optuna.samplers.TPESampler, seed: 42}; None: Optuna's default (TPE)
    sampler: Any = None
    # key: a sweep in Hydra's override syntax, e.g. optim.lr: tag(log, interval(1e-4, 1e-2))
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="seqmodels_optuna", node=ResumableOptunaSweeperConf, provider="seqmodels"
)


class ResumableOptunaSweeper(Sweeper):
    """Asks Optuna for trials, launches them as Hydra jobs, tells the study their results."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # the same node as config.hydra.sweeper, read there in `sweep`
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _launch(self, batch: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.launcher is not None
        return self.launcher.launch(batch, initial_job_idx=initial_job_idx)

    def sweep(self, arguments: list[str]) -> None:
        from seqmodels.errors import SeqmodelsError
        from seqmodels.sweeps import run_search

        assert self.config is not None
        try:
            run_search(self.config.hydra.sweeper, self.config.hydra.sweep.dir, arguments, self._launch)
        except SeqmodelsError as error:  # one line, as train.py reports a bad config
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
