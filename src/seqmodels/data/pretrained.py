"""A vocabulary meets a vector file: which words have a vector, which pretrained words lie beyond it,
and the coverage line printed at start.

A vocabulary word takes the vector of the same word, else of its lowercased form (GloVe 6B is
lowercased, CoNLL-2003 is not), else none: it starts at random, at the vectors' scale. Pretrained
words that training never saw are kept beyond the training vocabulary (`unseen_candidates`), so a
validation, test or user's word gets its vector without the vocabulary ever being built from
anything but the training data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from seqmodels.data.vectors import WordVectors

LOW_COVERAGE = 0.5  # below this share of training tokens covered, the coverage line becomes a warning


@dataclass(frozen=True)
class Coverage:
    """How well a vector file covers a vocabulary (the special tokens such as <pad> left out)."""

    source: str  # the file, its format and size
    words: int  # vocabulary words
    exact: int  # found as they are
    lowercased: int  # found only in lowercase
    tokens: float  # share of training tokens whose word has a vector
    frozen: int  # pretrained words beyond the vocabulary, for words training never saw
    frequent_missing: tuple[str, ...]  # the most frequent training words without a vector
    causes: tuple[str, ...]  # why coverage may be low, most likely first

    @property
    def missing(self) -> int:
        return self.words - self.exact - self.lowercased

    def line(self) -> str:
        share = self.missing / max(self.words, 1)
        beyond = (
            f"; {self.frozen:,} more pretrained words kept, frozen, for words unseen in training" if self.frozen else ""
        )
        return (
            f"{self.source}: of {self.words:,} vocabulary words {self.exact:,} found exactly, {self.lowercased:,} "
            f"lowercased, {self.missing:,} not found ({share:.1%}, started at random); {self.tokens:.1%} of "
            f"training tokens covered{beyond}"
        )

    def warning(self) -> str | None:
        """A loud line when less than half the training tokens have a vector, with the likely causes."""
        if self.tokens >= LOW_COVERAGE:
            return None
        examples = ", ".join(repr(word) for word in self.frequent_missing)
        return (
            f"ONLY {self.tokens:.1%} OF TRAINING TOKENS HAVE A PRETRAINED VECTOR: likely "
            f"{'; or '.join(self.causes)}. Frequent training words without one: {examples}"
        )


def unseen_candidates(
    vectors: WordVectors, limit: int | None, *, lowercase: bool, token_pattern: str | None = None
) -> list[str]:
    """The file's first `limit` words (files list frequent words first; None: all) that the task's
    text can produce: lowercase ones only when the task lowercases, and only whole tokens of
    `token_pattern` when a tokenizer splits words further."""
    words = vectors.words if limit is None else vectors.words[:limit]
    if lowercase:
        words = [word for word in words if word == word.lower()]
    if token_pattern is not None:
        whole = re.compile(token_pattern)
        words = [word for word in words if whole.fullmatch(word)]
    return words


def extend(vocabulary: Sequence[str], candidates: Sequence[str]) -> list[str]:
    """The candidates that are not vocabulary words, in their order: the ids after the vocabulary's."""
    known = set(vocabulary)
    seen: set[str] = set()
    beyond = []
    for word in candidates:
        if word not in known and word not in seen:
            seen.add(word)
            beyond.append(word)
    return beyond


def match(
    vectors: WordVectors,
    words: Sequence[str],
    *,
    frozen: int,
    train_ids: torch.Tensor,
    specials: Collection[str] = (),
    lowercased_data: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, Coverage]:
    """Row i of the (len(words), D) result is the vector of words[i], where found (the bool mask).
    The last `frozen` words are pretrained words beyond the training vocabulary, found by
    construction. `train_ids`: every training token's id, for the share of tokens covered."""
    trainable = len(words) - frozen
    index = vectors.index
    positions, file_rows = [], []
    exact = lowercased = 0
    for i, word in enumerate(words):
        if i < trainable and word in specials:
            continue
        row = index.get(word)
        if row is not None:
            exact += i < trainable
        elif i < trainable:
            row = index.get(word.lower())
            lowercased += row is not None
        if row is not None:
            positions.append(i)
            file_rows.append(row)
    rows = torch.zeros(len(words), vectors.dim)
    rows[positions] = vectors.vectors[file_rows]
    found = torch.zeros(len(words), dtype=torch.bool)
    found[positions] = True
    counts = torch.bincount(train_ids.long().flatten(), minlength=len(words))
    share = float(counts[found].sum()) / max(int(counts.sum()), 1)
    is_special = torch.tensor([i < trainable and word in specials for i, word in enumerate(words)], dtype=torch.bool)
    missing = (~found & ~is_special).nonzero().flatten()
    frequent = missing[counts[missing].argsort(descending=True, stable=True)[:8]].tolist()
    coverage = Coverage(
        vectors.describe(),
        int((~is_special[:trainable]).sum()),
        exact,
        lowercased,
        share,
        frozen,
        tuple(words[i] for i in frequent),
        _causes(vectors, lowercased_data),
    )
    return rows, found, coverage


def _causes(vectors: WordVectors, lowercased_data: bool) -> tuple[str, ...]:
    causes = [
        "vectors of another language or another tokenization (subwords, other punctuation rules)",
        "the wrong file",
    ]
    if lowercased_data and vectors.cased_share > 0.3:
        causes.insert(
            0,
            f"lowercased text against cased vectors ({vectors.cased_share:.0%} of the file's words have "
            f"capitals): try data.lowercase=false",
        )
    return tuple(causes)
