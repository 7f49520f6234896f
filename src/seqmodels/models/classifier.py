"""Many-to-one: embedding -> recurrent encoder -> pooled sequence vector -> class logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqmodels.models.embedding import PretrainedRows, WordEmbedding
from seqmodels.models.encoder import EncoderConfig, RecurrentEncoder, length_mask
from seqmodels.schema import setting

POOLINGS = ("last", "mean", "max", "meanmax")


@dataclass
class ClassifierConfig(EncoderConfig):
    """`model.*` of a many-to-one task: the encoder and how its outputs become one vector."""

    pooling: str = setting(
        "max", "the sequence's summary over its real tokens: last | mean | max | meanmax", choices=POOLINGS
    )

    def build(
        self, vocab_size: int, num_classes: int, *, frozen_words: int = 0, pretrained: PretrainedRows | None = None
    ) -> SequenceClassifier:
        """`vocab_size` ids, the last `frozen_words` of them pretrained words (`models.embedding`)."""
        model = SequenceClassifier(self, vocab_size, num_classes, frozen_words=frozen_words)
        self.start_embedding(model.embedding, pretrained)
        return model

    def describe(self) -> str:
        return f"{super().describe()}, pooling {self.pooling}"


def pool(outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """Summarise (B, T, H) encoder outputs over each sequence's real tokens only; `lengths` (B,) on any
    device (a batch's stay on the CPU)."""
    if how == "last":
        return final
    lengths = lengths.to(outputs.device, non_blocking=True)
    real = length_mask(lengths, outputs.shape[1]).unsqueeze(-1)
    mean = (outputs * real).sum(1) / lengths.to(outputs.dtype).unsqueeze(1)
    if how == "mean":
        return mean
    maximum = outputs.masked_fill(~real, float("-inf")).amax(1)
    if how == "max":
        return maximum
    return torch.cat([mean, maximum], dim=-1)


class SequenceClassifier(nn.Module):
    """The model of a `ClassifierConfig` section, read whole: only what the data decides comes separately
    (the vocabulary, the labels, the pretrained words beyond the training vocabulary)."""

    def __init__(
        self,
        config: ClassifierConfig,
        vocab_size: int,
        num_classes: int,
        *,
        padding_idx: int = 0,
        frozen_words: int = 0,
    ) -> None:
        super().__init__()
        self.pooling = config.pooling
        self.embedding = WordEmbedding(vocab_size, config.embedding_dim, padding_idx, frozen_words)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = RecurrentEncoder(input_size=config.embedding_dim, **config.encoder_kwargs())
        pooled = self.encoder.output_size * (2 if config.pooling == "meanmax" else 1)
        self.head = nn.Linear(pooled, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T) right-padded ids; lengths: (B,). Returns (B, num_classes) logits."""
        encoded = self.encoder(self.dropout(self.embedding(tokens)), lengths)
        return self.head(self.dropout(pool(encoded.outputs, encoded.final, lengths, self.pooling)))
