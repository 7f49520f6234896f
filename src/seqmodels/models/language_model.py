"""Next-token prediction: embedding -> unidirectional recurrent encoder -> dropout -> a linear
decoder over the vocabulary (or an adaptive softmax), and sampling from it.

An adaptive softmax (Grave et al. 2017, `nn.AdaptiveLogSoftmaxWithLoss`) scores the frequent
words in full and the rarer ones in clusters of smaller vectors; with a 33k-word vocabulary it
makes a training step on CPU several times faster (the full softmax is most of the work). It
needs ids in frequency order, which is how the corpus vocabulary is built.

Left to right only: a backward direction would read the very tokens the model must predict.
The recurrent state is taken and returned, so a long text can be read window by window
(truncated backpropagation through time) and a prompt continued token by token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.models.encoder import LayerState, RecurrentEncoder

State = tuple[LayerState, ...]


def detach_state(state: State | None) -> State | None:
    """The same values, cut from the graph: gradients stop at the window boundary."""
    if state is None:
        return None
    return tuple(tuple(tensor.detach() for tensor in layer) for layer in state)


class LanguageModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        cell: str,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        tie_weights: bool = False,
        adaptive_cutoffs: list[int] | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError(f"tied weights need embedding_dim == hidden_size, got {embedding_dim} and {hidden_size}")
        if tie_weights and adaptive_cutoffs:
            raise ValueError("tied weights need a full softmax decoder, not an adaptive softmax")
        self.ignore_index = ignore_index  # targets that are no token (padding at the end of a stream)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # On the embeddings, between layers (inside the encoder) and before the decoder, as in
        # Zaremba et al. 2014: never on the recurrent connections.
        self.dropout = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(cell, embedding_dim, hidden_size, num_layers, bidirectional=False,
                                        dropout=dropout)
        # pytorch/examples' initialisation: small uniform embeddings and output weights (the
        # default N(0, 1) embedding makes early SGD steps with a large learning rate unstable).
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if adaptive_cutoffs:
            self.decoder = None
            # div_value 4: each rarer cluster's vectors are 4 times shorter than the last
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, list(adaptive_cutoffs), div_value=4.0)
            return
        self.adaptive = None
        self.decoder = nn.Linear(hidden_size, vocab_size)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            # One matrix both reads and predicts words (Press & Wolf 2017; Inan et al. 2017).
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, state: State | None = None,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """tokens: (B, T) ids, no padding before a real token; state: the state returned for the
        previous window, or None to start from zeros. Returns the new state and (B, T, vocab)
        scores (logits, or log-probabilities with an adaptive softmax: either gives the same
        distribution through a softmax) -- or, given (B, T) `targets`, the summed negative
        log-likelihood of the targets that are tokens, without scoring the whole vocabulary."""
        if targets is None:
            hidden, state = self._encode(tokens, state)
            if self.adaptive is None:
                return self.decoder(hidden), state
            return self.adaptive.log_prob(hidden.flatten(0, 1).float()).view(*tokens.shape, -1), state
        log_probs, _, state = self.score(tokens, state, targets)
        return -log_probs.sum(), state

    def score(self, tokens: torch.Tensor, state: State | None,
              targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """(B, T) log-probability of each target (0 where the target is no token), the (B, T,
        hidden) outputs that predicted them, and the new state."""
        hidden, state = self._encode(tokens, state)
        real = targets != self.ignore_index
        log_probs = hidden.new_zeros(targets.shape, dtype=torch.float32)
        if self.adaptive is None:
            log_probs[real] = -F.cross_entropy(self.decoder(hidden)[real].float(), targets[real], reduction="none")
        else:
            log_probs[real] = self.adaptive(hidden[real].float(), targets[real]).output
        return log_probs, hidden, state

    def _encode(self, tokens: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        batch, steps = tokens.shape
        lengths = torch.full((batch,), steps, dtype=torch.int64, device=tokens.device)
        encoded = self.encoder(self.dropout(self.embedding(tokens)), lengths, state)
        return self.dropout(encoded.outputs), encoded.state


def draw(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """One token per row of (N, vocab) logits, from the `top_k` most likely, sharpened
    (temperature < 1) or flattened (> 1). top_k=1 is greedy decoding."""
    values, indices = logits.float().cpu().topk(min(top_k, logits.shape[-1]), dim=-1)
    probabilities = torch.softmax(values / temperature, dim=-1)
    choice = torch.multinomial(probabilities, 1, generator=generator)
    return indices.gather(-1, choice).squeeze(-1)


@torch.no_grad()
def sample(model: LanguageModel, context: list[int], length: int, *, num_samples: int = 1, temperature: float = 1.0,
           top_k: int = 10, generator: torch.Generator | None = None) -> list[list[int]]:
    """`num_samples` continuations of `length` tokens after `context` (at least one id).

    Draws use `generator` (a CPU generator, so the same seed gives the same text on any
    device) and never the global random state, which training relies on.
    """
    if not context:
        raise ValueError("sampling needs at least one context token")
    generator = generator or torch.Generator()
    device = next(model.parameters()).device
    tokens = torch.tensor([context], device=device).expand(num_samples, -1)
    logits, state = model(tokens)
    drawn: list[torch.Tensor] = []
    for step in range(length):
        token = draw(logits[:, -1], temperature, top_k, generator)
        drawn.append(token)
        if step + 1 < length:
            logits, state = model(token.view(-1, 1).to(device), state)
    if not drawn:
        return [[] for _ in range(num_samples)]
    return torch.stack(drawn, dim=1).tolist()
