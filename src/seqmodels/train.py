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
from seqmodels.training import distributed
from seqmodels.training.checkpoint import checkpoint_path
from seqmodels.training.optim import check_optim_config
from seqmodels.training.runtime import available_cores, job_threads, resolve_device, seed_everything, set_threads
from seqmodels.training.trainer import Trainer, check_trainer_config

log = logging.getLogger("seqmodels")


def run(cfg: DictConfig, run_dir: Path, parallel_jobs: int = 1) -> dict[str, Any]:
    """`parallel_jobs`: how many jobs of a multirun share this machine at once (their threads are
    split, see `job_threads`)."""
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
    world = distributed.init(device)
    if not world.is_main:  # rank 0 speaks for the run
        log.setLevel(logging.WARNING)
    # processes on one machine (parallel jobs, or torchrun's ranks) split its cores
    sharers = parallel_jobs * world.local_size
    threads = set_threads(job_threads(cfg.trainer.num_threads, sharers))
    seed_everything(cfg.seed)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True).rstrip())
    who = [f"{parallel_jobs} parallel jobs"] if parallel_jobs > 1 else []
    who += [f"{world.local_size} ranks"] if world.local_size > 1 else []
    sharing = f" ({' x '.join(who)} share {available_cores()} cores)" if sharers > 1 else ""
    ranks = f" | data-parallel: {world.size} processes ({distributed.backend()})" if world.enabled else ""
    log.info("run directory: %s | device: %s | threads: %d%s%s", run_dir, device, threads, sharing, ranks)
    with distributed.local_main_first():  # the data cache is built once per machine, not in a race
        data = task.prepare()
    if world.enabled:
        for loader in (data.train, data.val, data.test):
            try:
                loader.shard(world.rank, world.size)
            except ValueError as error:
                raise ConfigError(f"{error} (data.batch_size, data.eval_batch_size)") from None
    width = max(len(k) for k in data.summary)
    log.info("data:\n%s", "\n".join(f"  {k.ljust(width)}  {v}" for k, v in data.summary.items()))
    seed_everything(cfg.seed)  # the model's initial weights do not depend on whether data was cached
    model = task.build_model(data.artifacts)
    if world.enabled:
        seed_everything(cfg.seed + world.rank)  # the same weights everywhere, each rank its own dropout
    log.info("model:\n%s", parameter_table(model))
    trainer = Trainer(cfg, task, data, model, run_dir)
    if cfg.trainer.resume:  # a run directory (its checkpoints/last.pt) or a checkpoint file
        trainer.resume(checkpoint_path(Path(cfg.trainer.resume), "last.pt"))
    return trainer.fit()
