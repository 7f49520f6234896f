"""One training run: config -> task builds data and model -> trainer -> run directory."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from seqmodels.contracts import Loader
from seqmodels.errors import ConfigError
from seqmodels.models.summary import parameter_table
from seqmodels.schema import Section, keys, setting, suggest_key, validate
from seqmodels.tasks import TaskChoice, canonical_kind, get_task, task_class
from seqmodels.tasks.base import Task
from seqmodels.tasks.transfer import start_from
from seqmodels.training import distributed, run_lock
from seqmodels.training.checkpoint import check_resumable, load_checkpoint, resume_path
from seqmodels.training.optim import OptimConfig
from seqmodels.training.runtime import (
    GiB,
    available_cores,
    available_memory,
    batch_tokens,
    estimate_training_memory,
    is_out_of_memory,
    job_threads,
    keep_freed_memory,
    resolve_device,
    seed_everything,
    set_threads,
)
from seqmodels.training.trainer import Trainer, TrainerConfig, monitored

log = logging.getLogger("seqmodels")

GROUPS = ("task", "data", "model", "trainer", "optim")
MEMORY_SAMPLE_BATCHES = 8  # the training batches whose largest one the memory estimate takes (check_memory)


@dataclass
class RunConfig(Section):
    """The top-level keys besides the groups."""

    seed: int = setting(42, "seeds the initial weights, dropout and the batch order", minimum=0)
    name: str | None = setting(
        None,
        "names the run: outputs/NAME/TIME (a multirun: outputs/NAME/TIME/<n>_<overrides>), also its name in "
        "TensorBoard; null: TASK/MODEL, e.g. imdb/lstm-1x128 (a multirun: multirun)",
    )


def check_config(cfg: DictConfig) -> Task:
    """Every key of `cfg` checked against its declaration (type, range, unknown keys, rules between
    keys) before anything is printed or read; returns the run's task."""
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None
    groups = (*GROUPS, *task_class(cfg).extra_schemas)  # and the sections only this task reads
    validate(RunConfig, {str(k): v for k, v in cfg.items() if k not in groups}, "")
    task = get_task(cfg)
    monitored(task, validate(TrainerConfig, cfg.get("trainer"), "trainer").monitor)
    validate(OptimConfig, cfg.get("optim"), "optim")
    return task


def check_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint `trainer.resume` names (None without one), refused before any data is read when it is
    missing, damaged, or was trained with other task, model or data settings (`checkpoint.check_resumable`)."""
    if not cfg.trainer.resume:
        return None
    path = resume_path(str(cfg.trainer.resume))
    saved = load_checkpoint(path, mmap=True)["config"]
    saved["task"]["kind"] = canonical_kind(saved["task"]["kind"])  # an earlier version's name of the same kind
    given = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    task = task_class(cfg)
    check_resumable(path, saved, given, {"task": TaskChoice, "model": task.model_schema, "data": task.data_schema})
    return path


def declared_keys() -> dict[str, set[str]]:
    """Every key any task may use, per group ("" for the top level): what an override can name."""
    from seqmodels.tasks import TASKS, TaskChoice

    found = {
        "": set(keys(RunConfig)),
        "task": set(keys(TaskChoice)),
        "trainer": set(keys(TrainerConfig)),
        "optim": set(keys(OptimConfig)),
        "data": set(),
        "model": set(),
    }
    for task in TASKS.values():
        found["data"] |= set(keys(task.data_schema))
        found["model"] |= set(keys(task.model_schema))
        for name, schema in task.extra_schemas.items():
            found.setdefault(name, set()).update(keys(schema))
    return found


def check_override_keys(overrides: list[str]) -> None:
    """`model.hiden_size=64` as one line with the key it resembles, before Hydra composes anything.
    (A key that only another task declares, such as model.crf with task=imdb, is refused by
    `check_config` once the task is known.)"""
    known = declared_keys()
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or key.startswith(("+", "~", "hydra")) or "/" in key:
            continue
        group, _, name = key.rpartition(".")
        if group in known and name not in known[group] and (group or name not in known):
            raise ConfigError(suggest_key(name, sorted(known[group]), group))


def log_to_file(text: str) -> None:
    """Write `text` to the run's log file (train.log) only, not to the console."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, text, (), None)
    for handler in [*logging.getLogger().handlers, *log.handlers]:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def run(cfg: DictConfig, run_dir: Path, parallel_jobs: int = 1) -> dict[str, Any]:
    """`parallel_jobs`: how many jobs of a multirun share this machine at once (their threads are
    split, see `job_threads`)."""
    task = check_config(cfg)  # a bad config fails before anything is printed or read
    resume = check_resume(cfg)
    if not distributed.environment_world().is_main:  # rank 0 holds the run directory for all
        return _run(cfg, task, resume, run_dir, parallel_jobs)
    run_lock.check_not_another_runs(run_dir, resume)
    with run_lock.held(run_dir):
        return _run(cfg, task, resume, run_dir, parallel_jobs)


def _run(cfg: DictConfig, task: Task, resume: Path | None, run_dir: Path, parallel_jobs: int) -> dict[str, Any]:
    device = resolve_device(cfg.trainer.device)
    world = distributed.init(device)
    if not world.is_main:  # rank 0 speaks for the run
        log.setLevel(logging.WARNING)
    # processes on one machine (parallel jobs, or torchrun's ranks) split its cores
    sharers = parallel_jobs * world.local_size
    threads = set_threads(job_threads(cfg.trainer.num_threads, sharers))
    seed_everything(cfg.seed)
    log_to_file("config:\n" + OmegaConf.to_yaml(cfg, resolve=True).rstrip())  # also in .hydra/config.yaml
    who = [f"{parallel_jobs} parallel jobs"] if parallel_jobs > 1 else []
    who += [f"{world.local_size} ranks"] if world.local_size > 1 else []
    sharing = f" ({' x '.join(who)} share {available_cores()} cores)" if sharers > 1 else ""
    ranks = f" | data-parallel: {world.size} processes ({distributed.backend()})" if world.enabled else ""
    log.info(
        "task: %s (%s) | model: %s | optim: %s lr %g",
        cfg.task.name,
        cfg.task.kind,
        task.describe(),
        cfg.optim.name,
        cfg.optim.lr,
    )
    log.info("run directory: %s | device: %s | threads: %d%s%s", run_dir, device, threads, sharing, ranks)
    with distributed.local_main_first():  # the data cache is built once per machine, not in a race
        data = task.prepare()
    if world.enabled:
        for loader in (data.train, data.val, data.test, *data.extra_tests.values()):
            if loader is None:  # no test set
                continue
            try:
                loader.shard(world.rank, world.size)
            except ValueError as error:
                raise ConfigError(f"{error} (data.batch_size, data.eval_batch_size)") from None
    width = max(len(k) for k in data.summary)
    log.info("data:\n%s", "\n".join(f"  {k.ljust(width)}  {v}" for k, v in data.summary.items()))
    seed_everything(cfg.seed)  # the model's initial weights do not depend on whether data was cached
    model = task.build_model(data.artifacts)
    if not cfg.trainer.resume:  # model.init_from: weights of earlier runs (a resumed run has its own)
        start_from(task, model, data.artifacts)
    if world.enabled:
        seed_everything(cfg.seed + world.rank)  # the same weights everywhere, each rank its own dropout
    log.info("model:\n%s", parameter_table(model))
    check_memory(cfg, model, data.train, device)
    keep_freed_memory()  # every step allocates the same buffers: reuse them (after data preparation's peak)
    trainer = Trainer(cfg, task, data, model, run_dir)
    if resume is not None:  # a run directory's checkpoints/last.pt or a checkpoint file
        trainer.resume(resume)
    try:
        return trainer.fit()
    except (RuntimeError, MemoryError) as error:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        if trainer.logger is not None:
            trainer.logger.close()
        saved = (run_dir / "checkpoints" / "last.pt").is_file()
        kept = "; checkpoints/last.pt holds the last good epoch" if saved else ""
        raise ConfigError(
            f"out of memory on {device} at epoch {trainer.epoch + 1}, step {trainer.global_step + 1} "
            f"({_allocation(error)}); lower {size_keys(cfg)}{kept}"
        ) from None


# the keys that size a training step's memory, where the task has them: examples per batch, the hidden
# state, the tokens per example (a classifier's or translator's cut, a language model's window)
SIZE_KEYS = (("data", "batch_size"), ("model", "hidden_size"), ("data", "max_length"), ("data", "bptt"))


def size_keys(cfg: DictConfig) -> str:
    """`data.batch_size (now 64), model.hidden_size (now 128) or data.max_length (now 400)`."""
    found = [f"{group}.{key} (now {cfg[group][key]})" for group, key in SIZE_KEYS if cfg[group].get(key) is not None]
    return ", ".join(found[:-1]) + f" or {found[-1]}" if len(found) > 1 else "".join(found)


def _allocation(error: BaseException) -> str:
    """What the allocator could not give, from its message: `tried to allocate 7.50 GiB`."""
    match = re.search(r"allocate ([\d.]+ ?[KMGT]i?B|\d+ bytes)", str(error), re.IGNORECASE)
    if match is None:
        return "the allocator refused"
    amount = match.group(1)
    if amount.endswith(" bytes"):
        amount = f"{int(amount.split()[0]) / GiB:.2f} GiB"
    return f"tried to allocate {amount}"


def check_memory(cfg: DictConfig, model: nn.Module, train: Loader, device: torch.device) -> None:
    """Refuse, before the first step, a model and batch that clearly cannot fit in `device`'s memory
    (`runtime.estimate_training_memory`, from the first training batches)."""
    tokens = max((batch_tokens(batch) for batch in train.sample(MEMORY_SAMPLE_BATCHES)), default=0)
    estimate = estimate_training_memory(model, tokens)
    resident = sum(p.numel() * p.element_size() for p in model.parameters() if p.device == device)
    available = available_memory(device) + resident  # the weights already there are the run's too
    if estimate.total <= available:
        return
    raise ConfigError(
        f"training needs about {estimate.total / GiB:.1f} GiB on {device} but {available / GiB:.1f} GiB are "
        f"available ({estimate.parameters:,} parameters with their gradients, Adam's moments and a step's "
        f"temporaries: {estimate.parameter_bytes / GiB:.1f} GiB; activations of {estimate.tokens:,} tokens per "
        f"batch: {estimate.activation_bytes / GiB:.1f} GiB); lower {size_keys(cfg)}"
    )
