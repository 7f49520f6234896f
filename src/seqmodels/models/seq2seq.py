"""Many-to-many of different lengths: an encoder-decoder with attention (machine translation).

    source ids -> embedding -> RecurrentEncoder (any cell, depth, direction) -> memory H (B, S, M)
    target: <s> y1 .. yn -> embedding -> recurrent decoder reading H -> readout -> logits over the vocabulary

What the decoder reads of the source, `model.attention`:

- `bahdanau` (Bahdanau et al. 2015): before each step, additive attention v^T tanh(W s_{t-1} + U h_j)
  of the previous decoder state over the source; the context c_t is part of the step's input.
- `luong` (Luong et al. 2015): after each step, the new state s_t scores the source (`general`:
  s_t^T W h_j, `dot`: s_t^T h_j), and the attentional vector tanh(W_c [s_t; c_t]) is the readout; with
  input feeding it is also part of the next step's input. Without input feeding nothing flows back
  from one step's attention to the next step, so the decoder RNN runs over the whole target at once.
- `none`: no attention. With `model.context` (Cho et al. 2014) the encoder's final summary is an
  input at every step and at the readout; without it (Sutskever et al. 2014, best with
  `model.reverse_source`) it only sets the decoder's initial state.

The decoder's initial state is tanh(W h_final) of the encoder's final state (any sizes). Padding
positions of the source get no attention weight, so a sentence's translation does not depend on
the others in its batch. The readout tanh(W [s_t; c_t; e(y_{t-1})]) (luong: [s_t; c_t]) is
`embedding_dim` wide when the output layer shares the target embedding (`model.tie_embeddings`),
else the decoder's size.

Decoding (greedy, beam search: `models.search`) runs the same `step` that teacher forcing runs, so
a decoded sentence scores exactly as the same sentence read with teacher forcing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqmodels.errors import ConfigError
from seqmodels.models.encoder import CELLS, EncoderConfig, RecurrentEncoder, length_mask, reverse_within_lengths
from seqmodels.schema import setting

ATTENTIONS = ("none", "bahdanau", "luong")
SCORES = ("general", "dot")

# Each decoder layer's state, each tensor (1, B, H): (h,) for RNN and GRU, (h, c) for LSTM.
LayerState = tuple[torch.Tensor, ...]


@dataclass
class Seq2SeqConfig(EncoderConfig):
    """`model.*` of translation: the encoder's keys, the decoder and its attention, the training objective."""

    attention: str = setting("bahdanau", "none | bahdanau (additive) | luong (multiplicative)", choices=ATTENTIONS)
    luong_score: str = setting(
        "general",
        "luong: s^T W h (general) | s^T h (dot: needs the decoder's size == the encoder's output size)",
        choices=SCORES,
    )
    attention_dim: int | None = setting(
        None, "bahdanau: size of the additive attention's hidden layer; null: the decoder's size", minimum=1
    )
    input_feeding: bool = setting(
        True,
        "luong: the previous attentional vector is part of the next step's input; "
        "false: the decoder runs over the whole target at once (faster)",
    )
    context: bool = setting(
        True,
        "attention=none: the encoder's summary is an input at every step (Cho et al. "
        "2014); false: it only starts the decoder (Sutskever et al. 2014)",
    )
    reverse_source: bool = setting(False, "read each source sentence backwards (Sutskever et al. 2014)")
    decoder_hidden_size: int | None = setting(
        None,
        "the decoder's state size; null: the encoder's output size (2 x hidden_size when bidirectional)",
        minimum=1,
    )
    tie_embeddings: bool = setting(False, "the output layer shares the target embedding's weights")
    teacher_forcing: float = setting(
        1.0,
        "share of training steps that read the reference's previous token; the others read the model's own prediction",
        minimum=0.0,
        maximum=1.0,
        high_open=False,
    )
    label_smoothing: float = setting(
        0.1,
        "training loss: this share of each target's probability spread over the vocabulary",
        minimum=0.0,
        maximum=1.0,
    )

    @property
    def encoder_output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def decoder_size(self) -> int:
        return self.decoder_hidden_size or self.encoder_output_size

    def check(self) -> None:
        super().check()
        if getattr(self, "pretrained_vectors", None):
            raise ConfigError(
                "model.pretrained_vectors: translation reads subword pieces, which word vectors do not "
                "cover; leave it null"
            )
        if self.attention == "luong" and self.luong_score == "dot" and self.decoder_size != self.encoder_output_size:
            raise ConfigError(
                f"model.luong_score=dot needs the decoder's size ({self.decoder_size}) to equal the "
                f"encoder's output size ({self.encoder_output_size}); set "
                f"model.decoder_hidden_size=null or model.luong_score=general"
            )

    def build(self, source_vocab_size: int, target_vocab_size: int, *, bos_id: int, eos_id: int) -> Seq2Seq:
        """`bos_id` starts every decoder input, `eos_id` ends every translation (id 0 is padding)."""
        self.check()
        return Seq2Seq(self, source_vocab_size, target_vocab_size, bos_id=bos_id, eos_id=eos_id)

    def describe(self) -> str:
        if self.attention == "luong":
            reads = f"luong {self.luong_score}{' + input feeding' if self.input_feeding else ''}"
        elif self.attention == "none":
            reads = "no attention, " + ("context every step" if self.context else "initial state only")
        else:
            reads = "bahdanau"
        extras = [reads, f"decoder {self.decoder_size}"]
        extras += ["reversed source"] * self.reverse_source + ["tied output"] * self.tie_embeddings
        return ", ".join([super().describe(), *extras])


@dataclass(frozen=True)
class Memory:
    """What the decoder reads of a batch of encoded source sentences (rows may repeat, e.g. per beam)."""

    outputs: torch.Tensor  # (B, S, M) the encoder's top layer at every source position, in source order
    mask: torch.Tensor  # (B, S) True at real positions
    keys: torch.Tensor | None  # (B, S, A or H) the attention's keys, computed once per sentence
    summary: torch.Tensor  # (B, M) the encoder's final state

    def select(self, index: torch.Tensor) -> Memory:
        return Memory(
            self.outputs[index], self.mask[index], None if self.keys is None else self.keys[index], self.summary[index]
        )


@dataclass(frozen=True)
class DecoderState:
    layers: tuple[LayerState, ...]
    feed: torch.Tensor | None  # (B, 1, R) the previous attentional vector (luong with input feeding)

    def select(self, index: torch.Tensor) -> DecoderState:
        layers = tuple(tuple(t[:, index] for t in layer) for layer in self.layers)
        return DecoderState(layers, None if self.feed is None else self.feed[index])


class Attention(nn.Module):
    """What the decoder asks of an attention: keys once per sentence, then weights and context per step."""

    def keys(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, S, M) encoder outputs -> (B, S, A) keys, computed once per sentence."""
        raise NotImplementedError

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Q) -> context (B, T, M), weights (B, T, S)."""
        raise NotImplementedError


class AdditiveAttention(Attention):
    """Bahdanau: score(s, h_j) = v^T tanh(W s + U h_j); U h_j is computed once per sentence (`keys`)."""

    def __init__(self, query_size: int, memory_size: int, dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(memory_size, dim, bias=False)
        self.query = nn.Linear(query_size, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def keys(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.key(outputs)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Q) -> context (B, T, M), weights (B, T, S)."""
        assert memory.keys is not None
        hidden = torch.tanh(memory.keys.unsqueeze(1) + self.query(query).unsqueeze(2))  # (B, T, S, A)
        return _attend(self.score(hidden).squeeze(-1), memory)


class MultiplicativeAttention(Attention):
    """Luong: score(s, h_j) = s^T W h_j (general; W h_j computed once per sentence) or s^T h_j (dot)."""

    def __init__(self, query_size: int, memory_size: int, score: str) -> None:
        super().__init__()
        self.project = nn.Linear(memory_size, query_size, bias=False) if score == "general" else None

    def keys(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.project is None else self.project(outputs)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        assert memory.keys is not None
        return _attend(query @ memory.keys.transpose(1, 2), memory)


def _attend(scores: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of (B, T, S) scores over the real source positions; the weighted mean of the memory."""
    weights = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf")).softmax(dim=-1)
    return weights @ memory.outputs, weights


class Seq2Seq(nn.Module):
    def __init__(
        self,
        config: Seq2SeqConfig,
        source_vocab_size: int,
        target_vocab_size: int,
        bos_id: int,
        eos_id: int,
        padding_idx: int = 0,
    ) -> None:
        """The model `config` (`model.*`) describes, between these vocabularies."""
        super().__init__()
        attention, embedding_dim = config.attention, config.embedding_dim
        num_layers, cell = config.num_layers, config.cell
        self.kind = attention
        self.bos_id, self.eos_id, self.padding_idx = bos_id, eos_id, padding_idx  # what decoding needs to know
        self.input_feeding = attention == "luong" and config.input_feeding
        self.context = attention == "bahdanau" or (attention == "none" and config.context)  # c_t in the step's input
        self.reverse_source = config.reverse_source
        self.teacher_forcing = config.teacher_forcing
        self.dropout = nn.Dropout(config.dropout)
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.encoder = RecurrentEncoder(input_size=embedding_dim, **config.encoder_kwargs())
        memory_size = self.encoder.output_size
        size = config.decoder_size
        self.decoder_size, self.num_layers, self.cell = size, num_layers, cell
        self.bridge = nn.Linear(memory_size, num_layers * size)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, padding_idx=padding_idx)
        if attention == "bahdanau":
            self.attention: Attention | None = AdditiveAttention(size, memory_size, config.attention_dim or size)
        elif attention == "luong":
            if config.luong_score == "dot" and size != memory_size:
                raise ValueError(f"dot attention needs decoder size {size} == encoder output size {memory_size}")
            self.attention = MultiplicativeAttention(size, memory_size, config.luong_score)
        else:
            self.attention = None
        readout_size = embedding_dim if config.tie_embeddings else size
        first_input = embedding_dim + (memory_size if self.context else 0) + (readout_size if self.input_feeding else 0)
        rnn_class: Any = CELLS[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        # one single-layer torch RNN per layer (as in the encoder), dropout between them
        self.decoder_layers = nn.ModuleList(
            rnn_class(first_input if layer == 0 else size, size, batch_first=True, **extra)
            for layer in range(num_layers)
        )
        if attention == "luong":
            readout_input = size + memory_size
        else:
            readout_input = size + embedding_dim + (memory_size if self.context else 0)
        self.readout = nn.Linear(readout_input, readout_size)
        self.output = nn.Linear(readout_size, target_vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.target_embedding.weight

    # -- the pieces decoding uses ------------------------------------------------------------
    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Memory:
        """source: (B, S) right-padded ids; lengths: (B,)."""
        if self.reverse_source:
            source = reverse_within_lengths(source, lengths)
        encoded = self.encoder(self.dropout(self.source_embedding(source)), lengths)
        outputs = encoded.outputs
        if self.reverse_source:  # attention sees positions in source order; a weighted mean ignores the order
            outputs = reverse_within_lengths(outputs, lengths)
        mask = length_mask(lengths.to(outputs.device, non_blocking=True), outputs.shape[1])
        keys = None if self.attention is None else self.attention.keys(outputs)
        return Memory(outputs, mask, keys, encoded.final)

    def initial_state(self, memory: Memory) -> DecoderState:
        batch = memory.summary.shape[0]
        h = torch.tanh(self.bridge(memory.summary)).view(batch, self.num_layers, self.decoder_size)
        h = h.transpose(0, 1).contiguous()  # (layers, B, H)
        layers = tuple(
            (h[i : i + 1], torch.zeros_like(h[i : i + 1])) if self.cell == "lstm" else (h[i : i + 1],)
            for i in range(self.num_layers)
        )
        feed = None
        if self.input_feeding:
            feed = memory.outputs.new_zeros(batch, 1, self.readout.out_features)
        return DecoderState(layers, feed)

    def step(
        self, memory: Memory, state: DecoderState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One decoding step: tokens (B,) the previous outputs -> log-probabilities (B, V) of the next,
        the new state, and the attention weights (B, S) (None without attention)."""
        readout, state, weights = self._run(memory, state, self.dropout(self.target_embedding(tokens.unsqueeze(1))))
        log_probs = self.output(readout.squeeze(1)).float().log_softmax(-1)
        return log_probs, state, None if weights is None else weights.squeeze(1)

    # -- teacher forcing ----------------------------------------------------------------------
    def forward(
        self,
        source: torch.Tensor,
        source_lengths: torch.Tensor,
        target_in: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of every next target token: target_in (B, T) is <s> y1 .. y(n-1), padded. With
        `positions` (N,), the flat (row-major) indices of the real positions, the logits of those only,
        (N, V) (the output layer, the largest, skips the padding); else (B, T, V). Indices rather than a
        mask: selecting by a mask would wait for the device to count its positions."""
        readout, _ = self.decode(self.encode(source, source_lengths), target_in)
        if positions is not None:
            readout = readout.flatten(0, 1)[positions]
        return self.output(readout)

    def decode(self, memory: Memory, target_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The readout (B, T, R) of every target step and the attention weights (B, T, S)."""
        embedded = self.dropout(self.target_embedding(target_in))
        state = self.initial_state(memory)
        sampling = self.training and self.teacher_forcing < 1.0
        if not (self.kind == "bahdanau" or self.input_feeding or sampling):
            readout, _, weights = self._run(memory, state, embedded)  # nothing flows back: all steps at once
            return readout, weights
        readouts: list[torch.Tensor] = []
        all_weights: list[torch.Tensor | None] = []
        for t in range(target_in.shape[1]):
            step_input = embedded[:, t : t + 1]
            if sampling and t > 0:
                predicted = self.output(readouts[-1].squeeze(1)).argmax(-1).unsqueeze(1)
                own = torch.rand(predicted.shape, device=predicted.device) >= self.teacher_forcing
                step_input = torch.where(own.unsqueeze(-1), self.dropout(self.target_embedding(predicted)), step_input)
            readout, state, weights = self._run(memory, state, step_input)
            readouts.append(readout)
            all_weights.append(weights)
        weights = None if all_weights[0] is None else torch.cat([w for w in all_weights if w is not None], dim=1)
        return torch.cat(readouts, dim=1), weights

    def _run(
        self, memory: Memory, state: DecoderState, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """T decoder steps on embedded inputs (B, T, E): T == 1 whenever a step needs the previous one's
        attention (bahdanau, input feeding). Returns the readout (B, T, R), the state, weights (B, T, S)."""
        steps = embedded.shape[1]
        weights = context = None
        if self.kind == "bahdanau":
            assert self.attention is not None
            context, weights = self.attention(state.layers[-1][0].transpose(0, 1), memory)  # query: s_{t-1}
        elif self.kind == "none" and self.context:
            context = memory.summary.unsqueeze(1).expand(-1, steps, -1)
        parts = [embedded] + ([context] if context is not None else []) + ([state.feed] if self.input_feeding else [])
        x = torch.cat(parts, dim=-1) if len(parts) > 1 else embedded
        layers = []
        for index, (rnn, layer_state) in enumerate(zip(self.decoder_layers, state.layers)):
            if index > 0:
                x = self.dropout(x)
            x, new_state = rnn(x, layer_state if self.cell == "lstm" else layer_state[0])
            layers.append(new_state if isinstance(new_state, tuple) else (new_state,))
        if self.kind == "luong":
            assert self.attention is not None
            context, weights = self.attention(x, memory)
            features = torch.cat([x, context], dim=-1)
        else:
            features = torch.cat([x, embedded] + ([context] if context is not None else []), dim=-1)
        readout = self.dropout(torch.tanh(self.readout(features)))
        return readout, DecoderState(tuple(layers), readout if self.input_feeding else None), weights


def repeat_rows(memory: Memory, times: int) -> Memory:
    """Each sentence's memory `times` times in a row (one per beam)."""
    index = torch.arange(memory.outputs.shape[0], device=memory.outputs.device).repeat_interleave(times)
    return memory.select(index)
