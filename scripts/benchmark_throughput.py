"""How fast seqmodels trains, compared with two baselines, and where one step's time goes.

The model is the configured task's model (`task.build_model`), the data the task's own prepared data
(`task.prepare`). Every variant starts from identical weights (re-seeded before each is built), warms up
on `--warmup` batches and is then timed on `--batches` training batches:

  seqmodels   the real `Trainer.train_epoch()` on the task's bucketed training batches; its throughput
              is the one the trainer itself reports.
  plain loop  the same model on the same batches (the same loader, epoch 0 order) in a hand-written
              loop: forward, cross-entropy, backward, clip_grad_norm_, the optimizer's step (the same
              optimizer as seqmodels, built from the optim config), nothing else. The
              difference from seqmodels is the trainer's own overhead.
  packed      the same weights in one standard multi-layer torch RNN (nn.LSTM for model=lstm) fed with
              `pack_padded_sequence`, trained by the plain loop on *randomly ordered* batches (a seeded
              shuffle cut into batches, no bucketing), which is the usual way packing is used.

The two baselines are sentiment classifiers (the many-to-one model with its cross-entropy); for other
tasks (task=conll2003, ptb, ...) only seqmodels and its step breakdown are timed.

Throughput counts real tokens (the sum of the lengths, no padding), so variants with different padding
compare fairly; "vs plain" is a variant's tokens/s divided by the plain loop's.

The breakdown times the sections of one seqmodels training step with time.perf_counter, using a
Trainer's own optimizer, scaler, schedule and logger on the same batches: batch assembly (padding from
cached ids), forward (with the loss), backward, optimizer step (with clipping) and logging. It mirrors
`Trainer.train_epoch` line by line, so keep the two in step; its total next to the seqmodels row
shows how faithful it is. Also reported: the padding share of bucketed vs random batches, and startup,
the time of `task.prepare()` once its cache exists (prepare runs twice; the second is the startup).

Run it alone on the machine (another training run skews every number), from the checkout:

    SEQMODELS_DATA_DIR=/work/shared/data python scripts/benchmark_throughput.py --batches 100
    python scripts/benchmark_throughput.py model=gru model.bidirectional=true data.root=/work/shared/data \\
        --threads 2 --json bench.json

Arguments of the form key=value are Hydra overrides of configs/config.yaml, as for train.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels import config as seqmodels_config
from seqmodels.data.batching import padding_fraction
from seqmodels.models.classifier import SequenceClassifier, pool
from seqmodels.models.encoder import CELLS
from seqmodels.tasks import get_task
from seqmodels.training.tensorboard import RunLogger
from seqmodels.tasks.base import Task, TaskData
from seqmodels.training.optim import build_optimizer
from seqmodels.training.progress import Progress
from seqmodels.training.runtime import resolve_device, seed_everything
from seqmodels.training.trainer import Trainer

SECTIONS = ("batch assembly", "forward", "backward", "optimizer step", "logging")


@dataclass
class Timing:
    name: str
    batches: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    @property
    def ms_per_batch(self) -> float:
        return 1000 * self.seconds / max(self.batches, 1)


# -- setup ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=gru data.root=/data")
    parser.add_argument("--batches", type=int, default=100, help="training batches timed per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches before each variant")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    # Overrides and options may be mixed in any order on the command line.
    args = parser.parse_intermixed_args(argv)
    if args.batches < 1 or args.warmup < 0:
        parser.error("--batches must be >= 1 and --warmup >= 0")
    return args


def compose_config(overrides: list[str]) -> DictConfig:
    seqmodels_config.register_resolvers()
    with hydra.initialize_config_dir(config_dir=str(seqmodels_config.CONFIG_DIR), version_base="1.3"):
        return hydra.compose("config", overrides=overrides)


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


def clock(device: torch.device) -> float:
    # CUDA kernels run asynchronously; without a sync the time would land in whichever later
    # call happens to wait for them.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


# -- batches --------------------------------------------------------------------------------------
def bucketed_batches(data: TaskData, count: int) -> Iterator:
    """The first `count` batches of the task's training loader in epoch 1 order, the order that
    `Trainer.train_epoch` sees (it trains epoch trainer.epoch + 1, and trainer.epoch stays 0 outside fit)."""
    data.train.set_epoch(1)
    return islice(iter(data.train), count)


def random_index_batches(data: TaskData, seed: int) -> list[list[int]]:
    """The training examples shuffled once and cut into batches of data.batch_size, no bucketing."""
    lengths = data.train.sampler.lengths
    size = data.train.sampler.batch_size
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed))
    return [order[i:i + size].tolist() for i in range(0, len(order), size)]


def random_batches(data: TaskData, index_batches: list[list[int]], count: int) -> Iterator:
    # Assembled lazily by the task's own make_batch, so padding costs the same as in the loader.
    return (data.train.make_batch(indices) for indices in index_batches[:count])


# -- the packed baseline --------------------------------------------------------------------------
class PackedClassifier(nn.Module):
    """A `SequenceClassifier` with its encoder replaced by one standard multi-layer torch RNN that runs
    on packed sequences. The weights are copied from `reference`, so both compute the same function:
    seqmodels' per-layer, per-direction RNNs hold exactly nn.LSTM's parameters layer by layer."""

    def __init__(self, reference: SequenceClassifier) -> None:
        super().__init__()
        encoder = reference.encoder
        self.pooling = reference.pooling
        self.embedding = copy.deepcopy(reference.embedding)
        self.dropout = nn.Dropout(reference.dropout.p)
        self.rnn = CELLS[encoder.cell](
            encoder.input_size, encoder.hidden_size, num_layers=encoder.num_layers,
            bidirectional=encoder.bidirectional, batch_first=True,
            # torch warns about (and ignores) inter-layer dropout on a single layer.
            dropout=encoder.between_layers.p if encoder.num_layers > 1 else 0.0)
        self.head = copy.deepcopy(reference.head)
        self._copy_recurrent_weights(encoder)

    @torch.no_grad()
    def _copy_recurrent_weights(self, encoder: nn.Module) -> None:
        directions = [("", encoder.forward_layers)]
        if encoder.bidirectional:
            directions.append(("_reverse", encoder.backward_layers))
        for layer in range(encoder.num_layers):
            for suffix, layers in directions:
                for name, parameter in layers[layer].named_parameters():  # e.g. weight_ih_l0
                    getattr(self.rnn, name.replace("_l0", f"_l{layer}") + suffix).copy_(parameter)

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


# -- timed variants -------------------------------------------------------------------------------
def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, max_norm: float) -> Callable:
    def step(batch) -> None:
        loss = F.cross_entropy(model(batch.tokens, batch.lengths), batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
    return step


def plain_loop(name: str, model: nn.Module, cfg: DictConfig, device: torch.device,
               warmup: Iterable, timed: Iterable) -> Timing:
    model.to(device).train()
    optimizer = build_optimizer(cfg.optim, model.parameters())
    step = plain_step(model, optimizer, cfg.trainer.grad_clip or math.inf)
    for batch in warmup:
        step(batch.to(device))
    batches = tokens = 0
    start = clock(device)
    for batch in timed:  # assembly happens inside this loop, as in the trainer
        batch = batch.to(device)
        step(batch)
        batches += 1
        tokens += int(batch.lengths.sum())
    return Timing(name, batches, tokens, clock(device) - start)


def make_trainer(cfg: DictConfig, task: Task, data: TaskData, run_root: Path, name: str) -> Trainer:
    model = fresh_model(task, data, cfg.seed)
    trainer = Trainer(cfg, task, data, model, run_root / name)
    trainer.logger = RunLogger(run_root / name / "tensorboard")  # fit() would open it
    return trainer


def run_epoch(trainer: Trainer, limit: int) -> dict[str, float]:
    trainer.tcfg.limit_train_batches = limit
    return trainer.train_epoch()


def seqmodels_epoch(trainer: Trainer, warmup: int, batches: int) -> Timing:
    if warmup:
        run_epoch(trainer, warmup)
    # Epoch 1 again (train_epoch trains trainer.epoch + 1, and only fit advances trainer.epoch): the same batches the plain loop gets.
    result = run_epoch(trainer, batches)
    # The trainer's own clock (its Progress, from before the first batch to after the last) and
    # the same real-token count it makes, sum(lengths), here taken exactly from the batch indices.
    lengths = trainer.data.train.sampler.lengths
    tokens = sum(int(lengths[indices].sum()) for indices in trainer.data.train.sampler.batches()[:batches])
    return Timing("seqmodels `Trainer.train_epoch()`, bucketed batches", batches, tokens, result["seconds"])


def step_breakdown(trainer: Trainer, warmup: int, batches: int) -> dict[str, float]:
    """Seconds per section over `batches` steps, mirroring `Trainer.train_epoch` with timers between."""
    if warmup:
        run_epoch(trainer, warmup)
    trainer.model.train()
    loader, tcfg, device = trainer.data.train, trainer.tcfg, trainer.device
    progress = Progress(batches, "breakdown", interval=tcfg.progress_interval_s)
    seconds = dict.fromkeys(SECTIONS, 0.0)
    total_loss = total_examples = 0.0  # kept only because the trainer pays for them too
    start = clock(device)
    loader.set_epoch(trainer.epoch + 1)
    order = loader.sampler.batches()[:batches]  # once per epoch; counted as assembly
    seconds["batch assembly"] += clock(device) - start
    for indices in order:
        t0 = clock(device)
        batch = loader.make_batch(indices).to(device)
        t1 = clock(device)
        with trainer._autocast():
            out = trainer.task.step(trainer.model, batch)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"training loss became {out.loss.item()}")
        t2 = clock(device)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(out.loss).backward()
        t3 = clock(device)
        trainer.scaler.unscale_(trainer.optimizer)
        clip = tcfg.grad_clip if tcfg.grad_clip else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), clip))
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        trainer.schedule.after_step()
        trainer.global_step += 1
        t4 = clock(device)
        loss = out.loss.item()
        total_loss += loss * out.num_examples
        total_examples += out.num_examples
        progress.update(loss, out.num_tokens)
        if trainer.global_step % tcfg.log_every_n_steps == 0:
            trainer.logger.scalar("train/loss", loss, trainer.global_step)
            trainer.logger.scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.global_step)
            trainer.logger.scalar("train/grad_norm", grad_norm, trainer.global_step)
        t5 = clock(device)
        for section, (begin, end) in zip(SECTIONS, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]):
            seconds[section] += end - begin
    progress.close()
    return seconds


# -- report ---------------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(setup: dict, timings: list[Timing], plain: Timing | None, breakdown: dict[str, float],
           batches: int, data_stats: dict) -> str:
    throughput = markdown_table(
        ["variant", "batches", "real tokens/s", "ms/batch", "vs plain loop"],
        [[t.name, str(t.batches), f"{t.tokens_per_s:,.0f}", f"{t.ms_per_batch:.1f}",
          f"{t.tokens_per_s / plain.tokens_per_s:.2f}x" if plain else "—"] for t in timings])
    total = sum(breakdown.values())
    steps = markdown_table(
        ["section of one seqmodels step", "ms/batch", "share"],
        [[name, f"{1000 * s / batches:.2f}", f"{s / total:.1%}"] for name, s in breakdown.items()]
        + [["total (sum of sections)", f"{1000 * total / batches:.2f}", "100.0%"]])
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

    # Warm-up and timed runs both start at the first batch of epoch 0, so one epoch must hold
    # the timed batches; every variant then times the same number.
    available = len(data.train)
    warmup, batches = min(args.warmup, available), min(args.batches, available)
    if batches < args.batches:
        print(f"note: the training split has only {available} batches; timing {batches}", file=sys.stderr)
    with open_dict(cfg):
        # The schedule's length is derived from it at construction; it covers warm-up and timed epochs.
        cfg.trainer.limit_train_batches = warmup + batches
    baselines = cfg.task.kind == "sentiment"
    if not baselines:
        print(f"note: the plain-loop and packed baselines are sentiment classifiers; for a {cfg.task.kind} task "
              f"only seqmodels and its step breakdown are timed", file=sys.stderr)

    shuffled = random_index_batches(data, cfg.seed)
    with tempfile.TemporaryDirectory(prefix="seqmodels-benchmark-") as tmp:
        run_root = Path(tmp)
        trainer = make_trainer(cfg, task, data, run_root, "seqmodels")
        seqmodels = seqmodels_epoch(trainer, warmup, batches)
        trainer.logger.close()

        timings, plain, baseline_stats = [seqmodels], None, {}
        if baselines:
            plain = plain_loop("plain PyTorch loop, same model and batches", fresh_model(task, data, cfg.seed),
                               cfg, device, bucketed_batches(data, warmup), bucketed_batches(data, batches))
            reference = fresh_model(task, data, cfg.seed).to(device)
            packed_model = PackedClassifier(reference).to(device)
            difference = max_logit_difference(reference, packed_model, next(bucketed_batches(data, 1)), device)
            packed = plain_loop(f"`pack_padded_sequence` + nn.{type(packed_model.rnn).__name__}, random batches",
                                packed_model, cfg, device, random_batches(data, shuffled, warmup),
                                random_batches(data, shuffled, batches))
            timings += [plain, packed]
            baseline_stats = {"packed vs seqmodels model, max abs logit difference (eval)": f"{difference:.1e}"}

        trainer = make_trainer(cfg, task, data, run_root, "breakdown")
        breakdown = step_breakdown(trainer, warmup, batches)
        trainer.logger.close()

    lengths = data.train.sampler.lengths
    data.train.set_epoch(1)
    data_stats = {
        "train examples / batches per epoch": f"{len(lengths)} / {available}",
        "padding, bucketed batches (epoch 1)": f"{padding_fraction(lengths, data.train.sampler.batches()):.1%}",
        "padding, random batches": f"{padding_fraction(lengths, shuffled):.1%}",
        "startup: task.prepare(), cache exists": f"{startup:.2f} s",
        "first task.prepare() (may build the cache)": f"{first_prepare:.2f} s",
        **baseline_stats,
    }
    model = cfg.model
    setup = {"model": f"{'bi' if model.bidirectional else ''}{model.cell} x{model.num_layers} "
                      f"emb {model.embedding_dim} hidden {model.hidden_size} pooling {model.pooling}",
             "batch size": cfg.data.batch_size, "device": device, "threads": torch.get_num_threads(),
             "timed batches": batches, "warm-up": warmup, "torch": torch.__version__}
    print(report(setup, timings, plain, breakdown, batches, data_stats))

    if args.json:
        results = {
            "setup": {key: str(value) for key, value in setup.items()},
            "variants": [{**asdict(t), "tokens_per_s": t.tokens_per_s, "ms_per_batch": t.ms_per_batch,
                          "vs_plain": t.tokens_per_s / plain.tokens_per_s if plain else None} for t in timings],
            "breakdown_ms_per_batch": {name: 1000 * s / batches for name, s in breakdown.items()},
            "data": data_stats,
            "startup_seconds": startup,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
