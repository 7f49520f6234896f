"""Token streams for language models: read a text, number its tokens, lay them out as
parallel streams and cut the streams into windows for truncated backpropagation through time.

Word corpora follow the convention behind published PTB and WikiText results (pytorch/examples
`word_language_model`): every line is `line.split()` followed by `<eos>`, empty lines included.
The vocabulary is what the files hold; nothing is lowercased, merged or invented.

Layout (pytorch/examples' `batchify`, made exact): a split of N tokens gives N - 1
(input, next token) pairs. They are dealt into `num_streams` rows of equal length, row
i continuing where row i - 1 stops, and the rows are read window by window, `bptt` steps
at a time, so a row's recurrent state at the end of one window is where the next window
begins. Every token but the first (which has nothing before it) is a target exactly once;
instead of dropping the tail that does not fill a row, as `batchify` does, the last row
or rows end in a few padding positions whose targets are `IGNORE`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqmodels.data.encoding import UTF8, TextEncoding, read_text, split_lines
from seqmodels.errors import DataError

EOS = "<eos>"
UNKNOWN = "<unk>"  # the unknown word of PTB and WikiText
UNKNOWN_CHAR = "\ufffd"  # Unicode's replacement character stands for a character not seen in training
IGNORE = -100  # a target that is not a token (F.cross_entropy's default ignore_index)


def read_words(path: Path, encoding: TextEncoding = UTF8) -> list[str]:
    """The words of a text file, each line followed by `<eos>` (decoded by `encoding`'s rule)."""
    tokens: list[str] = []
    for line in split_lines(read_text(path, encoding)):
        tokens += line.split()
        tokens.append(EOS)
    return tokens


def split_by_fractions(text: str, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Contiguous parts: the first 1 - val - test of the text trains, the next part validates,
    the end tests. Contiguous rather than shuffled, so validation text is text the model has
    not read in any form."""
    val = int(len(text) * val_fraction)
    test = int(len(text) * test_fraction)
    train = len(text) - val - test
    return {"train": text[:train], "val": text[train : train + val], "test": text[train + val :]}


def build_vocabulary(tokens: Iterable[str], unknown: str | None = None) -> list[str]:
    """Every distinct token, most frequent first (ties in first-seen order, so the same text gives
    the same ids), after `unknown` when one is asked for. Frequency order is what an adaptive
    softmax's clusters (model.adaptive_cutoffs) rely on: id < cutoff means a frequent word."""
    counts = Counter(tokens)  # insertion order is first-seen order; most_common keeps it for ties
    return [*([unknown] if unknown else []), *(token for token, _ in counts.most_common() if token != unknown)]


def encode(tokens: list[str], vocabulary: list[str], unknown: str | None) -> torch.Tensor:
    """int32 ids; a token outside the vocabulary becomes `unknown`, or is an error without one."""
    index = {token: i for i, token in enumerate(vocabulary)}
    fallback = index[unknown] if unknown is not None else -1
    ids = torch.tensor([index.get(token, fallback) for token in tokens], dtype=torch.int32)
    if fallback == -1 and bool((ids == -1).any()):
        first = next(token for token in tokens if token not in index)
        raise DataError(f"{first!r} is not in the training vocabulary and the vocabulary has no {UNKNOWN}")
    return ids


@dataclass(frozen=True)
class Streams:
    inputs: torch.Tensor  # (num_streams, length) int64
    targets: torch.Tensor  # (num_streams, length): each input's next token, IGNORE past the end

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


def lay_out(ids: torch.Tensor, num_streams: int) -> Streams:
    """The N - 1 (token, next token) pairs of `ids` as `num_streams` contiguous rows."""
    pairs = len(ids) - 1
    if pairs < 1:
        raise ValueError(f"a text of {len(ids)} token(s) has nothing to predict")
    if num_streams < 1:
        raise ValueError(f"num_streams must be >= 1, got {num_streams}")
    length = -(-pairs // num_streams)
    inputs = torch.zeros(num_streams * length, dtype=torch.int64)
    targets = torch.full((num_streams * length,), IGNORE, dtype=torch.int64)
    inputs[:pairs] = ids[:-1]
    targets[:pairs] = ids[1:]
    return Streams(inputs.view(num_streams, length), targets.view(num_streams, length))


class StreamWindows:
    """Window k holds steps [k * bptt, (k + 1) * bptt) of every stream, assembled into a batch
    by `make_batch(inputs, targets)`; the last window may be shorter. The order is fixed:
    shuffling windows would cut the text the carried state relies on."""

    def __init__(self, streams: Streams, bptt: int, make_batch: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        self.streams = streams
        self.bptt = bptt
        self.make_batch = make_batch

    def set_epoch(self, epoch: int) -> None:
        """A text is read in order every epoch: nothing to reshuffle."""

    def shard(self, rank: int, num_ranks: int) -> None:
        """Keep only rank `rank`'s streams (of `num_ranks`): every rank reads the same windows of
        its own rows, so together the ranks still predict every token exactly once."""
        rows = torch.arange(self.streams.inputs.shape[0]).tensor_split(num_ranks)[rank]
        if len(rows) == 0:
            raise ValueError(
                f"{self.streams.inputs.shape[0]} streams cannot be shared by {num_ranks} processes; "
                f"use a batch size of at least {num_ranks}"
            )
        self.streams = Streams(self.streams.inputs[rows], self.streams.targets[rows])

    def __len__(self) -> int:
        return -(-self.streams.inputs.shape[1] // self.bptt)

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, self.streams.inputs.shape[1], self.bptt):
            end = start + self.bptt
            yield self.make_batch(self.streams.inputs[:, start:end], self.streams.targets[:, start:end])

    def sample(self, count: int) -> Iterator[Any]:
        """The first `count` windows: the state carries from one window into the next, so they follow
        each other (and a text has no order by length to spread over)."""
        return itertools.islice(iter(self), count)
