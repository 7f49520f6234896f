"""How fast translation trains and decodes: seqmodels against plain PyTorch on the same model and batches.

Training (the first `--batches` batches of epoch 1, after `--warmup` untimed ones, both from the same
initial weights, each timed `--repeats` times in turns; the fastest run of each is reported):

  seqmodels   `Trainer.train_epoch()` with a section clock: its target tokens/s and where a step's time goes.
  plain loop  the same model, batches, optimizer and clipping in a hand-written loop: logits of every
              position (padding included), `F.cross_entropy(..., ignore_index=<pad>, label_smoothing=...)`,
              backward, clip, step.

Decoding (the first `--sentences` validation sentences, the model as initialised or loaded with `--run`):
beam search with `--beam` over batches of data.eval_batch_size sentences, against the same search one
sentence at a time; greedy decoding in batches for reference. Both searches return the same
translations (checked).

    SEQMODELS_DATA_DIR=/path/to/data python scripts/benchmark_translation.py experiment=multi30k_best \\
        --threads 1 --batches 60 --sentences 200
    python scripts/benchmark_translation.py experiment=multi30k_best --run outputs/multi30k/MODEL/DATE_TIME \\
        --sentences 200

Run it alone on the machine: another process on the same cores skews every number.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from seqmodels.config import compose_config
from seqmodels.data.text import PAD_ID
from seqmodels.inference.loading import load_run
from seqmodels.schema import validate
from seqmodels.train import check_config
from seqmodels.training.optim import OptimConfig, build_optimizer
from seqmodels.training.runtime import seed_everything
from seqmodels.training.tensorboard import RunLogger
from seqmodels.training.timing import SectionClock
from seqmodels.training.trainer import Trainer

SECTIONS = ("batch assembly", "forward", "backward", "optimizer step", "logging")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=multi30k_best")
    parser.add_argument("--batches", type=int, default=60, help="training batches timed per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed training batches before each variant")
    parser.add_argument(
        "--repeats", type=int, default=2, help="time each training variant this often; report the fastest"
    )
    parser.add_argument("--sentences", type=int, default=200, help="validation sentences decoded")
    parser.add_argument("--beam", type=int, default=5, help="beam size of the decoding comparison")
    parser.add_argument("--run", type=Path, default=None, help="decode with this run's best checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-training", action="store_true", help="only the decoding comparison")
    return parser.parse_intermixed_args()


def seqmodels_epoch(cfg, task, data, limit: int, warmup: int, root: Path) -> tuple[float, int, dict[str, float]]:
    seed_everything(cfg.seed)
    trainer = Trainer(cfg, task, data, task.build_model(data.artifacts), root / f"run-{time.monotonic_ns()}")
    trainer.logger = RunLogger(trainer.run_dir / "tensorboard")
    try:
        if warmup:
            trainer.tcfg.limit_train_batches = warmup
            trainer.train_epoch()
        clock = SectionClock(trainer.device)
        trainer.tcfg.limit_train_batches = limit
        with clock.installed():
            result = trainer.train_epoch()
    finally:
        trainer.logger.close()
    tokens = sum(int((b.target_out != PAD_ID).sum()) for b in first_batches(data, limit))
    return result["seconds"], tokens, dict(clock.seconds)


def first_batches(data, count: int):
    data.train.set_epoch(1)  # the order train_epoch reads in epoch 1
    return itertools.islice(iter(data.train), count)


def plain_epoch(cfg, task, data, limit: int, warmup: int) -> tuple[float, int]:
    seed_everything(cfg.seed)
    model = task.build_model(data.artifacts).train()
    optimizer = build_optimizer(validate(OptimConfig, cfg.optim, "optim"), model.parameters())
    smoothing, clip = task.model_config.label_smoothing, cfg.trainer.grad_clip

    def step(batch) -> None:
        logits = model(batch.source, batch.source_lengths, batch.target_in)
        loss = F.cross_entropy(logits.transpose(1, 2), batch.target_out, ignore_index=PAD_ID, label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    for batch in first_batches(data, warmup):
        step(batch)
    tokens = 0
    start = time.perf_counter()
    for batch in first_batches(data, limit):
        step(batch)
        tokens += int((batch.target_out != PAD_ID).sum())
    return time.perf_counter() - start, tokens


def decoding(task, model, data, sentences: int, beam: int) -> None:
    model.eval()
    batches, count = [], 0
    for batch in data.val:
        batches.append(batch)
        count += len(batch.source_lengths)
        if count >= sentences:
            break
    count = sum(len(b.source_lengths) for b in batches)
    task.length_penalty = task.decode_config.length_penalty
    timings, outputs = {}, {}
    for name, run in (
        ("greedy, batched", lambda b: task.translate_ids(model, b.source, b.source_lengths, 1)),
        (f"beam {beam}, batched", lambda b: task.translate_ids(model, b.source, b.source_lengths, beam)),
        (
            f"beam {beam}, one sentence at a time",
            lambda b: [
                task.translate_ids(model, b.source[i : i + 1, : int(n)], b.source_lengths[i : i + 1], beam)[0]
                for i, n in enumerate(b.source_lengths.tolist())
            ],
        ),
    ):
        start = time.perf_counter()
        outputs[name] = [ids for b in batches for ids in run(b)]
        timings[name] = time.perf_counter() - start
    same = outputs[f"beam {beam}, batched"] == outputs[f"beam {beam}, one sentence at a time"]
    print(
        f"\ndecoding {count} validation sentences (batches of {data.val.sampler.batch_size}); batched and "
        f"one-at-a-time beams give {'the same' if same else 'DIFFERENT'} translations"
    )
    single = count / timings[f"beam {beam}, one sentence at a time"]
    for name, seconds in timings.items():
        print(f"  {name:<36} {count / seconds:8.1f} sentences/s  {count / seconds / single:6.2f}x")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_run(args.run) if args.run else None
    cfg = loaded.cfg if loaded else compose_config(["task=multi30k", *args.overrides])
    cfg.trainer.gradient_flow = False
    task = loaded.task if loaded else check_config(cfg)
    data = task.prepare()
    print(f"model: {task.describe()} | batch {cfg.data.batch_size} | threads {torch.get_num_threads()}")
    if not args.skip_training:
        best: dict[str, tuple[float, int, dict[str, float]]] = {}
        with tempfile.TemporaryDirectory() as root:
            for _ in range(args.repeats):
                seconds, tokens, sections = seqmodels_epoch(cfg, task, data, args.batches, args.warmup, Path(root))
                if "seqmodels" not in best or seconds < best["seqmodels"][0]:
                    best["seqmodels"] = (seconds, tokens, sections)
                seconds, tokens = plain_epoch(cfg, task, data, args.batches, args.warmup)
                if "plain" not in best or seconds < best["plain"][0]:
                    best["plain"] = (seconds, tokens, {})
        plain_rate = best["plain"][1] / best["plain"][0]
        print(f"\ntraining, {args.batches} batches (fastest of {args.repeats}): target tokens/s")
        for name, (seconds, tokens, _) in best.items():
            print(
                f"  {name:<12} {tokens / seconds:8.0f} tokens/s  {1000 * seconds / args.batches:6.0f} ms/batch  "
                f"{tokens / seconds / plain_rate:5.2f}x plain loop"
            )
        sections = best["seqmodels"][2]
        total = sum(sections.values())
        print(
            "  seqmodels step: " + ", ".join(f"{name} {100 * sections.get(name, 0) / total:.1f}%" for name in SECTIONS)
        )
    model = loaded.model if loaded else task.build_model(data.artifacts)
    decoding(task, model, data, args.sentences, args.beam)


if __name__ == "__main__":
    main()
