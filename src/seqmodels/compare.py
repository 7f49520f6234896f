"""Compare runs: one table and a few plots from run directories.

    python scripts/compare.py outputs/multirun/DATE_TIME          # every job of a multirun
    python scripts/compare.py outputs/optuna/imdb_optuna          # every trial of a search
    python scripts/compare.py RUN_DIR RUN_DIR ... --out DIR       # any runs

writes into the folder given (or `--out`):

- `compare.csv` and `COMPARE.md`: a row per run: status, the data (the preset's dataset or the training
  file, and how many labels it has where the task counts them), the model as it describes itself,
  parameters, the overrides that differ between the runs, the monitored metric's best
  validation value and the test value of that checkpoint, best epoch, epochs run, training
  wall time, tokens/s; the CSV also has a column per hyper-parameter the runs logged
  (`hp.*`, the HPARAMS of TensorBoard). A job that failed (its `metrics.json` says so, or it has none: killed
  or still running) is a row with its status and reason, not a missing row.
- `val_curves.png`: the validation metric per epoch, one line per run;
- `metric_vs_parameters.png`: best validation (and test) metric against parameter count;
- `gradient_flow.png`: each run's gradient-flow curve (`gradient_flow.json`, at its best
  epoch), relative to its value at k = 0: where a simple RNN's falls off and LSTM's stays up.

Only run directories are read (`.hydra/`, `metrics.json`, `gradient_flow.json`); nothing is
recomputed, so comparing is quick and needs no torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seqmodels.errors import SeqmodelsError

GRADIENT_FLOW = "gradient_flow.json"
# Overrides that change speed, not results, and sweep bookkeeping: not worth a column.
IGNORED_OVERRIDES = ("trainer.num_threads", "trainer.device", "hparams_search")
LOWER_IS_BETTER = ("perplexity", "loss")
COLUMNS = [
    "run",
    "status",
    "task",
    "data",
    "model",
    "parameters",
    "overrides",
    "metric",
    "best_val",
    "test",
    "best_epoch",
    "epochs",
    "wall_time_s",
    "tokens_per_s",
    "error",
]


@dataclass
class Run:
    path: Path
    name: str
    status: str = "failed"
    error: str = ""
    task: str = ""
    model: str = ""  # the model's own one-line description (metrics.json)
    hparams: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    overrides: list[str] = field(default_factory=list)
    varying: str = ""  # the overrides that differ between the compared runs
    metric: str = ""
    mode: str = "max"
    best_val: float | None = None
    test: float | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    wall_time_s: float | None = None
    tokens_per_s: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    gradient_flow: dict[str, Any] | None = None

    @property
    def number(self) -> str:
        match = re.match(r"^(?:trial_)?(\d+)", self.name)
        return match.group(1) if match else self.name

    @property
    def data(self) -> str:
        """The data in short: the preset's dataset, or the training file's name (`data.train`), and how many
        labels it has where the task counts them (`imdb, 2 labels`, `tickets.csv, 5 labels`)."""
        dataset = self.hparams.get("dataset")
        if self.hparams.get("train"):
            dataset = Path(str(self.hparams["train"])).name
        labels = self.hparams.get("labels")
        return ", ".join([str(dataset), f"{labels} labels"] if labels else [str(dataset)]) if dataset else ""

    @property
    def label(self) -> str:
        """A short legend entry: the job number and what differs from the other runs."""
        return " ".join(part for part in [f"#{self.number}", self.varying] if part)


# -- reading -------------------------------------------------------------------------------
def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() or (path / "metrics.json").is_file()


def _natural(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _run_dirs_below(folder: Path) -> list[Path]:
    """The run directories at any depth below `folder` (none inside a run directory), in job order."""
    found: list[Path] = []
    for child in sorted((c for c in folder.iterdir() if c.is_dir()), key=_natural):
        found += [child] if is_run_dir(child) else _run_dirs_below(child)
    return found


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories: each path that is one, else the run directories below it, however nested."""
    runs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise SeqmodelsError(f"{path} is not a directory; give run directories or a multirun folder")
        if is_run_dir(path):
            runs.append(path)
            continue
        found = _run_dirs_below(path)
        if not found:
            raise SeqmodelsError(f"{path} holds no run directories (folders with .hydra/ or metrics.json)")
        runs += found
    return runs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _best_from_history(history: list[dict[str, Any]], metric: str, mode: str) -> tuple[float | None, int | None]:
    points = [(h[f"val_{metric}"], h["epoch"]) for h in history if isinstance(h.get(f"val_{metric}"), (int, float))]
    if not points:
        return None, None
    return (min if mode == "min" else max)(points)


def read_run(path: Path, name: str) -> Run:
    run = Run(path=path, name=name)
    config_path = path / ".hydra" / "config.yaml"
    if config_path.is_file():
        cfg = OmegaConf.load(config_path)
        run.task = str(OmegaConf.select(cfg, "task.name", default="") or "")
    overrides_path = path / ".hydra" / "overrides.yaml"
    if overrides_path.is_file():
        run.overrides = [str(o) for o in OmegaConf.to_container(OmegaConf.load(overrides_path)) or []]
    metrics = _read_json(path / "metrics.json")
    if not (path / "metrics.json").is_file():
        run.status, run.error = "failed", "no metrics.json: the job was killed, or is still running"
    elif not isinstance(metrics, dict):
        run.status, run.error = "failed", "metrics.json is unreadable"
    else:
        run.status = str(metrics.get("status", "failed"))
        run.error = str(metrics.get("error", "") or "")
        run.task = str(metrics.get("task", run.task) or run.task)
        run.model = str(metrics.get("model", "") or "")
        run.hparams = dict(metrics.get("hparams") or {})
        run.metric = str(metrics.get("monitor", "")).removeprefix("val/")
        run.mode = str(metrics.get("mode", "max"))
        run.parameters = metrics.get("parameters")
        run.best_epoch = metrics.get("best_epoch") or None
        run.epochs = metrics.get("epochs_run")
        run.wall_time_s = metrics.get("train_seconds")
        run.tokens_per_s = metrics.get("train_tokens_per_s")
        run.history = list(metrics.get("history") or [])
        if run.metric:
            run.best_val = (metrics.get("val") or {}).get(run.metric)
            run.test = (metrics.get("test") or {}).get(run.metric)
            if run.best_val is None:  # a failed or interrupted run: its best epoch so far
                run.best_val, run.best_epoch = _best_from_history(run.history, run.metric, run.mode)
    run.gradient_flow = _read_json(path / GRADIENT_FLOW)
    return run


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    if "." in value or "e" in value.lower():
        return f"{number:.4g}"
    return value


def mark_varying_overrides(runs: list[Run]) -> None:
    """Each run's overrides whose value is not the same in every compared run."""
    parsed = [dict(o.split("=", 1) for o in run.overrides if "=" in o) for run in runs]
    keys = {key for p in parsed for key in p if key.lstrip("+~") not in IGNORED_OVERRIDES}
    varying = sorted(key for key in keys if len({p.get(key) for p in parsed}) > 1)
    for run, p in zip(runs, parsed):
        run.varying = " ".join(f"{key}={_short(p[key])}" for key in varying if key in p)


def load_runs(paths: list[Path]) -> list[Run]:
    found = find_runs(paths)
    base = Path(os.path.commonpath([str(p.resolve()) for p in found])) if len(found) > 1 else found[0].resolve().parent
    runs = [
        read_run(path, str(path.resolve().relative_to(base)) if path.resolve() != base else path.name) for path in found
    ]
    mark_varying_overrides(runs)
    return runs


# -- tables --------------------------------------------------------------------------------
def _row(run: Run) -> dict[str, Any]:
    return {
        "run": run.name,
        "status": run.status,
        "task": run.task,
        "data": run.data,
        "model": run.model,
        "parameters": run.parameters,
        "overrides": run.varying,
        "metric": run.metric,
        "best_val": run.best_val,
        "test": run.test,
        "best_epoch": run.best_epoch,
        "epochs": run.epochs,
        "wall_time_s": run.wall_time_s,
        "tokens_per_s": run.tokens_per_s,
        "error": run.error,
    }


def write_csv(runs: list[Run], path: Path) -> None:
    hparams = sorted({key for run in runs for key in run.hparams})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *(f"hp.{key}" for key in hparams)])
        writer.writeheader()
        for run in runs:
            row = {**_row(run), **{f"hp.{key}": run.hparams.get(key) for key in hparams}}
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _metric(value: float | None, metric: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return f"{value:.2f}" if metric in LOWER_IS_BETTER else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    return (
        f"{seconds:.1f} s"
        if seconds < 60
        else f"{seconds / 60:.1f} min"
        if seconds < 3600
        else f"{seconds / 3600:.2f} h"
    )


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def best_run(runs: list[Run]) -> Run | None:
    """The best completed run on the metric most runs share."""
    metrics = Counter(run.metric for run in runs if run.metric)
    if not metrics:
        return None
    metric = metrics.most_common(1)[0][0]
    candidates = [
        r for r in runs if r.metric == metric and r.status == "completed" and isinstance(r.best_val, (int, float))
    ]
    if not candidates:
        return None
    return (min if candidates[0].mode == "min" else max)(candidates, key=lambda r: float(r.best_val or 0.0))


def markdown_table(runs: list[Run]) -> str:
    columns = [
        ("run", "l"),
        ("status", "l"),
        ("data", "l"),
        ("model", "l"),
        ("parameters", "r"),
        ("overrides", "l"),
        ("metric", "l"),
        ("best val", "r"),
        ("test", "r"),
        ("best epoch", "r"),
        ("epochs", "r"),
        ("wall time", "r"),
        ("tokens/s", "r"),
    ]
    lines = [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "| " + " | ".join("---:" if align == "r" else "---" for _, align in columns) + " |",
    ]
    for run in runs:
        status = (
            run.status
            if run.status == "completed"
            else f"**{run.status}**" + (f": {run.error[:100]}" if run.error else "")
        )
        cells = [
            run.name,
            status,
            run.data,
            run.model,
            f"{run.parameters:,}" if isinstance(run.parameters, int) else "",
            run.varying,
            run.metric,
            _metric(run.best_val, run.metric),
            _metric(run.test, run.metric),
            run.best_epoch,
            run.epochs,
            _duration(run.wall_time_s),
            f"{run.tokens_per_s:,.0f}" if isinstance(run.tokens_per_s, (int, float)) else "",
        ]
        lines.append("| " + " | ".join(_cell("" if c is None else c) for c in cells) + " |")
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------
def _figure(width: float = 7.5, height: float = 4.5):
    from matplotlib.figure import Figure  # the object API renders with Agg; no pyplot, no display

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.add_subplot()


def _save(figure, ax, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    figure.tight_layout()
    FigureCanvasAgg(figure).print_png(str(path))


def plot_val_curves(runs: list[Run], path: Path) -> bool:
    figure, ax = _figure()
    drawn = False
    for run in runs:
        points = [(h["epoch"], h.get(f"val_{run.metric}")) for h in run.history]
        points = [(e, v) for e, v in points if isinstance(v, (int, float)) and math.isfinite(v)]
        if points:
            ax.plot(
                [e for e, _ in points],
                [v for _, v in points],
                marker="o",
                markersize=3,
                label=run.label,
                linestyle="-" if run.status == "completed" else "--",
            )
            drawn = True
    metrics = sorted({run.metric for run in runs if run.metric})
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation " + " / ".join(metrics))
    ax.set_title("Validation metric per epoch (dashed: failed or interrupted)")
    if drawn:
        _save(figure, ax, path)
    return drawn


def plot_metric_vs_parameters(runs: list[Run], path: Path) -> bool:
    figure, ax = _figure()
    points = [r for r in runs if isinstance(r.parameters, int) and isinstance(r.best_val, (int, float))]
    if not points:
        return False
    ax.scatter([r.parameters for r in points], [r.best_val for r in points], label="best validation", zorder=3)
    tested = [r for r in points if isinstance(r.test, (int, float))]
    ax.scatter(
        [r.parameters for r in tested],
        [r.test for r in tested],
        facecolors="none",
        edgecolors="tab:red",
        label="test (best checkpoint)",
        zorder=3,
    )
    for run in points:
        ax.annotate(
            run.label, (run.parameters, run.best_val), textcoords="offset points", xytext=(4, 4), fontsize="x-small"
        )
    from matplotlib.ticker import FuncFormatter

    sizes = [r.parameters or 0 for r in points]
    if max(sizes) >= 10 * min(sizes):
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    ax.set_xlabel("parameters")
    ax.set_ylabel(" / ".join(sorted({r.metric for r in points})))
    ax.set_title("Metric against model size")
    _save(figure, ax, path)
    return True


def _flow_epoch(run: Run) -> dict[str, Any] | None:
    epochs = (run.gradient_flow or {}).get("epochs") or []
    if not epochs:
        return None
    chosen = [e for e in epochs if e.get("epoch") == run.best_epoch]
    return (chosen or epochs)[-1]


def plot_gradient_flow(runs: list[Run], path: Path) -> bool:
    figure, ax = _figure()
    drawn = False
    x_label = ""
    for run in runs:
        entry = _flow_epoch(run)
        if entry is None:
            continue
        x_label = (run.gradient_flow or {}).get("x", x_label)
        curves = entry.get("curves") or {}
        for name, values in curves.items():
            if not values or not isinstance(values[0], (int, float)) or values[0] <= 0:
                continue
            points = [(k, v / values[0]) for k, v in enumerate(values) if isinstance(v, (int, float)) and v > 0]
            label = run.label if len(curves) == 1 else f"{run.label} {name}"
            ax.plot([k for k, _ in points], [v for _, v in points], label=f"{label} (epoch {entry['epoch']})")
            drawn = True
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_xlabel(x_label or "k: steps before the end of the sequence's pass")
    ax.set_ylabel("||dL/dh_t||, relative to k = 0")
    ax.set_title("Gradient flow through time (one validation batch)")
    _save(figure, ax, path)
    return True


# -- the report ----------------------------------------------------------------------------
def _optuna_summary(folders: set[Path]) -> list[str]:
    lines = []
    for folder in sorted(folders):
        results = folder / "optimization_results.yaml"
        if results.is_file():
            data = OmegaConf.to_container(OmegaConf.load(results))
            if not isinstance(data, dict):
                continue
            params = " ".join(f"{k}={_short(str(v))}" for k, v in (data.get("best_params") or {}).items())
            lines.append(f"Optuna ({folder.name}): best value {data.get('best_value')} with {params}")
    return lines


def write_report(runs: list[Run], out: Path, sources: list[Path]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": out / "compare.csv", "markdown": out / "COMPARE.md"}
    write_csv(runs, written["csv"])
    plots = {
        "val_curves": plot_val_curves(runs, out / "val_curves.png"),
        "metric_vs_parameters": plot_metric_vs_parameters(runs, out / "metric_vs_parameters.png"),
        "gradient_flow": plot_gradient_flow(runs, out / "gradient_flow.png"),
    }
    written.update({name: out / f"{name}.png" for name, made in plots.items() if made})
    statuses = Counter(run.status for run in runs)
    lines = [
        "# Comparison",
        "",
        f"{len(runs)} runs from {', '.join(str(s) for s in sources)}: "
        + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        + ".",
        "",
    ]
    best = best_run(runs)
    if best is not None:
        lines += [
            f"Best: **{best.name}** ({best.label}): validation {best.metric} {_metric(best.best_val, best.metric)}, "
            f"test {_metric(best.test, best.metric)}.",
            "",
        ]
    lines += [*_optuna_summary({run.path.parent for run in runs}), ""]
    lines += [
        markdown_table(runs),
        "",
        "best val: the monitored metric of the best epoch's checkpoint on the validation split; test: the same "
        "checkpoint on the test split. Wall time: training and validation, not data preparation.",
        "",
    ]
    captions = {
        "val_curves": ("validation curves", "The validation metric per epoch."),
        "metric_vs_parameters": (
            "metric against parameters",
            "Best validation metric (and test) against parameter count.",
        ),
        "gradient_flow": (
            "gradient flow",
            "Gradient flow: ||dL/dh_t|| at k steps before the end of each "
            "sequence, relative to k = 0, at each run's best epoch, on one validation batch (what "
            "k means per task: src/seqmodels/training/gradient_flow.py). A curve that falls off "
            "means the gradient vanishes with distance.",
        ),
    }
    for name, (alt, caption) in captions.items():
        if plots[name]:
            lines += [f"![{alt}]({name}.png)", "", f"*{caption}*", ""]
    written["markdown"].write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return written


def default_out(paths: list[Path]) -> Path:
    if len(paths) == 1:
        return paths[0]
    return Path(os.path.commonpath([str(p.resolve()) for p in paths]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="run directories, or folders of them (a multirun)")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write (default: the one folder given, else the folder that holds all of them)",
    )
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.paths)
        written = write_report(runs, args.out or default_out(args.paths), args.paths)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(runs))
    for path in written.values():
        print(f"wrote {path}")
    return 0
