"""Many-to-one: embedding -> recurrent encoder -> pooled sequence vector -> class logits."""

from __future__ import annotations

import torch
from torch import nn

from seqmodels.models.encoder import RecurrentEncoder, length_mask

POOLINGS = ("last", "mean", "max", "meanmax")


def pool(outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """Summarise (B, T, H) encoder outputs over each sequence's real tokens only."""
    if how == "last":
        return final
    real = length_mask(lengths.to(outputs.device), outputs.shape[1]).unsqueeze(-1)
    mean = (outputs * real).sum(1) / lengths.to(outputs.device, outputs.dtype).unsqueeze(1)
    if how == "mean":
        return mean
    maximum = outputs.masked_fill(~real, float("-inf")).amax(1)
    if how == "max":
        return maximum
    return torch.cat([mean, maximum], dim=-1)


class SequenceClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(cell, embedding_dim, hidden_size, num_layers, bidirectional, dropout)
        pooled = self.encoder.output_size * (2 if pooling == "meanmax" else 1)
        self.head = nn.Linear(pooled, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T) right-padded ids; lengths: (B,). Returns (B, num_classes) logits."""
        encoded = self.encoder(self.dropout(self.embedding(tokens)), lengths)
        return self.head(self.dropout(pool(encoded.outputs, encoded.final, lengths, self.pooling)))
