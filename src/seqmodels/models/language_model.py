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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.errors import ConfigError
from seqmodels.models.embedding import PretrainedRows, WordEmbedding
from seqmodels.models.encoder import EncoderConfig, LayerState, RecurrentEncoder
from seqmodels.schema import setting

State = tuple[LayerState, ...]


def detach_state(state: State | None) -> State | None:
    """The same values, cut from the graph: gradients stop at the window boundary."""
    if state is None:
        return None
    return tuple(tuple(tensor.detach() for tensor in layer) for layer in state)


@dataclass
class LanguageModelConfig(EncoderConfig):
    """`model.*` of a language model: a left-to-right encoder and the output layer over the vocabulary."""

    tie_weights: bool = setting(
        False, "the input embedding is also the output layer (needs embedding_dim == hidden_size)"
    )
    adaptive_cutoffs: list[int] | None = setting(
        None,
        "e.g. [2000, 10000]: an adaptive softmax (word clusters by "
        "frequency) instead of the full one; null: full softmax",
        minimum=1,
        hint="use a list of word counts, e.g. [2000,10000], or null for a full softmax",
    )

    def check(self) -> None:
        super().check()
        if self.bidirectional:
            raise ConfigError(
                "model.bidirectional=true cannot predict the next token: the backward direction "
                "reads the tokens to be predicted; use model.bidirectional=false"
            )
        if self.tie_weights and self.adaptive_cutoffs:
            raise ConfigError(
                "model.tie_weights=true needs a full softmax: set model.adaptive_cutoffs=null or "
                "model.tie_weights=false"
            )
        if self.tie_weights and self.freeze_vectors:
            raise ConfigError(
                "model.freeze_vectors=true with model.tie_weights=true would freeze the output layer "
                "too (it is the embedding); set one of them to false"
            )
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ConfigError(
                f"model.tie_weights=true needs model.embedding_dim == model.hidden_size (got "
                f"{self.embedding_dim} and {self.hidden_size}); make them equal or untie"
            )
        cutoffs = self.adaptive_cutoffs or []
        if cutoffs and (cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 1):
            raise ConfigError(
                f"model.adaptive_cutoffs={cutoffs} is impossible: give increasing word counts, e.g. [2000, 10000]"
            )
        if cutoffs and self.hidden_size // 4 ** len(cutoffs) < 1:  # each rarer cluster's vectors are 4x shorter
            raise ConfigError(
                f"model.adaptive_cutoffs={cutoffs} makes {len(cutoffs)} clusters of rarer words, too "
                f"many for model.hidden_size={self.hidden_size} (the last would have vectors of size "
                f"0): use at most {max(int(math.log(self.hidden_size, 4)), 0)} cutoffs or a larger "
                f"hidden size"
            )

    def build(self, vocab_size: int, ignore_index: int, *, pretrained: PretrainedRows | None = None) -> LanguageModel:
        """`pretrained`: rows for the corpus vocabulary only; the output layer predicts that vocabulary."""
        self.check()
        cutoffs = self.adaptive_cutoffs
        if cutoffs and cutoffs[-1] >= vocab_size:
            raise ConfigError(
                f"model.adaptive_cutoffs={cutoffs} is impossible for a vocabulary of {vocab_size:,}: "
                f"give increasing word counts between 1 and {vocab_size - 1}, e.g. [2000, 10000]"
            )
        model = LanguageModel(self, vocab_size, ignore_index)
        self.start_embedding(model.embedding, pretrained)
        return model

    def describe(self) -> str:
        output = "tied" if self.tie_weights else f"adaptive {self.adaptive_cutoffs}" if self.adaptive_cutoffs else ""
        return ", ".join(filter(None, [super().describe(), output]))


class LanguageModel(nn.Module):
    def __init__(self, config: LanguageModelConfig, vocab_size: int, ignore_index: int = -100) -> None:
        """The model `config` (`model.*`) describes, over a vocabulary of `vocab_size` (frequent words first)."""
        super().__init__()
        self.ignore_index = ignore_index  # targets that are no token (padding at the end of a stream)
        hidden_size, adaptive_cutoffs = config.hidden_size, config.adaptive_cutoffs
        self.embedding = WordEmbedding(vocab_size, config.embedding_dim, padding_idx=None)
        # On the embeddings, between layers (inside the encoder) and before the decoder, as in
        # Zaremba et al. 2014: never on the recurrent connections.
        self.dropout = nn.Dropout(config.dropout)
        left_to_right = {**config.encoder_kwargs(), "bidirectional": False}  # see the module docstring
        self.encoder = RecurrentEncoder(input_size=config.embedding_dim, **left_to_right)
        # pytorch/examples' initialisation: small uniform embeddings and output weights (the
        # default N(0, 1) embedding makes early SGD steps with a large learning rate unstable).
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.decoder: nn.Linear | None
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None
        if adaptive_cutoffs:
            self.decoder = None
            # div_value 4: each rarer cluster's vectors are 4 times shorter than the last
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                hidden_size, vocab_size, list(adaptive_cutoffs), div_value=4.0
            )
            return
        self.adaptive = None
        self.decoder = nn.Linear(hidden_size, vocab_size)
        nn.init.zeros_(self.decoder.bias)
        if config.tie_weights:
            # One matrix both reads and predicts words (Press & Wolf 2017; Inan et al. 2017).
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """tokens: (B, T) ids, no padding before a real token; state: the state returned for the
        previous window, or None to start from zeros. Returns the new state and (B, T, vocab)
        scores (logits, or log-probabilities with an adaptive softmax: either gives the same
        distribution through a softmax) -- or, given (B, T) `targets`, the summed negative
        log-likelihood of the targets that are tokens, without scoring the whole vocabulary."""
        if targets is None:
            hidden, state = self._encode(tokens, state)
            if self.decoder is not None:
                return self.decoder(hidden), state
            assert self.adaptive is not None
            with float32(hidden):
                return self.adaptive.log_prob(hidden.flatten(0, 1).float()).view(*tokens.shape, -1), state
        log_probs, _, state = self.score(tokens, state, targets)
        return -log_probs.sum(), state

    def score(
        self, tokens: torch.Tensor, state: State | None, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """(B, T) log-probability of each target (0 where the target is no token), the (B, T,
        hidden) outputs that predicted them, and the new state."""
        hidden, state = self._encode(tokens, state)
        if self.decoder is not None:
            # Every position at once: ignore_index gives the 0s. Selecting the real positions first
            # would copy the (B * T, vocab) logits and scatter their gradient back: more work, not less.
            logits = self.decoder(hidden).flatten(0, 1).float()
            nll = F.cross_entropy(logits, targets.flatten(), ignore_index=self.ignore_index, reduction="none")
            return -nll.view(targets.shape), hidden, state
        assert self.adaptive is not None
        real = targets != self.ignore_index  # the adaptive softmax needs every target to be a token
        log_probs = hidden.new_zeros(targets.shape, dtype=torch.float32)
        with float32(hidden):
            log_probs[real] = self.adaptive(hidden[real].float(), targets[real]).output
        return log_probs, hidden, state

    def _encode(self, tokens: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        batch, steps = tokens.shape
        lengths = torch.full((batch,), steps, dtype=torch.int64)  # on the host, as batches keep lengths
        encoded = self.encoder(self.dropout(self.embedding(tokens)), lengths, state)
        return self.dropout(encoded.outputs), encoded.state


def float32(hidden: torch.Tensor) -> torch.autocast:
    """The adaptive softmax computes in float32 under mixed precision: its clusters' log-softmaxes are
    copied into one float32 output, and autocast would hand it lower-precision ones."""
    return torch.autocast(hidden.device.type, enabled=False)


def draw(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """One token per row of (N, vocab) logits, from the `top_k` most likely, sharpened
    (temperature < 1) or flattened (> 1). top_k=1 is greedy decoding."""
    values, indices = logits.float().cpu().topk(min(top_k, logits.shape[-1]), dim=-1)
    probabilities = torch.softmax(values / temperature, dim=-1)
    choice = torch.multinomial(probabilities, 1, generator=generator)
    return indices.gather(-1, choice).squeeze(-1)


@torch.no_grad()
def sample(
    model: LanguageModel,
    context: list[int],
    length: int,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 10,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
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
