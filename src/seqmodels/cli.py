"""`python train.py [overrides]`: the Hydra app. Returns the validation metric for sweepers."""

from __future__ import annotations

import atexit
import logging
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqmodels.atomic import save_json
from seqmodels.config import CONFIG_DIR, compose_config, register_configs
from seqmodels.errors import ConfigError, SeqmodelsError
from seqmodels.schema import help_lines
from seqmodels.tasks import task_class
from seqmodels.train import RunConfig, check_override_keys, run
from seqmodels.training import distributed
from seqmodels.training.optim import OptimConfig
from seqmodels.training.runtime import available_cores, resolve_device
from seqmodels.training.trainer import TrainerConfig

log = logging.getLogger("seqmodels")
register_configs()


def _record_failure(run_dir: Path, status: str, error: BaseException) -> None:
    """Leave the reason in the run directory, so a failed sweep job shows as failed, not missing.
    A metrics.json the trainer already wrote (with the history so far) is kept."""
    path = run_dir / "metrics.json"
    if not path.exists() and distributed.environment_world().is_main:
        save_json({"status": status, "error": str(error) or type(error).__name__}, path)


def _remove_unstarted(run_dir: Path) -> None:
    """A single run that failed before training (a bad value, a missing dataset) leaves no directory:
    it holds only Hydra's copy of the config and the log of the failure, both on the console."""
    if (run_dir / "checkpoints").exists() or not distributed.environment_world().is_main:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    # outputs/TASK/MODEL/ (seqmodels.config.run_name), when this was their only run
    for parent in list(run_dir.parents)[:2]:
        if parent.name in ("outputs", "") or parent == Path.cwd():
            break
        try:
            parent.rmdir()
        except OSError:
            break


def _resume_command(run_dir: Path) -> str:
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("trainer.resume=")]
    return shlex.join(["python", "train.py", *overrides, f"trainer.resume={run_dir}"])


GROUP_CHOICE = re.compile(r"^[+~]?([a-z_]+)=([^()\[\]{}]*)$")  # model=lstm, model=rnn,gru; not choice(...)


def check_group_overrides(overrides: list[str]) -> None:
    """`model=transformer` or `task=0` as one line listing the valid choices. (Hydra's own
    message for an unknown option is clear, but some values, e.g. numbers, end in its traceback.)
    Sweep syntax beyond plain comma lists is left to Hydra."""
    for override in overrides:
        match = GROUP_CHOICE.match(override)
        if not match or not (CONFIG_DIR / match.group(1)).is_dir():
            continue
        group, values = match.groups()
        choices = sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))
        for value in values.split(","):
            if value not in choices:
                raise ConfigError(f"{group}={value or repr(value)} is not a {group} config; use one of {choices}")


def _submitit(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.mode == RunMode.MULTIRUN and "submitit" in str(hydra_cfg.launcher.get("_target_", ""))


def _submitit_cpus(hydra_cfg: DictConfig) -> int | None:
    """hydra.launcher.cpus_per_task of a submitit launcher: the cores each task (rank) of a job has."""
    if not _submitit(hydra_cfg):
        return None
    cpus = hydra_cfg.launcher.get("cpus_per_task")
    return cpus if isinstance(cpus, int) and cpus > 0 else None


def parallel_jobs(hydra_cfg: DictConfig) -> int:
    """How many jobs of this multirun run at once on this machine: a parallel launcher's `n_jobs`
    (hydra/launcher=joblib; negative counts back from the cores, as joblib does: -1 = all),
    at most the number of trials an Optuna sweeper launches together. With submitit, a job whose
    tasks have `cpus_per_task` cores counts as alone (its threads follow cpus_per_task); without it,
    submitit_local starts all of a sweep's jobs at once, so each gets one core. 1 for the basic launcher."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return 1
    if _submitit_cpus(hydra_cfg) is not None:
        return 1  # the job has cpus_per_task cores of its own (see hydra_app)
    if _submitit(hydra_cfg):
        return available_cores()  # submitit_local starts a sweep's jobs all at once: one core each
    jobs = hydra_cfg.launcher.get("n_jobs")
    if not isinstance(jobs, int) or jobs == 0:
        return 1
    if jobs < 0:
        jobs = max(1, available_cores() + 1 + jobs)
    batch = hydra_cfg.sweeper.get("n_jobs")
    if isinstance(batch, int) and batch > 0:
        jobs = min(jobs, batch)
    return jobs


def _fail(message: str, code: int) -> None:
    if distributed.environment_world().is_main:  # under torchrun the same error once, not once per rank
        print(message, file=sys.stderr)
    sys.exit(code)


def _quiet_rank_overrides() -> list[str]:
    """Under torchrun every rank runs this program; rank 0's Hydra output directory is the run's.
    The other ranks get a scratch directory for Hydra (deleted at exit), no .hydra/ and no log file;
    they learn rank 0's run directory when they join the process group."""
    world = distributed.environment_world()
    if world.is_main:
        return []
    if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
        _fail(
            "error: torchrun trains one model; for a sweep of data-parallel jobs use a launcher that starts the "
            "ranks, e.g. hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node=N (docs/scaling-out.md)",
            2,
        )
    scratch = tempfile.mkdtemp(prefix=f"seqmodels-rank{world.rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=stdout"]


def print_keys(overrides: list[str]) -> None:
    """`python train.py [task=...] --keys`: every key the chosen task reads, with type, default and meaning."""
    cfg = compose_config(overrides)
    task = task_class(cfg)
    for prefix, schema in (
        ("", RunConfig),
        ("data", task.data_schema),
        ("model", task.model_schema),
        *task.extra_schemas.items(),
        ("trainer", TrainerConfig),
        ("optim", OptimConfig),
    ):
        print("\n".join(help_lines(schema, prefix)))


def main() -> None:
    """The console entry: check config group choices and key names, then hand over to Hydra."""
    overrides = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    try:
        check_group_overrides(overrides)
        check_override_keys([o for o in overrides if not (CONFIG_DIR / o.split("=", 1)[0]).is_dir()])
        if "--keys" in sys.argv[1:]:
            print_keys(overrides)
            return
    except ConfigError as error:
        _fail(f"error: {error}", 2)
    sys.argv += _quiet_rank_overrides()
    hydra_app()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def hydra_app(cfg: DictConfig) -> float:
    hydra_cfg = cast(DictConfig, HydraConfig.get())  # a DictConfig at run time
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    cpus = _submitit_cpus(hydra_cfg)
    if cpus is not None and cfg.trainer.num_threads is None:
        cfg.trainer.num_threads = cpus  # the cores SLURM gave each task
    try:
        if distributed.environment_world().enabled:
            distributed.init(resolve_device(cfg.trainer.device))
            run_dir = Path(distributed.broadcast(str(run_dir)))  # rank 0's directory is the run's
        results = run(cfg, run_dir, parallel_jobs(hydra_cfg))
    except KeyboardInterrupt as error:
        _record_failure(run_dir, "interrupted", error)
        if hydra_cfg.runtime.choices.get("hparams_search"):  # a trial: the study goes on, not this run
            message = "interrupted; run the same command again to continue the search (this trial runs again)"
        else:
            message = f"interrupted; checkpoints/last.pt is saved. Resume with: {_resume_command(run_dir)}"
        log.warning("%s", message)
        if multirun:
            raise
        _fail(message, 130)
    except SeqmodelsError as error:
        if multirun:
            _record_failure(run_dir, "failed", error)  # the job's directory says why it failed
            log.error("%s", error)
            raise  # Hydra records the job as failed and goes on with the others
        if (run_dir / "checkpoints").exists():
            _record_failure(run_dir, "failed", error)
        else:
            _remove_unstarted(run_dir)
        _fail(f"error: {error}", 2)
    except Exception as error:  # a bug: keep the traceback, but still mark the run as failed
        _record_failure(run_dir, "failed", error)
        raise
    finally:
        distributed.shutdown()
    return results["val"][results["monitor"].split("/", 1)[1]]
