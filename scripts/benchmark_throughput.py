"""How fast seqmodels trains, compared with a plain PyTorch loop, and where one step's time goes.

The model is the configured task's model (`task.build_model`), the data the task's own prepared data
(`task.prepare`). Every variant starts from identical weights (re-seeded before each is built), warms up
on `--warmup` batches and is then timed on the first `--batches` training batches of epoch 1:

  seqmodels   the real `Trainer.train_epoch()`; its time is the one the trainer itself reports.
  plain loop  the same model on the same batches in a hand-written loop, as a user would write it: the
              same optimizer (`build_optimizer` from the optim config) and the same gradient clipping,
              nothing else. One per task kind:
                classification  forward, cross-entropy, backward, clip_grad_norm_, step;
                tagging         the tagger's forward and `model.loss`, backward, clip, step;
                language_model  pytorch/examples `word_language_model/main.py`'s truncated-BPTT loop on
                                its own RNNModel (embedding, dropout, one multi-layer nn.LSTM/GRU/RNN,
                                dropout, linear decoder; tied if the config ties) holding seqmodels'
                                weights: the hidden state carried and detached between windows,
                                CrossEntropyLoss over output.view(-1, ntokens). Skipped with an
                                adaptive softmax (model.adaptive_cutoffs), which that loop lacks.
              The difference from seqmodels is the trainer's and the task's own overhead.
  packed      (classification only) the same weights in one standard multi-layer torch RNN fed with
              `pack_padded_sequence`, trained by the plain loop on *randomly ordered* batches (a seeded
              shuffle cut into batches, no bucketing), which is the usual way packing is used.

A task kind without a plain loop gets the seqmodels row and its breakdown only (a note on stderr says so).

Like train.py, the benchmark lets glibc's malloc keep freed memory for reuse once the data is prepared
(`training.runtime.keep_freed_memory`); the setting is process-wide, so every variant runs with it.

Throughput counts real tokens the way the trainer does (the sum of the lengths, no padding; for a
language model the predicted target tokens of each window), so variants with different padding compare
fairly; "vs plain loop" is a variant's tokens/s divided by the plain loop's. "CPU ms/batch" is the
process' CPU time (user and system) over the same span, and "vs plain, CPU time" the plain loop's CPU
time divided by the variant's (above 1: the variant does less work per batch). On a machine that other
processes share, they stretch the wall time far more than the CPU time, which then compares more
steadily.

On a GPU (`trainer.device=cuda`, or `auto` where one is) every clock reading first waits for the kernels
already queued, so each variant's time is its device time too, and the data statistics add the peak CUDA
memory of all variants together. `model.rnn_impl=dense|packed` picks how seqmodels' encoder runs (auto:
packed on CUDA); the classification and NER plain loops train the same model, so they run it the same way.

The breakdown is read from the same seqmodels epoch that the first row times: `train_epoch` runs each part
of a step in a `seqmodels.training.timing.section` (a `torch.profiler.record_function` range), and the
benchmark installs a `SectionClock` that times them: batch assembly (the loader and .to(device)), forward
(with the loss), backward, optimizer step (unscale, clip, step, schedule, weight average) and logging
(bookkeeping, progress, TensorBoard). Its total is that epoch's time but for the loop's own few
statements between sections. On a GPU the clock waits for the device where each section starts and ends,
which would keep the host from queueing kernels ahead: there the timed epoch runs without it, and the
breakdown comes from a second pass over the same batches. Also reported: data statistics of the task (the
padding share of bucketed vs random batches where the loader has a sampler; the stream layout of a language
model) and startup, the time of `task.prepare()` once its cache exists (prepare runs twice; the second is the
startup).

With `--repeats N` every variant is timed N times, in turns, and the fastest run of each is reported
(with its own breakdown), and beside it the least CPU time of any of its runs: the least disturbed by
whatever else the machine was doing.

Run it alone on the machine (another training run skews every number), from the checkout:

    SEQMODELS_DATA_DIR=/path/to/data python scripts/benchmark_throughput.py --batches 100
    SEQMODELS_DATA_DIR=/path/to/data python scripts/benchmark_throughput.py experiment=ptb_small \\
        model.tie_weights=false data.bptt=35 --threads 2 --batches 300
    python scripts/benchmark_throughput.py model=gru model.bidirectional=true data.root=/path/to/data \\
        --threads 2 --json bench.json
    python scripts/benchmark_throughput.py experiment=imdb_gpu trainer.device=cuda model.rnn_impl=packed \\
        data.batch_size=128 --batches 30 --warmup 5

Arguments of the form key=value are Hydra overrides of configs/config.yaml, as for train.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.config import compose_config
from seqmodels.data.batching import padding_fraction
from seqmodels.data.corpus import IGNORE
from seqmodels.models.classifier import SequenceClassifier, pool
from seqmodels.models.encoder import CELLS
from seqmodels.models.language_model import LanguageModel
from seqmodels.schema import validate
from seqmodels.tasks import get_task
from seqmodels.tasks.base import Task, TaskData
from seqmodels.training.checkpoint import Position
from seqmodels.training.optim import OptimConfig, build_optimizer
from seqmodels.training.runtime import keep_freed_memory, resolve_device, seed_everything
from seqmodels.training.tensorboard import RunLogger
from seqmodels.training.timing import SectionClock
from seqmodels.training.trainer import Trainer

SECTIONS = ("batch assembly", "forward", "backward", "optimizer step", "logging")


@dataclass
class Timing:
    name: str
    batches: int
    tokens: int
    seconds: float
    breakdown: dict[str, float] = field(default_factory=dict)  # seconds per section, seqmodels only
    # CPU seconds of the process over the same span: what the run cost in work, which other processes
    # on a shared machine inflate far less than the wall time (they take its cores, not its work)
    cpu_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    @property
    def ms_per_batch(self) -> float:
        return 1000 * self.seconds / max(self.batches, 1)

    @property
    def cpu_ms_per_batch(self) -> float:
        return 1000 * self.cpu_seconds / max(self.batches, 1)


# -- setup ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=gru data.root=/data")
    parser.add_argument("--batches", type=int, default=100, help="training batches timed per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches before each variant")
    parser.add_argument("--repeats", type=int, default=1, help="time every variant this often; report the fastest")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    # Overrides and options may be mixed in any order on the command line.
    args = parser.parse_intermixed_args(argv)
    if args.batches < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--batches and --repeats must be >= 1 and --warmup >= 0")
    return args


def timed_prepare(task: Task) -> tuple[TaskData, float, float]:
    """The task's data, and the seconds of a first and a second `prepare()`.

    The first may build the cache; the second always loads it, which is what every later run pays."""
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        data = task.prepare()
        seconds.append(time.perf_counter() - start)
    return data, seconds[0], seconds[1]


def fresh_model(task: Task, data: TaskData, seed: int) -> nn.Module:
    # The same seed right before building gives every variant the same initial weights.
    seed_everything(seed)
    return task.build_model(data.artifacts)


def plain_optimizer(cfg: DictConfig, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer seqmodels trains with: the same builder on the same optim config."""
    return build_optimizer(validate(OptimConfig, cfg.optim, "optim"), parameters)


def max_norm(cfg: DictConfig) -> float:
    return cfg.trainer.grad_clip or math.inf


def clock(device: torch.device) -> float:
    # CUDA kernels run asynchronously; without a sync the time would land in whichever later
    # call happens to wait for them.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


# -- batches --------------------------------------------------------------------------------------
def real_tokens(batch) -> int:
    """A plain loop's batch's tokens as its task counts them for the trainer (`StepOutput.num_tokens`):
    the predicted targets of a language-model window, else the sum of the real lengths."""
    if hasattr(batch, "lengths"):
        return int(batch.lengths.sum())
    return int((batch.targets != IGNORE).sum())


def epoch_batches(data: TaskData, count: int) -> Iterator:
    """The first `count` batches of the task's training loader in epoch 1 order, the order that
    `Trainer.train_epoch` sees (it trains epoch trainer.epoch + 1, and trainer.epoch stays 0 outside fit)."""
    if hasattr(data.train, "set_epoch"):
        data.train.set_epoch(1)
    return islice(iter(data.train), count)


def random_index_batches(data: TaskData, seed: int) -> list[list[int]]:
    """The training examples shuffled once and cut into batches of data.batch_size, no bucketing."""
    lengths = data.train.sampler.lengths
    size = data.train.sampler.batch_size
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed))
    return [order[i : i + size].tolist() for i in range(0, len(order), size)]


def random_batches(data: TaskData, index_batches: list[list[int]], count: int) -> Iterator:
    # Assembled lazily by the task's own make_batch, so padding costs the same as in the loader.
    return (data.train.make_batch(indices) for indices in index_batches[:count])


# -- seqmodels ------------------------------------------------------------------------------------
def make_trainer(cfg: DictConfig, task: Task, data: TaskData, run_root: Path, name: str) -> Trainer:
    model = fresh_model(task, data, cfg.seed)
    trainer = Trainer(cfg, task, data, model, run_root / name)
    trainer.logger = RunLogger(run_root / name / "tensorboard")  # fit() would open it
    return trainer


def run_epoch(trainer: Trainer, limit: int) -> dict[str, float]:
    trainer.tcfg.limit_train_batches = limit
    # From the epoch's first batch: a position left by the last run would skip its batches as already
    # trained (fit resets it after every epoch).
    trainer.position = Position()
    return trainer.train_epoch()


def breakdown_apart(device: torch.device) -> bool:
    """Whether the step breakdown needs an epoch of its own: on a GPU the section clock waits for the
    device where every section starts and ends, which keeps the host from queueing the next kernels while
    the device runs the last ones, so the timed epoch runs without it."""
    return device.type == "cuda"


def seqmodels_epoch(cfg: DictConfig, task: Task, data: TaskData, run_root: Path, warmup: int, batches: int) -> Timing:
    """The real `train_epoch`: its time and its breakdown, from one epoch with a section clock installed,
    or (`breakdown_apart`) the time from an epoch without it and the breakdown from the same batches again."""
    trainer = make_trainer(cfg, task, data, run_root, f"seqmodels-{time.monotonic_ns()}")
    sections = SectionClock(trainer.device)
    apart = breakdown_apart(trainer.device)
    try:
        if warmup:
            run_epoch(trainer, warmup)
        # Epoch 1 again (train_epoch trains trainer.epoch + 1, and only fit advances trainer.epoch):
        # the batches the plain loop gets.
        with sections.installed() if not apart else contextlib.nullcontext():
            start, cpu = clock(trainer.device), time.process_time()
            result = run_epoch(trainer, batches)
            seconds, cpu = clock(trainer.device) - start, time.process_time() - cpu
        if apart:
            with sections.installed():
                run_epoch(trainer, batches)
    finally:
        trainer.logger.close()
    tokens = round(result["tokens_per_s"] * result["seconds"])  # the trainer's own count (StepOutput.num_tokens)
    order = "bucketed batches" if hasattr(data.train, "sampler") else "windows in text order"
    return Timing(
        f"seqmodels `Trainer.train_epoch()`, {order}",
        batches,
        tokens,
        # with the clock installed, the trainer's own time is the sections' span; else the device's too
        seconds if apart else result["seconds"],
        {name: sections.seconds.get(name, 0.0) for name in SECTIONS},
        cpu,
    )


# -- plain loops ----------------------------------------------------------------------------------
def plain_loop(
    name: str,
    model: nn.Module,
    cfg: DictConfig,
    device: torch.device,
    make_step: Callable[[nn.Module, torch.optim.Optimizer, float], Callable],
    warmup: Iterable,
    timed: Iterable,
) -> Timing:
    """`make_step(model, optimizer, max_norm)` gives the step of one batch; a step that carries state
    between batches (the language model's hidden state) starts each pass afresh."""
    model.to(device).train()
    optimizer = plain_optimizer(cfg, model.parameters())
    step = make_step(model, optimizer, max_norm(cfg))
    for batch in warmup:
        step(batch.to(device))
    step = make_step(model, optimizer, max_norm(cfg))
    batches = tokens = 0
    start, cpu = clock(device), time.process_time()
    for batch in timed:  # assembly happens inside this loop, as in the trainer
        batch = batch.to(device)
        step(batch)
        batches += 1
        tokens += real_tokens(batch)
    return Timing(name, batches, tokens, clock(device) - start, cpu_seconds=time.process_time() - cpu)


def classifier_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip: float) -> Callable:
    def step(batch) -> None:
        logits = model(batch.tokens, batch.lengths)
        if batch.labels.dim() == 2:  # multi-label: one sigmoid per label
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
        else:
            loss = F.cross_entropy(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


def tagger_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip: float) -> Callable:
    def step(batch) -> None:
        emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
        loss = model.loss(emissions, batch.tags, batch.lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


# -- the packed baseline (classification) --------------------------------------------------------------
def copy_recurrent_weights(rnn: nn.RNNBase, encoder: nn.Module) -> None:
    """seqmodels' per-layer, per-direction single-layer RNNs into one multi-layer torch RNN: they hold
    exactly its parameters layer by layer (weight_ih_l0 of layer k is its weight_ih_l{k})."""
    directions = [("", encoder.forward_layers)]
    if encoder.bidirectional:
        directions.append(("_reverse", encoder.backward_layers))
    with torch.no_grad():
        for layer in range(encoder.num_layers):
            for suffix, layers in directions:
                for name, parameter in layers[layer].named_parameters():  # e.g. weight_ih_l0
                    getattr(rnn, name.replace("_l0", f"_l{layer}") + suffix).copy_(parameter)


class PackedClassifier(nn.Module):
    """A `SequenceClassifier` with its encoder replaced by one standard multi-layer torch RNN that runs
    on packed sequences. The weights are copied from `reference`, so both compute the same function."""

    def __init__(self, reference: SequenceClassifier) -> None:
        super().__init__()
        encoder = reference.encoder
        self.pooling = reference.pooling
        self.embedding = copy.deepcopy(reference.embedding)
        self.dropout = nn.Dropout(reference.dropout.p)
        self.rnn = CELLS[encoder.cell](
            encoder.input_size,
            encoder.hidden_size,
            num_layers=encoder.num_layers,
            bidirectional=encoder.bidirectional,
            batch_first=True,
            # torch warns about (and ignores) inter-layer dropout on a single layer.
            dropout=encoder.between_layers.p if encoder.num_layers > 1 else 0.0,
        )
        self.head = copy.deepcopy(reference.head)
        copy_recurrent_weights(self.rnn, encoder)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=tokens.shape[1])
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM also returns its cell state
        top = hidden.view(self.rnn.num_layers, -1, *hidden.shape[1:])[-1]  # (directions, B, H)
        # Forward state after the last real token, backward state after the first: the encoder's `final`.
        final = torch.cat(list(top), dim=-1)
        return self.head(self.dropout(pool(outputs, final, lengths, self.pooling)))


@torch.no_grad()
def max_logit_difference(reference: nn.Module, packed: nn.Module, batch, device: torch.device) -> float:
    """Evidence that the packed baseline is the same model: eval-mode logits on one batch."""
    reference.eval()
    packed.eval()
    tokens, lengths = batch.tokens.to(device), batch.lengths.to(device)
    return float((reference(tokens, lengths) - packed(tokens, lengths)).abs().max())


# -- the language-model baseline: pytorch/examples word_language_model ----------------------------
class RNNModel(nn.Module):
    """pytorch/examples `word_language_model/model.py`'s RNNModel (LSTM, GRU or tanh RNN): sequence-first
    (T, B) ids -> embedding -> dropout -> one multi-layer torch RNN (dropout between layers) -> dropout ->
    linear decoder, returning (T * B, ntoken) logits. `like(reference)` copies a seqmodels
    `LanguageModel`'s weights into it, so both compute the same function."""

    def __init__(
        self,
        cell: str,
        ntoken: int,
        ninp: int,
        nhid: int,
        nlayers: int,
        dropout: float = 0.5,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.ntoken, self.cell, self.nhid, self.nlayers = ntoken, cell, nhid, nlayers
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        # torch warns about (and ignores) inter-layer dropout on a single layer.
        self.rnn = CELLS[cell](ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    @classmethod
    def like(cls, reference: LanguageModel) -> RNNModel:
        encoder = reference.encoder
        tied = reference.decoder.weight is reference.embedding.weight
        model = cls(
            encoder.cell,
            reference.embedding.num_embeddings,
            reference.embedding.embedding_dim,
            encoder.hidden_size,
            encoder.num_layers,
            reference.dropout.p,
            tie_weights=tied,
        )
        with torch.no_grad():
            model.encoder.weight.copy_(reference.embedding.weight)
            copy_recurrent_weights(model.rnn, encoder)
            model.decoder.bias.copy_(reference.decoder.bias)
            if not tied:
                model.decoder.weight.copy_(reference.decoder.weight)
        return model

    def forward(self, input: torch.Tensor, hidden) -> tuple[torch.Tensor, object]:
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        return decoded.view(-1, self.ntoken), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        if self.cell == "lstm":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def word_lm_step(model: RNNModel, optimizer: torch.optim.Optimizer, clip: float) -> Callable:
    """main.py's `train()` body for one window (`get_batch` is the transpose of the task's (streams, steps)
    window: main.py lays its streams out sequence-first). Its per-step `total_loss += loss.item()` is kept."""
    criterion = nn.CrossEntropyLoss()  # ignore_index -100 == IGNORE: the padding at a stream's end
    hidden = None
    total_loss = 0.0

    def step(window) -> None:
        nonlocal hidden, total_loss
        data, targets = window.inputs.t(), window.targets.t().reshape(-1)
        if hidden is None:
            hidden = model.init_hidden(data.shape[1])
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item()

    return step


@torch.no_grad()
def lm_loss_difference(reference: LanguageModel, plain: RNNModel, window, device: torch.device) -> float:
    """Evidence that the plain loop trains the same model: the eval-mode mean loss of one window from a
    zero state, by each."""
    reference.eval()
    plain.eval()
    inputs, targets = window.inputs.to(device), window.targets.to(device)
    loss_sum, _ = reference(inputs, None, targets)
    mine = loss_sum / (targets != IGNORE).sum()
    output, _ = plain(inputs.t(), plain.init_hidden(inputs.shape[0]))
    theirs = F.cross_entropy(output, targets.t().reshape(-1))
    return abs(float(mine) - float(theirs))


# -- the variants of a task -----------------------------------------------------------------------
def baseline_runners(
    cfg: DictConfig, task: Task, data: TaskData, device: torch.device, warmup: int, batches: int
) -> tuple[list[Callable[[], Timing]], dict[str, str]]:
    """The baselines of this task kind, each a function that times one run, and facts about them."""
    kind = cfg.task.kind

    def fresh() -> nn.Module:
        return fresh_model(task, data, cfg.seed)

    def plain(name: str, build: Callable[[], nn.Module], make_step: Callable) -> Callable[[], Timing]:
        return lambda: plain_loop(
            name, build(), cfg, device, make_step, epoch_batches(data, warmup), epoch_batches(data, batches)
        )

    if kind == "classification":
        shuffled = random_index_batches(data, cfg.seed)
        reference = fresh().to(device)
        difference = max_logit_difference(
            reference, PackedClassifier(reference).to(device), next(epoch_batches(data, 1)), device
        )

        def packed() -> Timing:
            model = PackedClassifier(fresh())
            return plain_loop(
                f"`pack_padded_sequence` + nn.{type(model.rnn).__name__}, random batches",
                model,
                cfg,
                device,
                classifier_step,
                random_batches(data, shuffled, warmup),
                random_batches(data, shuffled, batches),
            )

        return (
            [plain("plain PyTorch loop, same model and batches", fresh, classifier_step), packed],
            {"packed vs seqmodels model, max abs logit difference (eval)": f"{difference:.1e}"},
        )
    if kind == "tagging":
        return [plain("plain PyTorch loop, same model and batches", fresh, tagger_step)], {}
    if kind == "language_model":
        if cfg.model.get("adaptive_cutoffs"):
            print(
                "note: the pytorch/examples word_language_model loop has a full softmax only; with "
                "model.adaptive_cutoffs only seqmodels and its step breakdown are timed",
                file=sys.stderr,
            )
            return [], {}
        reference = fresh().to(device)
        difference = lm_loss_difference(
            reference, RNNModel.like(reference).to(device), next(epoch_batches(data, 1)), device
        )
        return (
            [
                plain(
                    "pytorch/examples word_language_model loop, same weights and windows",
                    lambda: RNNModel.like(fresh()),
                    word_lm_step,
                )
            ],
            {"plain vs seqmodels model, loss difference on one window (eval)": f"{difference:.1e}"},
        )
    print(
        f"note: no plain-loop baseline for a {kind} task; only seqmodels and its step breakdown are timed",
        file=sys.stderr,
    )
    return [], {}


def data_statistics(data: TaskData, available: int, shuffled_seed: int) -> dict[str, str]:
    loader = data.train
    stats: dict[str, str] = {}
    if hasattr(loader, "sampler"):  # padded batches of examples
        lengths = loader.sampler.lengths
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(1)
        stats["train examples / batches per epoch"] = f"{len(lengths)} / {available}"
        stats["padding, bucketed batches (epoch 1)"] = f"{padding_fraction(lengths, loader.sampler.batches()):.1%}"
        stats["padding, random batches"] = f"{padding_fraction(lengths, random_index_batches(data, shuffled_seed)):.1%}"
    elif hasattr(loader, "streams"):  # windows of parallel text streams
        streams = loader.streams
        rows, steps = streams.inputs.shape
        stats["train layout"] = f"{rows} streams x {steps:,} steps, {available:,} windows of {loader.bptt}"
        stats["target tokens per epoch"] = f"{streams.num_targets:,}"
    return stats


# -- report ---------------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    setup: dict,
    timings: list[Timing],
    plain: Timing | None,
    breakdown: dict[str, float],
    batches: int,
    data_stats: dict,
) -> str:
    throughput = markdown_table(
        ["variant", "batches", "real tokens/s", "ms/batch", "vs plain loop", "CPU ms/batch", "vs plain, CPU time"],
        [
            [
                t.name,
                str(t.batches),
                f"{t.tokens_per_s:,.0f}",
                f"{t.ms_per_batch:.1f}",
                f"{t.tokens_per_s / plain.tokens_per_s:.2f}x" if plain else "—",
                f"{t.cpu_ms_per_batch:.1f}",
                f"{plain.cpu_seconds / max(t.cpu_seconds, 1e-9):.2f}x" if plain else "—",
            ]
            for t in timings
        ],
    )
    total = sum(breakdown.values())
    steps = markdown_table(
        ["section of one seqmodels step", "ms/batch", "share"],
        [[name, f"{1000 * s / batches:.2f}", f"{s / max(total, 1e-12):.1%}"] for name, s in breakdown.items()]
        + [["total (sum of sections)", f"{1000 * total / batches:.2f}", "100.0%"]],
    )
    stats = markdown_table(["data", "value"], [[key, str(value)] for key, value in data_stats.items()])
    heading = " | ".join(f"{key} {value}" for key, value in setup.items())
    return f"## Training throughput\n\n{heading}\n\n{throughput}\n\n{steps}\n\n{stats}\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = compose_config(args.overrides)
    device = resolve_device(cfg.trainer.device)
    task = get_task(cfg)
    data, first_prepare, startup = timed_prepare(task)
    # as train.py does before training; process-wide, so every variant runs with it
    reused = keep_freed_memory()

    # Warm-up and timed runs both start at the first batch of epoch 1, so one epoch must hold
    # the timed batches; every variant then times the same number.
    available = len(data.train)
    warmup, batches = min(args.warmup, available), min(args.batches, available)
    if batches < args.batches:
        print(f"note: the training split has only {available} batches; timing {batches}", file=sys.stderr)
    with open_dict(cfg):
        # The schedule's length is derived from it at construction; it covers warm-up and timed epochs.
        cfg.trainer.limit_train_batches = warmup + batches

    baselines, baseline_stats = baseline_runners(cfg, task, data, device, warmup, batches)
    runs: list[list[Timing]] = [[] for _ in range(1 + len(baselines))]
    with tempfile.TemporaryDirectory(prefix="seqmodels-benchmark-") as tmp:
        for _ in range(args.repeats):  # in turns, so a disturbance hits every variant alike
            runs[0].append(seqmodels_epoch(cfg, task, data, Path(tmp), warmup, batches))
            for times, run in zip(runs[1:], baselines):
                times.append(run())
    # The fastest run of each variant, with the least CPU time any of its runs took.
    timings = [
        replace(min(times, key=lambda t: t.seconds), cpu_seconds=min(t.cpu_seconds for t in times)) for times in runs
    ]
    seqmodels, plain = timings[0], timings[1] if baselines else None

    data_stats = {
        **data_statistics(data, available, cfg.seed),
        "startup: task.prepare(), cache exists": f"{startup:.2f} s",
        "first task.prepare() (may build the cache)": f"{first_prepare:.2f} s",
        **baseline_stats,
    }
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    if peak is not None:  # what tensors held at most in any variant: weights, optimizer state, activations
        data_stats["peak CUDA memory, all variants"] = f"{peak / 2**30:.2f} GiB"
    if args.repeats > 1:
        data_stats["tokens/s of every run, per variant"] = " / ".join(
            ", ".join(f"{t.tokens_per_s:,.0f}" for t in times) for times in runs
        )
        data_stats["CPU ms/batch of every run, per variant"] = " / ".join(
            ", ".join(f"{t.cpu_ms_per_batch:.1f}" for t in times) for times in runs
        )
    setup = {
        "task": f"{cfg.task.name} ({cfg.task.kind})",
        "model": task.describe(),
        "batch size": cfg.data.batch_size,
        **({"bptt": cfg.data.bptt} if "bptt" in cfg.data else {}),
        "optimizer": f"{cfg.optim.name} lr {cfg.optim.lr:g}",
        "grad clip": cfg.trainer.grad_clip,
        "device": device,
        "threads": torch.get_num_threads(),
        "freed memory": "kept for reuse" if reused else "returned (allocator default)",
        "timed batches": batches,
        "warm-up": warmup,
        "repeats": args.repeats,
        "torch": torch.__version__,
    }
    print(report(setup, timings, plain, seqmodels.breakdown, batches, data_stats))

    if args.json:
        results = {
            "setup": {key: str(value) for key, value in setup.items()},
            "variants": [
                {
                    **{k: v for k, v in asdict(t).items() if k != "breakdown"},
                    "tokens_per_s": t.tokens_per_s,
                    "ms_per_batch": t.ms_per_batch,
                    "vs_plain": t.tokens_per_s / plain.tokens_per_s if plain else None,
                    "cpu_ms_per_batch": t.cpu_ms_per_batch,
                    "vs_plain_cpu": plain.cpu_seconds / max(t.cpu_seconds, 1e-9) if plain else None,
                }
                for t in timings
            ],
            "breakdown_ms_per_batch": {name: 1000 * s / batches for name, s in seqmodels.breakdown.items()},
            "data": data_stats,
            "startup_seconds": startup,
            "peak_cuda_memory_bytes": peak,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
