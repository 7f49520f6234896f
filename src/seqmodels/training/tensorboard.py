"""TensorBoard logging for one run: scalars, figures, texts, and the run's row in HPARAMS.

Where a run's events go: straight into its run directory, so TensorBoard's name for the run is the run
directory relative to `--logdir` (`imdb/lstm-1x128/2026-11-29_16-47-15` under `outputs/`, see
`seqmodels.config.run_name`).

Tags (TensorBoard sorts groups by name, and shows the first ones on its first screen):

    train/loss (per logged step), train/epoch_loss        the losses and metrics, every point at the
    val/<metric>, val/best                               global step it belongs to, so training and
    test/<metric> (the best checkpoint, at its step)     validation share one x axis
    val_examples/* (TEXT, IMAGES)                        a task's examples and figures (Task.examples)
    vitals/lr, vitals/grad_norm, vitals/tokens_per_s,    diagnostics: a group that sorts after val/
    vitals/epoch_seconds, vitals/gradient_flow_k*,
    vitals/gradient_flow (IMAGES)
    config (TEXT)                                        the resolved config

HPARAMS: TensorBoard keeps a single experiment description for a whole logdir, taken from any one run,
so every run writes the same one (`experiment`): every task's hyper-parameters and metrics, built from
the tasks registry. The metric columns are `val/best` (each run's best validation value of its own
monitored metric, so every row has one) and then the test metrics of every task, the monitored ones
first (TensorBoard shows the first five columns of each kind until a user ticks others). Among the
hyper-parameters, those of `SHOWN_FIRST` are the ones shown at first.

Types: booleans are true/false and strings are strings, both with their allowed values where the config
declares them (filter checkboxes); real numbers are numbers (interval filters, parallel coordinates);
integers are text, because TensorBoard prints every number with five significant digits (`128.00`).
`null` is the text `null`, or an empty cell in a number column.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from seqmodels.hparams import BOOL, NUMBER, TEXT, Column, merge_columns, text
from seqmodels.tasks import TASKS

#: the hyper-parameter columns TensorBoard shows before a user picks others (it shows five, by name)
SHOWN_FIRST = ("task", "model", "optimizer", "lr", "hidden_size")
BEST = "val/best"  # the shared metric column: a run's best validation value of its monitored metric
DIAGNOSTICS = "vitals"  # the group of diagnostic scalars and plots; sorts after train/, val/ and test/
EXAMPLES = "val_examples"  # a task's examples (TEXT) and figures (IMAGES); sorts after val/


@dataclass(frozen=True)
class Experiment:
    """What every run of a logdir declares: the hyper-parameter columns and the metric columns."""

    columns: tuple[Column, ...]
    metrics: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next((c for c in self.columns if c.name == name), Column(name, TEXT))


def _hparam_info(column: Column) -> api_pb2.HParamInfo:
    info = api_pb2.HParamInfo(name=column.name, description=column.help, differs=column.name in SHOWN_FIRST)
    if column.kind == BOOL:
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend([False, True])
    elif column.kind == NUMBER:
        info.type = api_pb2.DATA_TYPE_FLOAT64
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        if column.choices:
            info.domain_discrete.extend(list(column.choices))
    return info


def _metric_info(tag: str) -> api_pb2.MetricInfo:
    return api_pb2.MetricInfo(name=api_pb2.MetricName(group="", tag=tag), display_name=tag)


def _cell(info: plugin_data_pb2.SessionStartInfo, column: Column, value: Any) -> None:
    """Set the cell of `value` in `column` (a null number or boolean leaves it empty)."""
    if column.kind == BOOL:
        if isinstance(value, bool):
            info.hparams[column.name].bool_value = value
    elif column.kind == NUMBER:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            info.hparams[column.name].number_value = float(value)
    else:
        info.hparams[column.name].string_value = text(value)


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    summary = Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


def experiment_summary(experiment: Experiment) -> Summary:
    proto = api_pb2.Experiment(
        hparam_infos=[_hparam_info(c) for c in experiment.columns],
        metric_infos=[_metric_info(tag) for tag in experiment.metrics],
    )
    return _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=proto))


def session_start_summary(experiment: Experiment, hparams: dict[str, Any]) -> Summary:
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        _cell(info, experiment.column(name), value)
    return _summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))


def session_end_summary(succeeded: bool) -> Summary:
    status = api_pb2.STATUS_SUCCESS if succeeded else api_pb2.STATUS_FAILURE
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


class RunLogger:
    """`enabled=False` (ranks other than 0 of a data-parallel run) writes nothing."""

    def __init__(self, log_dir: Path, purge_step: int | None = None, enabled: bool = True) -> None:
        self.writer: Any = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step) if enabled else _Discard()

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def figure(self, tag: str, figure: Any, step: int) -> None:
        """A matplotlib Figure as an image (IMAGES tab), drawn with Agg and without pyplot."""
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[..., :3]
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        self.writer.add_text(tag, markdown, step)

    def start_session(self, experiment: Experiment, hparams: dict[str, Any]) -> None:
        """This run's row in HPARAMS: the shared experiment description and this run's values. Its metric
        cells are the last values of the metric tags, so the row fills in as the run logs them."""
        for summary in (experiment_summary(experiment), session_start_summary(experiment, hparams)):
            self.writer.file_writer.add_summary(summary)

    def end_session(self, succeeded: bool) -> None:
        self.writer.file_writer.add_summary(session_end_summary(succeeded))

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class _Discard:
    """Stands in for a SummaryWriter: accepts every call and writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


def shared_experiment(run_columns: Sequence[Column]) -> Experiment:
    """The experiment description every run writes, the same in every run: the hyper-parameter columns
    of every registered task and `run_columns` (the trainer's and the optimizer's), and the metrics of
    every task."""
    tasks = list(TASKS.values())
    columns = merge_columns([*(task.hparam_columns() for task in tasks), run_columns])
    tags = [BEST, *(f"test/{task.monitor}" for task in tasks)]
    tags += [f"test/{metric}" for task in tasks for metric in task.metrics]
    return Experiment(columns, tuple(dict.fromkeys(tags)))
