"""Hydra finds sweepers only in the `hydra_plugins` namespace: this is seqmodels' resumable
Optuna sweeper (`configs/hparams_search/*`); the logic lives in `seqmodels.sweeps`."""

from __future__ import annotations

import logging
import sys
from typing import Any

# optuna's sqlite storage imports alembic, which logs each of its plugins at INFO into the sweep's log
logging.getLogger("alembic").setLevel(logging.WARNING)

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    HAVE_OPTUNA = True
except ImportError:  # hydra-optuna-sweeper not installed: nothing to extend (Hydra scans this module on every run)
    HAVE_OPTUNA = False

if HAVE_OPTUNA:

    class ResumableOptunaSweeper(OptunaSweeper):
        """hydra-optuna-sweeper's OptunaSweeper whose stored study continues where it stopped."""

        def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
            super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
            self.config: Any = config

        def sweep(self, arguments: list[str]) -> None:
            from seqmodels.errors import SeqmodelsError
            from seqmodels.sweeps import continue_study

            try:
                continue_study(self.sweeper, self.config, arguments)
            except SeqmodelsError as error:  # one line, as train.py reports a bad config
                print(f"error: {error}", file=sys.stderr)
                sys.exit(2)
            return super().sweep(arguments)
