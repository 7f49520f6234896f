"""Where configs live, and the defaults Hydra composes them from.

The YAML groups under configs/ hold presets and choices only. Every key's default comes from its
declaration (`seqmodels.schema`), registered here in Hydra's ConfigStore as `schema/*` nodes that
the YAML files extend (`defaults: [/schema/encoder@_here_, _self_]`):

    schema/run        the top-level keys (seed)                       train.RunConfig
    schema/encoder    model.* every model shares                      models.EncoderConfig
    schema/<kind>     a task kind's data.* and its model head's keys  Task.data_schema, Task.model_schema
                      (and any further sections it reads)           Task.extra_schemas
    schema/trainer    trainer.*                                       training.trainer.TrainerConfig
    schema/optim      optim.*                                         training.optim.OptimConfig
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

# The Hydra groups ship inside the package (the checkout's top-level configs/ links here), so an
# installed seqmodels trains from any directory.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def user_cache_dir() -> Path:
    """Where prepared data is cached by default: $XDG_CACHE_HOME/seqmodels, else ~/.cache/seqmodels."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqmodels"


def register_resolvers() -> None:
    """`${cwd:}` (data.root defaults to data/ in the directory train.py runs from, not Hydra's run
    directory), `${user_cache:}` (the cache folder), `${job_dirname:...}` (multirun job names) and
    `${run_name:}` (the run's folder below outputs/)."""
    resolvers: dict[str, Callable[..., Any]] = {
        "cwd": os.getcwd,
        "user_cache": lambda: str(user_cache_dir()),
        "job_dirname": job_dirname,
        "run_name": run_name,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def register_configs() -> None:
    """The resolvers and the declared defaults, before Hydra composes anything."""
    from seqmodels.models.encoder import EncoderConfig
    from seqmodels.schema import defaults, keys
    from seqmodels.tasks import TASKS
    from seqmodels.train import RunConfig
    from seqmodels.training.optim import OptimConfig
    from seqmodels.training.trainer import TrainerConfig

    register_resolvers()
    store = ConfigStore.instance()
    store.store(group="schema", name="run", node=defaults(RunConfig))
    store.store(group="schema", name="encoder", node=defaults(EncoderConfig))
    store.store(group="schema", name="trainer", node=defaults(TrainerConfig))
    store.store(group="schema", name="optim", node=defaults(OptimConfig))
    shared = set(keys(EncoderConfig))
    for kind, task in TASKS.items():
        head = {k: v for k, v in defaults(task.model_schema).items() if k not in shared}
        extra = {name: defaults(schema) for name, schema in task.extra_schemas.items()}
        store.store(group="schema", name=kind, node={"data": defaults(task.data_schema), "model": head, **extra})


def compose_config(overrides: Iterable[str] = (), with_hydra: bool = False) -> DictConfig:
    """The config `python train.py OVERRIDES` would run (`with_hydra`: with Hydra's own `hydra.*` keys,
    e.g. `hydra.run.dir`)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


def run_name(default: str | None = None, *, _root_: DictConfig) -> str:
    """`name` where a user set it, else `default` (a multirun's `multirun`), else TASK/MODEL such as
    `imdb/lstm-1x128` (the model as its config names itself, `short_name`): the run directory below
    outputs/, before the time, and so the run's name in TensorBoard. A config that does not validate
    gets the task's name alone; it is refused before the directory is used."""
    name = _root_.get("name")
    if name:
        return str(name)
    if default:
        return default
    from seqmodels.schema import validate
    from seqmodels.tasks import task_class

    task = str(_root_.task.get("name", "run"))
    try:
        model = validate(task_class(_root_).model_schema, _root_.get("model"), "model").short_name()
    except Exception:  # any refusal is check_config's to report, with its own message
        return task
    return f"{task}/{model}"


# Overrides left out of a multirun job's directory name: they do not change the experiment, or the
# sweep's directory already says them.
UNNAMED_KEYS = ("seed", "trainer.device", "trainer.num_threads", "name")
MAX_DIRNAME = 120


def swept_keys(sweep_dir: str | Path | None) -> set[str]:
    """The keys a multirun sweeps (`model=rnn,gru`, `optim.lr=range(...)`), from the command line Hydra's
    sweeper saved in the sweep directory (multirun.yaml) before it started the jobs; empty if unknown."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = Path(sweep_dir or "") / "multirun.yaml"
    try:
        overrides = [str(o) for o in OmegaConf.load(path).hydra.overrides.task]
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # no saved sweep (another sweeper) or one Hydra cannot read back: every override
        return set()
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def job_dirname(number: int, overrides: list[str], sweep_dir: str | None = None) -> str:
    """`3_model=lstm,model.bidirectional=true`: a flat, readable job directory of the overrides that vary
    between the jobs (all of them when the sweep's command line is unknown). A value that is a path
    (data.root=/data/sets, trainer.resume=...) is shortened to its last part, so no override nests
    the job's directory or spells a whole path; long names are cut."""
    swept = swept_keys(sweep_dir)
    parts = []
    for override in overrides:
        key, _, value = str(override).partition("=")
        if key.lstrip("+~") in UNNAMED_KEYS or key.startswith("hydra") or (swept and key not in swept):
            continue
        if "/" in value or "\\" in value:
            value = Path(value.rstrip("/\\")).name or "root"
        parts.append(f"{key}={value}".replace("/", "_"))
    name = ",".join(parts)
    if len(name) > MAX_DIRNAME:
        name = name[:MAX_DIRNAME].rstrip(",") + "..."
    return f"{number}_{name}" if name else str(number)
