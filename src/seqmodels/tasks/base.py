"""What a task is: the only thing the trainer knows about data, models and metrics.

A task declares its config sections (`data_schema`, `model_schema`: the `data.*` and `model.*` keys
it reads, see `seqmodels.schema`), reads its data (`prepare`), builds its model (`build_model`),
computes a batch's loss (`step`), decodes a batch for evaluation (`evaluation_step`), turns the
outputs of an evaluation pass into metrics (`evaluate`) and answers a user's text (`predict`, with
the command-line options it declares). A task may read more sections than `data.*` and `model.*`
(`extra_schemas`, e.g. translation's `decode.*`). Adding a task means writing one of these
and registering it in `seqmodels.tasks`; the trainer loop never changes.

The contracts the trainer relies on:

- `TaskData.train/val/test` are `Loader`s: iterable, sized, reordered by `set_epoch(epoch)` (a
  no-op where the order is fixed), cut by `shard(rank, size)` for data-parallel training and
  sampled by `sample(count)` (a limited number of batches that stand for the split).
- `step(model, batch)` runs in train mode (training) and in eval mode under `torch.no_grad()`
  (evaluation, through `evaluation_step`) or with gradients (the gradient-flow measurement); it only
  computes the loss and what is cheap to count, never a decoding. In train mode it never waits for
  the device (on CUDA, the kernels queued ahead keep running): no `.item()`, `float()`, `.tolist()`,
  Python branch on a tensor's value or boolean-mask indexing (whose size only the device knows);
  `num_tokens` and `num_examples` are counted from host fields, and `details` are filled in eval mode
  only.
- A batch's lengths stay on the CPU when `Batch.to` moves the rest (`host_fields`): packing
  sequences needs them there, and counting tokens from them costs no sync; models move them to the
  device themselves, non-blocking, where they need them.
- `evaluate(outputs, artifacts)` receives every `StepOutput` of one pass over a split (all ranks'
  under torchrun, in order) and the run's artifacts; it keeps no state from `build_model`.
- `configure_evaluation` runs before every final evaluation of a checkpoint: the trainer's (no
  options) and `evaluate.py`'s (its task options). Validation during training does not pass through
  it, so a task can validate cheaply (e.g. greedy decoding) and report the final numbers in full. It
  may choose settings on validation with the pass it is handed (`SplitPass`), which evaluates as the
  final evaluation does; so no task imports the trainer's package.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from omegaconf import DictConfig
from torch import nn

# the shared types, importable from here too
from seqmodels.contracts import Answers, Batch, Loader, Showcase, SplitPass, StepOutput, TaskData  # noqa: F401
from seqmodels.data.config import DataConfig
from seqmodels.data.conll import Sentence
from seqmodels.data.labelled_text import Columns
from seqmodels.errors import ConfigError
from seqmodels.hparams import TEXT, Column, columns_of
from seqmodels.models.embedding import PretrainedRows
from seqmodels.models.encoder import EncoderConfig
from seqmodels.models.onnx_graphs import OnnxGraph
from seqmodels.schema import Section, validate

UNREPORTED_DATA_KEYS = ("root", "cache_dir", "download")  # where data is, not what it is


BatchT = TypeVar("BatchT", bound=Batch)  # the batch type a task's loaders yield and its steps read


class Task(ABC, Generic[BatchT]):
    #: predict.py reads CoNLL files (one word per line) for this task, besides texts
    reads_conll: ClassVar[bool] = False
    #: the validation metric that selects the best checkpoint and that sweeps optimise; a task whose metric
    #: follows its data sets it in `prepare` and `build_model` (tagging: accuracy where the tags mark no spans)
    monitor: str
    #: "max" if a larger `monitor` is better, else "min"
    mode: ClassVar[str]
    #: the metrics `evaluate` always returns, `monitor` first: HPARAMS columns in every run's logdir (the class's);
    #: a task whose metrics follow its data narrows them with `monitor` (tagging: those of its tags)
    metrics: tuple[str, ...]
    #: metrics `evaluate` returns for some data only (e.g. multi-label classification's micro_f1)
    optional_metrics: tuple[str, ...] = ()
    #: the `task.kind` names that saved runs of earlier versions give this task: they load and resume as it
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the `data.*` and `model.*` sections this task reads (subclasses of the shared ones)
    data_schema: ClassVar[type[DataConfig]] = DataConfig
    model_schema: ClassVar[type[EncoderConfig]] = EncoderConfig
    #: further top-level sections this task reads, by name (e.g. {"decode": DecodeConfig})
    extra_schemas: ClassVar[dict[str, type[Section]]] = {}

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.data_config = validate(self.data_schema, cfg.get("data"), "data")
        self.model_config = validate(self.model_schema, cfg.get("model"), "model")
        self.sections = {name: validate(schema, cfg.get(name), name) for name, schema in self.extra_schemas.items()}
        # The rows a new model's word embedding starts from, once `prepare` has matched
        # `model.pretrained_vectors` to the vocabulary (`tasks.vectors`); None when a run is loaded,
        # whose saved weights replace them anyway.
        self.pretrained: PretrainedRows | None = None
        self.check_config()

    def check_config(self) -> None:
        """Rules between `data.*` and `model.*` keys (raise ConfigError), beside the builder they protect."""

    @classmethod
    def mode_of(cls, metric: str) -> str:
        """ "max" if a larger `metric` is better, else "min" (a loss, a perplexity)."""
        if metric == getattr(cls, "monitor", None):
            return cls.mode
        return "min" if metric in ("loss", "perplexity") else "max"

    @abstractmethod
    def prepare(self) -> TaskData: ...

    @abstractmethod
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module: ...

    def embedding_words(self, artifacts: dict[str, Any]) -> list[str] | None:
        """The words the rows of the model's word embedding stand for, by id (what `model.init_from` matches
        between runs); None: the model reads no words."""
        return None

    @abstractmethod
    def step(self, model: nn.Module, batch: BatchT) -> StepOutput:
        """The batch's loss (see the module docstring for when it runs)."""

    def evaluation_step(self, model: nn.Module, batch: BatchT) -> StepOutput:
        """`step` plus what `evaluate` needs that training does not (e.g. decoded tags)."""
        return self.step(model, batch)

    @abstractmethod
    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]: ...

    @abstractmethod
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        """The answer to a user's text. `options` are the values of the options `add_options` declared."""

    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """Each text's answer as `predict` gives it, for many texts at once (tasks run them as one padded
        batch; this default answers them one by one)."""
        return Answers([self.predict(model, artifacts, text, **options) for text in texts])

    def text_columns(self) -> Columns | None:
        """Where `predict.py` finds the text in a CSV, TSV or JSON Lines file, read as this task's training files
        are (`data.labelled_text`); None: such files are not this task's."""
        return None

    def conll_sequences(self, sentences: list[Sentence]) -> list[list[Sentence]]:
        """The sentences of a CoNLL file grouped as the model reads them; only taggers (`reads_conll`) can."""
        raise ConfigError(f"{self.cfg.task.name} runs ({self.cfg.task.kind}) read texts, not CoNLL columns")

    def tag_sequences(self, model: nn.Module, artifacts: dict[str, Any], sequences: list[list[Sentence]]) -> Answers:
        """{"tags": [the tags of each sentence]} for each sequence of `conll_sequences`."""
        raise ConfigError(f"{self.cfg.task.name} runs ({self.cfg.task.kind}) read texts, not CoNLL columns")

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        """What `scripts/export.py` writes to ONNX: the model's graph, example inputs and the JSON beside it."""
        raise ConfigError(
            f"{self.cfg.task.name} runs ({self.cfg.task.kind}) cannot be exported to ONNX; "
            f"sentiment, NER and language-model runs can"
        )

    @classmethod
    def add_predict_options(cls, group: argparse._ArgumentGroup) -> None:
        """Declare this task's options of `predict.py`, each with default None: only the options a
        user gives reach `predict`, so the task's own defaults hold otherwise."""

    @classmethod
    def add_evaluate_options(cls, group: argparse._ArgumentGroup) -> None:
        """Declare this task's options of `evaluate.py` (default None), handed to `configure_evaluation`."""

    def check_evaluation_options(self, **options: Any) -> None:
        """Refuse impossible `evaluate.py` options (ConfigError) before any data is read."""

    def configure_evaluation(
        self, model: nn.Module, data: TaskData, evaluate: SplitPass, **options: Any
    ) -> dict[str, Any]:
        """Prepare the final evaluation of a checkpoint (the trainer's, without options, and `evaluate.py`'s,
        with its task options); `evaluate(loader, split)` runs a pass as that evaluation will. Returns what to
        report of the settings used."""
        return {}

    def start_pass(self, model: nn.Module, split: str) -> None:
        """Called before each pass over `split` ("train", "val", "test"): the place to reset
        state that lives across batches (e.g. a language model's carried hidden state)."""

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """Markdown texts logged to TensorBoard (TEXT, `val_examples/<key>`) after each validation, on rank 0:
        the model's outputs on the same few validation examples every epoch (or samples from the same
        seed), so that a user sees what the numbers mean. Called with the evaluated model; it must leave
        the model's mode and the global random state as they were, so training goes on as without it."""
        return {}

    def figures(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, Any]:
        """Matplotlib Figures logged to TensorBoard (IMAGES, `val_examples/<key>`) after each validation (e.g.
        attention maps), on rank 0, under the same rules as `examples`."""
        return {}

    def describe(self) -> str:
        """The model in one line, for the startup summary and benchmark reports."""
        return self.model_config.describe()

    @classmethod
    def hparam_columns(cls) -> list[Column]:
        """The columns `hparams` fills, typed from their declarations: every run of any task declares the
        columns of all tasks to TensorBoard (`training.tensorboard.shared_experiment`)."""
        data = [c for c in columns_of(cls.data_schema) if c.name not in UNREPORTED_DATA_KEYS]
        return [
            Column("task", TEXT, "task.name"),
            Column("model", TEXT, "the model in short (model.* keys follow)"),
            *columns_of(cls.model_schema),
            *data,
            *(column for schema in cls.extra_schemas.values() for column in columns_of(schema)),
        ]

    def hparams(self) -> dict[str, Any]:
        """Hyper-parameters shown against final metrics in TensorBoard's HPARAMS view and in
        `compare.py`'s tables: the model in short, every declared `model.*` key, the task's `data.*`
        keys that shape the examples (the columns of `hparam_columns`; the trainer adds the run's own)."""
        data = {k: v for k, v in self.data_config.as_dict().items() if k not in UNREPORTED_DATA_KEYS}
        extra = {k: v for section in self.sections.values() for k, v in section.as_dict().items()}
        return {
            "task": self.cfg.task.name,
            "model": self.model_config.short_name(),
            **self.model_config.as_dict(),
            **data,
            **extra,
        }
