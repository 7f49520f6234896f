"""`python train.py [overrides]`: the Hydra app. Returns the validation metric for sweepers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqmodels.config import CONFIG_DIR, register_resolvers
from seqmodels.errors import SeqmodelsError
from seqmodels.train import run

log = logging.getLogger("seqmodels")
register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    try:
        results = run(cfg, Path(hydra_cfg.runtime.output_dir))
    except SeqmodelsError as error:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("%s", error)
            raise  # Hydra records the job as failed and goes on with the others
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return results["val"][results["monitor"].split("/", 1)[1]]
