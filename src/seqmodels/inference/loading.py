"""A finished run, loaded to use: its task, its model with the checkpoint's weights, its artifacts.

    from seqmodels.inference.loading import load_run
    run = load_run("outputs/imdb/lstm-1x128/2026-11-29_10-00-00")  # checkpoints/best.pt
    run.predict("a wonderful film")                       # what scripts/predict.py prints
    run.predict(["a wonderful film", "dull"])             # a list of answers, run in batches
    run.task, run.config, run.metrics                     # what it is and how good it was

`scripts/predict.py` and `scripts/evaluate.py` both start here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from seqmodels.data.conll import Sentence
from seqmodels.errors import ConfigError
from seqmodels.inference.batch_prediction import Throughput, answer_in_batches
from seqmodels.tasks import TASKS, get_task
from seqmodels.tasks.base import Task
from seqmodels.training.checkpoint import checkpoint_path, load_checkpoint
from seqmodels.training.runtime import resolve_device


@dataclass
class LoadedRun:
    checkpoint: Path
    cfg: DictConfig  # the run's resolved config
    task: Task
    model: nn.Module  # in eval mode, on `device`
    artifacts: dict[str, Any]  # what prediction needs besides the weights (tokenizer, labels, ...)
    epoch: int  # the epoch the checkpoint was written after
    device: torch.device

    @property
    def config(self) -> DictConfig:
        return self.cfg

    @property
    def metrics(self) -> dict[str, Any]:
        """The run's metrics.json (val and test metrics, best epoch); empty if the run has none."""
        path = self.checkpoint.parent.parent / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @overload
    def predict(self, texts: str, *, batch_size: int = ..., progress: bool = ..., **options: Any) -> dict[str, Any]: ...

    @overload
    def predict(
        self, texts: Sequence[str], *, batch_size: int = ..., progress: bool = ..., **options: Any
    ) -> list[dict[str, Any]]: ...

    def predict(
        self, texts: str | Sequence[str], *, batch_size: int = 64, progress: bool = False, **options: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """The task's answer to a text, or a list of answers to a list of texts (run in batches of
        `batch_size`), as `scripts/predict.py` writes them; options as the task declares them."""
        if isinstance(texts, str):
            return self.task.predict(self.model, self.artifacts, texts, **options)
        return self.predict_texts(list(texts), batch_size=batch_size, progress=progress, **options)[0]

    def predict_texts(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False, **options: Any
    ) -> tuple[list[dict[str, Any]], Throughput]:
        """The answers to `texts`, in their order, and how fast they came."""
        return answer_in_batches(
            texts,
            lambda batch: self.task.predict_batch(self.model, self.artifacts, batch, **options),
            len,
            batch_size,
            progress=progress,
        )

    def tag_sentences(
        self, sentences: list[Sentence], *, batch_size: int = 64, progress: bool = False
    ) -> tuple[list[list[str]], Throughput]:
        """A tagger's IOB2 tags for each sentence of words (a CoNLL file's), in their order."""
        sequences = self.task.conll_sequences(sentences)
        results, throughput = answer_in_batches(
            sequences,
            lambda batch: self.task.tag_sequences(self.model, self.artifacts, batch),
            lambda sequence: sum(len(sentence.words) for sentence in sequence),
            batch_size,
            progress=progress,
            unit="sentences",
        )
        throughput.items = len(sentences)
        return [tags for result in results for tags in result["tags"]], throughput

    def __repr__(self) -> str:
        return (
            f"<{self.cfg.task.name} run ({self.cfg.task.kind}): {self.task.describe()}; {self.checkpoint}, "
            f"epoch {self.epoch}, on {self.device}>"
        )


def load_run(
    run: str | Path, checkpoint: str = "best.pt", device: str = "cpu", data_root: str | Path | None = None
) -> LoadedRun:
    """`run`: a run directory or a checkpoint file; `data_root`: where the datasets are now, if the
    run's data must be prepared again (evaluation) and has moved."""
    path = checkpoint_path(Path(run), checkpoint)
    target = resolve_device(device)
    state = load_checkpoint(path, map_location=target)
    cfg = OmegaConf.create(state["config"])
    if data_root is not None:
        cfg.data.root = str(data_root)
    task = get_task(cfg)
    model = task.build_model(state["artifacts"])
    model.load_state_dict(state["model"])
    model.to(target).eval()
    return LoadedRun(path, cfg, task, model, state["artifacts"], state["epoch"], target)


@dataclass(frozen=True)
class TaskOptions:
    """The options every task kind declared for one script, and which kind owns each."""

    owners: dict[str, tuple[str, str]]  # dest -> (task kind, flag)

    @classmethod
    def add_to(cls, parser: argparse.ArgumentParser, script: str) -> TaskOptions:
        """Add each task kind's options of `script` ("predict" or "evaluate") as an argument group."""
        owners: dict[str, tuple[str, str]] = {}
        for kind, task in TASKS.items():
            group = parser.add_argument_group(f"{kind} runs")
            before = len(group._group_actions)
            getattr(task, f"add_{script}_options")(group)
            for action in group._group_actions[before:]:
                owners[action.dest] = (kind, action.option_strings[0])
        return cls(owners)

    def given(self, args: argparse.Namespace, kind: str) -> dict[str, Any]:
        """The task options given on the command line, refused if they belong to another kind of task."""
        given = {dest: getattr(args, dest) for dest in self.owners if getattr(args, dest) is not None}
        for dest, (owner, flag) in self.owners.items():
            if dest in given and owner != kind:
                raise ConfigError(f"{flag} is an option of {owner} runs; this run is a {kind} run")
        return given
