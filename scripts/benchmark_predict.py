"""How fast a sentiment run answers many reviews: the batched path of `predict.py --input` against one
review at a time, and the exported ONNX graph in onnxruntime against PyTorch.

    SEQMODELS_DATA_DIR=/path/to/data python scripts/benchmark_predict.py RUN --threads 1

The reviews are IMDB's test reviews (all 25,000 unless `--limit`), read from the run's data.root.

  batched     `load_run(RUN).predict_texts(reviews)`: what `predict.py RUN --input FILE` runs (sorted
              by length, batches of `--batch-size`, order restored), tokenizing included.
  one by one  `load_run(RUN).predict(review)` in a loop, the single-text path, on `--single` reviews
              spread evenly over the set; its time for the whole set is extrapolated from them.
  process     `predict.py RUN TEXT`, one process per review (`--processes` of them, imports included).
  onnx        the graph of `scripts/export.py`, run by onnxruntime on the same batches (tokenized by the
              tokenizer in the JSON beside it); its probabilities are checked against PyTorch's.

Each line gives wall-clock texts/s and texts per CPU-second of this process (all its threads): on a
machine that other processes share, the CPU figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seqmodels import load_run
from seqmodels.data import imdb
from seqmodels.data.batching import pad_right
from seqmodels.inference.export import export_onnx, sidecar_path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a sentiment run directory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="the first N test reviews (default: all)")
    parser.add_argument("--single", type=int, default=500, help="reviews timed one by one (default 500)")
    parser.add_argument("--processes", type=int, default=3, help="predict.py processes timed (default 3; 0: none)")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    if run.cfg.task.kind != "sentiment":
        sys.exit(f"error: {args.run} is a {run.cfg.task.kind} run; this benchmark reads IMDB reviews")
    reviews = imdb.read(imdb.locate(Path(run.cfg.data.root), allow_download=False))["test"].texts[: args.limit]
    print(f"{len(reviews):,} IMDB test reviews | {run.task.describe()} | {args.threads} thread(s)")

    run.predict_texts(reviews[:256], batch_size=args.batch_size)  # warm-up
    clock = Clock()
    answers, batched = run.predict_texts(reviews, batch_size=args.batch_size)
    batched_cpu = clock.cpu()
    report("batched (predict.py --input)", len(reviews), clock.wall(), batched_cpu, batched.tokens)

    step = max(len(reviews) // args.single, 1)
    sample = reviews[::step][: args.single]
    clock = Clock()
    for review in sample:
        run.predict(review)
    scale = len(reviews) / len(sample)
    single_cpu = clock.cpu() * scale
    report(
        f"one by one (predict(text), {len(sample)} timed, extrapolated)", len(reviews), clock.wall() * scale, single_cpu
    )
    print(f"  batched / one by one: {single_cpu / batched_cpu:.1f}x (CPU time)")

    if args.processes:
        clock = Clock()
        for review in sample[: args.processes]:
            command = [sys.executable, str(ROOT / "scripts" / "predict.py"), str(args.run), review[:2000]]
            subprocess.run([*command, "--threads", str(args.threads)], check=True, capture_output=True)
        per_text = clock.children() / args.processes
        report(
            f"a process per text (predict.py RUN TEXT, {args.processes} timed)",
            1,
            clock.wall() / args.processes,
            per_text,
        )
        print(f"  batched / process per text: {per_text * len(reviews) / batched_cpu:,.0f}x (CPU time)")

    if not args.no_onnx:
        onnx_against_torch(run, reviews, args, answers)


def onnx_against_torch(run, reviews: list[str], args: argparse.Namespace, answers: list[dict]) -> None:
    import onnxruntime
    from tokenizers import Tokenizer

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(run.task, run.model, run.artifacts, path)
        sidecar = json.loads(sidecar_path(path).read_text())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_str(json.dumps(sidecar["tokenizer"]))
    order = sorted(range(len(reviews)), key=lambda i: len(reviews[i]), reverse=True)
    clock = Clock()
    probabilities = np.zeros((len(reviews), len(sidecar["labels"])), dtype=np.float32)
    tokens_read = 0
    for first in range(0, len(order), args.batch_size):
        batch = order[first : first + args.batch_size]
        ids = [torch.tensor(encoding.ids or [1]) for encoding in tokenizer.encode_batch([reviews[i] for i in batch])]
        tokens, lengths = pad_right(ids)
        tokens_read += int(lengths.sum())
        feed = {"tokens": tokens.numpy(), "lengths": lengths.numpy()}
        probabilities[batch] = session.run(None, {name: feed[name] for name in sidecar["inputs"]})[0]
    report("onnxruntime (same batches, tokenizing included)", len(reviews), clock.wall(), clock.cpu(), tokens_read)
    expected = np.array([[answer["probabilities"][label] for label in sidecar["labels"]] for answer in answers])
    labels = [sidecar["labels"].index(answer["label"]) for answer in answers]
    agree = np.mean(probabilities.argmax(1) == np.array(labels))
    largest = np.abs(probabilities - expected).max()
    print(f"  labels equal to PyTorch's: {agree:.2%}; probabilities differ by at most {largest:.1e} (4 places printed)")


class Clock:
    """Wall time, and CPU time of this process (all its threads) or of its finished child processes."""

    def __init__(self) -> None:
        self.start_wall, self.start_cpu, self.start_children = time.perf_counter(), time.process_time(), _children()

    def wall(self) -> float:
        return time.perf_counter() - self.start_wall

    def cpu(self) -> float:
        return time.process_time() - self.start_cpu

    def children(self) -> float:
        return _children() - self.start_children


def _children() -> float:
    times = os.times()
    return times.children_user + times.children_system


def report(what: str, texts: int, wall: float, cpu: float, tokens: int | None = None) -> None:
    per_cpu = f"{texts / cpu:,.1f} texts/CPU-s" + (f", {tokens / cpu:,.0f} tokens/CPU-s" if tokens else "")
    print(f"{what}: {texts:,} texts in {wall:,.1f} s ({texts / wall:,.1f} texts/s); {cpu:,.1f} CPU-s: {per_cpu}")


if __name__ == "__main__":
    main()
