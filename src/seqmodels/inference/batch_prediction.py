"""Many inputs through one task's batched answer: sorted by length into batches (little padding),
answered batch by batch with a progress bar, and put back in their order."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

from seqmodels.tasks.base import Answers

Item = TypeVar("Item")


@dataclass
class Throughput:
    items: int
    tokens: int  # tokens the model read
    seconds: float
    cut: int = 0  # inputs cut to the run's data.max_length
    unit: str = "texts"

    def summary(self) -> str:
        """One closing line, e.g. `25,000 texts, 5,812,331 tokens in 61.2 s: 408.5 texts/s, 94,973 tokens/s`."""
        seconds = max(self.seconds, 1e-9)
        line = (
            f"{self.items:,} {self.unit}, {self.tokens:,} tokens in {self.seconds:.1f} s: "
            f"{self.items / seconds:,.1f} {self.unit}/s, {self.tokens / seconds:,.0f} tokens/s"
        )
        if self.cut:
            line += f"; {self.cut:,} cut to data.max_length"
        return line


def answer_in_batches(
    items: Sequence[Item],
    answer: Callable[[list[Item]], Answers],
    size: Callable[[Item], int],
    batch_size: int,
    *,
    progress: bool = False,
    unit: str = "texts",
) -> tuple[list[dict[str, Any]], Throughput]:
    """`answer` applied to batches of `batch_size` items of similar `size`, longest first; the answers
    in the items' order."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    order = sorted(range(len(items)), key=lambda i: size(items[i]), reverse=True)
    results: list[dict[str, Any]] = [{} for _ in items]
    tokens = cut = 0
    start = time.perf_counter()
    with tqdm(total=len(items), unit=f" {unit}", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            answers = answer([items[i] for i in batch])
            for i, result in zip(batch, answers.results, strict=True):
                results[i] = result
            tokens, cut = tokens + answers.tokens, cut + answers.cut
            bar.update(len(batch))
            bar.set_postfix_str(f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s", refresh=False)
    return results, Throughput(len(items), tokens, time.perf_counter() - start, cut, unit)
