"""Word ids -> vectors: a trainable table for the training vocabulary and, with pretrained vectors, a
frozen table of the pretrained words training never saw.

Ids 0 .. num_embeddings-1 are the training vocabulary: `weight`, a parameter, started from the
pretrained vectors where the file has the word and at random at the vectors' scale where it does
not (`<pad>` stays zero). Ids from num_embeddings on are the pretrained words beyond it: `frozen`, a
buffer, so no optimizer touches it and it is saved with the weights (a run directory predicts without
the vector file). A validation, test or user's word that training never saw thus keeps its
pretrained vector, which the encoder learned to read from the training words' vectors, instead of
becoming `<unk>`.

Keeping those words out of the parameters is what makes them cheap: on CoNLL-2003 with GloVe 6B
they are 380k of 400k rows, which as parameters would hold Adam's two moments each and be updated at
every step (docs/word-vectors.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PretrainedRows:
    """What a model's embedding starts from: row i is word i's pretrained vector where `found[i]`."""

    vectors: torch.Tensor  # (num_words, D), the training vocabulary's rows first, then the frozen ones
    found: torch.Tensor  # (num_words,) bool
    scale: float  # standard deviation of the file's values: what the missing words are drawn at


class WordEmbedding(nn.Embedding):
    frozen: torch.Tensor | None  # buffer

    def __init__(self, num_words: int, embedding_dim: int, padding_idx: int | None = 0, frozen_words: int = 0) -> None:
        """`num_words` ids in all, the last `frozen_words` of them pretrained words kept frozen."""
        if not 0 <= frozen_words < num_words:
            raise ValueError(f"frozen_words={frozen_words} must leave trainable words of the {num_words}")
        super().__init__(num_words - frozen_words, embedding_dim, padding_idx=padding_idx)
        # None (not an empty tensor) without frozen words, so state dicts stay those of an nn.Embedding
        self.register_buffer("frozen", torch.zeros(frozen_words, embedding_dim) if frozen_words else None)

    @property
    def num_words(self) -> int:
        return self.num_embeddings + (0 if self.frozen is None else len(self.frozen))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.frozen is None:
            return F.embedding(ids, self.weight, self.padding_idx)
        # Both tables are always read: asking whether a batch has frozen words at all would wait for the
        # device in every training step, which costs more than the second lookup.
        trained = ids < self.num_embeddings
        vectors = F.embedding(ids.clamp(max=self.num_embeddings - 1), self.weight, self.padding_idx)
        beyond = F.embedding((ids - self.num_embeddings).clamp(min=0), self.frozen)
        return torch.where(trained.unsqueeze(-1), vectors, beyond)

    @torch.no_grad()
    def load_pretrained(self, pretrained: PretrainedRows) -> None:
        """Start from the pretrained rows; words the file lacks drawn from N(0, scale^2), `<pad>` zero."""
        if pretrained.vectors.shape != (self.num_words, self.embedding_dim):
            raise ValueError(
                f"pretrained rows {tuple(pretrained.vectors.shape)} for an embedding of "
                f"{self.num_words} x {self.embedding_dim}"
            )
        trainable = self.num_embeddings
        drawn = torch.randn(trainable, self.embedding_dim) * pretrained.scale
        found = pretrained.found[:trainable].unsqueeze(1)
        self.weight.copy_(torch.where(found, pretrained.vectors[:trainable].float(), drawn))
        if self.frozen is not None:  # pretrained words, each found by construction
            self.frozen.copy_(pretrained.vectors[trainable:])
        if self.padding_idx is not None:
            self.weight[self.padding_idx].zero_()

    def extra_repr(self) -> str:
        frozen = f", frozen_words={len(self.frozen)}" if self.frozen is not None else ""
        return super().extra_repr() + frozen
