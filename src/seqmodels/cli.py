"""`python train.py [overrides]`: the Hydra app. Returns the validation metric for sweepers."""

from __future__ import annotations

import atexit
import logging
import re
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from seqmodels.atomic import save_json
from seqmodels.config import CONFIG_DIR, compose_config, register_configs
from seqmodels.errors import ConfigError, SeqmodelsError
from seqmodels.schema import help_lines
from seqmodels.tasks import task_class
from seqmodels.train import RunConfig, check_config, check_override_keys, check_resume, run
from seqmodels.training import distributed, run_lock
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


# what a run that never started training leaves in its directory: Hydra's record, the log, the lock
UNSTARTED = {".hydra", "train.log", run_lock.LOCK_FILE}


def _remove_unstarted(run_dir: Path) -> None:
    """A single run that failed before training (a bad value, a missing dataset, memory in its first steps)
    leaves no directory: it holds only Hydra's copy of the config and the log of the failure, both on the
    console. A directory this command did not create and that holds anything else (another run's files,
    the user's) is not this run's to remove."""
    if not distributed.environment_world().is_main or not run_dir.is_dir():
        return
    created = str(run_dir.resolve()) in _claimed and _claimed_record(run_dir) is None
    if not created and any(path.name not in UNSTARTED for path in run_dir.iterdir()):
        return
    run_lock.release(run_dir, forget=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    # outputs/TASK/MODEL/ (seqmodels.config.run_name), when this was their only run
    for parent in list(run_dir.parents)[:2]:
        if parent.name in ("outputs", "") or parent == Path.cwd():
            break
        try:
            parent.rmdir()
        except OSError:
            break


class RunRecord:
    """What a run directory that existed before this command holds of its record: Hydra's `.hydra/` and
    `train.log`, which Hydra rewrites and appends to before the run starts. A run refused before it
    trains puts them back, so the directory is byte for byte as it was."""

    WATCHED = ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.json")  # what a started run changes

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.files = {path: path.read_bytes() for path in self._record_files()}
        self.had_hydra = (run_dir / ".hydra").is_dir()
        self.progress = self._progress()

    def _record_files(self) -> list[Path]:
        hydra = self.run_dir / ".hydra"
        files = sorted(hydra.iterdir()) if hydra.is_dir() else []
        return [path for path in [*files, self.run_dir / "train.log"] if path.is_file()]

    def _progress(self) -> list[tuple[int, int] | None]:
        found: list[tuple[int, int] | None] = []
        for name in self.WATCHED:
            try:
                stat = (self.run_dir / name).stat()
                found.append((stat.st_size, stat.st_mtime_ns))
            except FileNotFoundError:
                found.append(None)
        return found

    def untouched(self) -> bool:
        """Whether the run wrote nothing of its own yet (no checkpoint, no metrics)."""
        return self._progress() == self.progress

    def restore(self) -> None:
        for path in self._record_files():
            if path not in self.files:
                path.unlink()
        for path, content in self.files.items():
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
        if not self.had_hydra:
            shutil.rmtree(self.run_dir / ".hydra", ignore_errors=True)
        run_lock.release(self.run_dir, forget=True)


# the run directory main() claimed before Hydra, with its record when it existed before
_claimed: dict[str, RunRecord | None] = {}
PLAIN_PATH = re.compile(r"[\w./+@~:,= -]+")  # a path Hydra reads back as it is inside quotes


def claim_run_directory(args: list[str]) -> list[str]:
    """Before Hydra writes `.hydra/` into a single run's directory: refuse a config that does not validate,
    a resume that cannot be (`train.check_resume`), a directory another run holds or that holds another
    run's checkpoints (`training.run_lock`); then lock the directory for this run. Returns the override
    that makes Hydra use that same directory (its time resolved once). A multirun, a command with flags,
    or overrides that do not compose are left to Hydra and to `train.run`."""
    if any(arg.startswith("-") for arg in args) or not distributed.environment_world().is_main:
        return []
    try:
        composed = compose_config(args, with_hydra=True)
        run_dir = Path(str(composed.hydra.run.dir))
    except Exception:  # Hydra reports a bad override in its own words when it composes it
        return []
    given = [arg for arg in args if arg.startswith("hydra.run.dir=")]
    literal = bool(given) and "${" not in given[-1]
    if not literal and not PLAIN_PATH.fullmatch(str(run_dir)):
        return []  # a path that cannot be handed back to Hydra: train.run locks it once Hydra made it
    with open_dict(composed):
        del composed["hydra"]
    check_config(composed)
    resume = check_resume(composed)
    record = None
    if run_dir.is_dir():
        run_lock.check_free(run_dir)
        run_lock.check_not_another_runs(run_dir, resume)
        record = RunRecord(run_dir)
    run_lock.acquire(run_dir)
    _claimed[str(run_dir.resolve())] = record
    return [] if literal else [f"hydra.run.dir='{run_dir}'"]


def _claimed_record(run_dir: Path) -> RunRecord | None:
    return _claimed.get(str(run_dir.resolve()))


def _stop_signal(error: KeyboardInterrupt) -> signal.Signals:
    """The signal that stopped the run: the trainer names it (SIGTERM from kill, torchrun or SLURM); a bare
    KeyboardInterrupt is Ctrl-C."""
    name = error.args[0] if error.args else ""
    return signal.Signals[name] if name in signal.Signals.__members__ else signal.SIGINT


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
        sys.argv += claim_run_directory(sys.argv[1:])
    except SeqmodelsError as error:
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
        stop = _stop_signal(error)
        if hydra_cfg.runtime.choices.get("hparams_search"):  # a trial: the study goes on, not this run
            then = "run the same command again to continue the search (this trial runs again)"
        else:
            then = f"checkpoints/last.pt is saved. Resume with: {_resume_command(run_dir)}"
        message = f"interrupted ({stop.name}); {then}"
        log.warning("%s", message)
        if multirun:
            raise
        _fail(message, 128 + stop.value)  # the shell's code for a process ended by that signal
    except SeqmodelsError as error:
        if isinstance(error, run_lock.RunDirectoryTaken):  # another run's directory: not this run's to touch
            log.error("%s", error)
            if multirun:
                raise
            _fail(f"error: {error}", 2)
        if multirun:
            _record_failure(run_dir, "failed", error)  # the job's directory says why it failed
            log.error("%s", error)
            raise  # Hydra records the job as failed and goes on with the others
        record = _claimed_record(run_dir)
        if record is not None and record.untouched():  # refused before training: the directory as it was
            record.restore()
        elif (run_dir / "checkpoints").exists():
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
