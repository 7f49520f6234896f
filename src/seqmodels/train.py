"""One training run: config -> task builds data and model -> trainer -> run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqmodels.checks import require_int
from seqmodels.errors import ConfigError
from seqmodels.models import check_model_config
from seqmodels.models.summary import parameter_table
from seqmodels.tasks import get_task
from seqmodels.training.checkpoint import checkpoint_path
from seqmodels.training.optim import check_optim_config
from seqmodels.training.runtime import resolve_device, seed_everything, set_threads
from seqmodels.training.trainer import Trainer, check_trainer_config

log = logging.getLogger("seqmodels")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    # Fail on a bad config before minutes of data preparation, not after.
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None
    require_int("seed", cfg.seed, minimum=0)
    check_model_config(cfg.model)
    check_trainer_config(cfg.trainer)
    check_optim_config(cfg.optim)
    device = resolve_device(cfg.trainer.device)
    task = get_task(cfg)
    threads = set_threads(cfg.trainer.num_threads)
    seed_everything(cfg.seed)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True).rstrip())
    log.info("run directory: %s | device: %s | threads: %d", run_dir, device, threads)
    data = task.prepare()
    width = max(len(k) for k in data.summary)
    log.info("data:\n%s", "\n".join(f"  {k.ljust(width)}  {v}" for k, v in data.summary.items()))
    seed_everything(cfg.seed)  # the model's initial weights do not depend on whether data was cached
    model = task.build_model(data.artifacts)
    log.info("model:\n%s", parameter_table(model))
    trainer = Trainer(cfg, task, data, model, run_dir)
    if cfg.trainer.resume:  # a run directory (its checkpoints/last.pt) or a checkpoint file
        trainer.resume(checkpoint_path(Path(cfg.trainer.resume), "last.pt"))
    return trainer.fit()
