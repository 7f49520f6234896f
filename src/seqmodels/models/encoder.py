"""The recurrent encoder: simple RNN (tanh), GRU or LSTM; stacked; uni- or bidirectional.

Batches arrive right-padded and are run *dense*: on a CPU, `pack_padded_sequence` trains slower than
a padded, bucketed batch wherever lengths vary (docs/performance.md measures it per task), and
bucketing leaves little padding to waste. Dense running is exact for the forward direction, because
trailing padding comes after every real token. The backward direction would start in the
padding, so each sequence is reversed *within its own length* before the backward RNN
and reversed back afterwards: it then starts at the sequence's last real token and a
sequence's outputs never depend on the padding around it.

Each layer and direction is its own single-layer torch RNN so that bidirectional layers
can be stacked with this reversal between them; the parameters per layer and direction
are exactly those of the textbook formulas (see `models.summary`).

A unidirectional encoder also takes and returns each layer's recurrent state, so a
language model can carry it from one window of a long text into the next (truncated
backpropagation through time). A backward direction has no such state: it would have to
start from the future.

For the gradient-flow measurement (`training.gradient_flow`), an encoder can record its top
layer's hidden states: set `record_steps` to n and the next forward pass runs the last n
steps of each sequence (and a little more, for batches of mixed length) one step at a time,
keeping each step's state tensor `h_t` in `recorded`, so that autograd gives the full
gradient dL/dh_t, through the output at t and through every later step. (The output tensor
of a fused torch RNN only receives the gradient of its direct use at t, never the gradient
that flows back from step t+1.) The results are the same; it is only slower, so it is off
unless a measurement turns it on.

`impl` chooses how the stack runs, never what it computes or what it stores:
- `dense`: the per-layer run above, the fast one on a CPU;
- `packed`: the whole stack (all layers, both directions) as one multi-layer torch RNN over
  `pack_padded_sequence`, which cuDNN runs as one fused call on a GPU. That RNN is built over the
  *same* parameter objects as the per-layer modules and is not registered as a submodule, so the
  state dict, the parameter table and `layer_weights()` are the same for both and a run trained one
  way loads and continues the other way;
- `auto`: packed on CUDA, dense elsewhere, decided at each call by the input's device.
Both give the same outputs (at real positions; the packed run leaves zeros at padding) and
gradients. Recording for the gradient-flow measurement, and ONNX export, always run dense.

Under mixed precision the layers run in whatever precision autocast gives them, or in float32 where
their kernel refuses it (`models.precision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.errors import ConfigError
from seqmodels.models.embedding import PretrainedRows, WordEmbedding
from seqmodels.models.precision import recurrent_precision
from seqmodels.models.recording import RecordedStates
from seqmodels.schema import Section, setting

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
IMPLEMENTATIONS = ("auto", "dense", "packed")


@dataclass
class EncoderConfig(Section):
    """`model.*` keys every task's model shares: the token embedding and the recurrent encoder.
    A task's model section extends this with the keys of its head (see `models.classifier`,
    `models.tagger`, `models.language_model`)."""

    cell: str = setting("lstm", "rnn (Elman, tanh) | gru | lstm", choices=tuple(CELLS), hint=" (e.g. model=lstm)")
    embedding_dim: int = setting(128, "size of each token's vector", minimum=1)
    hidden_size: int = setting(128, "size of each direction's hidden state", minimum=1)
    num_layers: int = setting(1, "stacked recurrent layers (a deep RNN)", minimum=1)
    bidirectional: bool = setting(False, "a second RNN per layer reads each sequence backwards")
    dropout: float = setting(0.3, "on embeddings, between stacked layers and before the head", minimum=0.0, maximum=1.0)
    rnn_impl: str = setting(
        "auto",
        "how the recurrent stack runs (same weights, same results): dense (per layer, fastest on a CPU) | "
        "packed (one fused torch RNN over packed sequences: cuDNN on a GPU) | auto (packed on CUDA, else dense)",
        choices=IMPLEMENTATIONS,
        execution=True,
    )
    pretrained_vectors: str | None = setting(
        None,
        "a word-vector file the word embedding starts from: GloVe text, "
        "word2vec/fastText text or word2vec binary, .gz as it is (e.g. "
        "${data.root}/glove/glove.6B.50d.txt.gz); a relative path is "
        "looked up in the working directory, then in data.root; null: "
        "random vectors",
    )
    freeze_vectors: bool = setting(False, "with pretrained_vectors: the word vectors stay as the file gives them")
    init_from: list[str] | None = setting(
        None,
        "a run directory (its best.pt) or checkpoint whose weights start this model where they match by role "
        "and shape: word vectors remapped word by word, encoder layers; [FWD,BWD]: a forward and a backward "
        "(data.reverse=true) language model for the two directions (docs/transfer.md); null: random weights",
        length=2,
        hint="use a run directory, a checkpoint, or [FORWARD_RUN,BACKWARD_RUN]",
    )
    unseen_word_vectors: int | None = setting(
        None,
        "with pretrained_vectors: the file's first N words (files list "
        "frequent words first) are kept, frozen, for words training never "
        "saw (not for language models); 0: none, such words are <unk>; "
        "null: all",
        minimum=0,
    )

    def check(self) -> None:
        if self.freeze_vectors and not self.pretrained_vectors:
            raise ConfigError("model.freeze_vectors=true needs model.pretrained_vectors=FILE (the vectors to keep)")

    def start_embedding(self, embedding: WordEmbedding, pretrained: PretrainedRows | None) -> None:
        """Every model's word embedding: from the pretrained rows (when training starts; a loaded run's
        weights replace them), and frozen with `freeze_vectors`."""
        if pretrained is not None:
            embedding.load_pretrained(pretrained)
        if self.freeze_vectors:
            embedding.weight.requires_grad_(False)

    def encoder_kwargs(self) -> dict[str, Any]:
        """The `RecurrentEncoder` arguments (all but its input size, which the head's features decide)."""
        return {
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "impl": self.rnn_impl,
        }

    def short_name(self) -> str:
        """The model in a few characters, e.g. `bilstm-2x256` (cell, layers x hidden size): the default
        run directory and TensorBoard's run name."""
        return f"{'bi' if self.bidirectional else ''}{self.cell}-{self.num_layers}x{self.hidden_size}"

    def describe(self) -> str:
        """One line for logs and tables, e.g. `biLSTM x2, emb 100, hidden 200`."""
        vectors = ""
        if self.pretrained_vectors:
            vectors = f" ({Path(self.pretrained_vectors).name}{', frozen' if self.freeze_vectors else ''})"
        return (
            f"{'bi' if self.bidirectional else ''}{self.cell.upper()} x{self.num_layers}, "
            f"emb {self.embedding_dim}{vectors}, hidden {self.hidden_size}, dropout {self.dropout:g}"
        )


# One layer's recurrent state, each tensor (1, B, hidden): (h,) for RNN and GRU, (h, c) for LSTM.
LayerState = tuple[torch.Tensor, ...]


def length_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps) True at the real positions of right-padded sequences."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a right-padded (B, T, ...) batch in its first `length` steps.

    Padding positions stay where they are. The operation is its own inverse.
    """
    batch, steps = x.shape[0], x.shape[1]
    positions = torch.arange(steps, device=x.device).expand(batch, steps)
    lengths = lengths.to(x.device, non_blocking=True).unsqueeze(1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    index = index.view(batch, steps, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


@dataclass(frozen=True)
class EncoderOutput:
    outputs: torch.Tensor  # (B, T, directions * hidden): every time step of the top layer
    final: torch.Tensor  # (B, directions * hidden): forward state at the last real token,
    # backward state at the first token (the end of the backward pass)
    # Unidirectional only (else None): each layer's state after the last time step (dense: padding
    # included; packed: each sequence's last real token), so it continues a sequence when the batch has
    # no padding, where both agree.
    state: tuple[LayerState, ...] | None = None


class RecurrentEncoder(nn.Module):
    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(CELLS)}")
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLEMENTATIONS}")
        self.impl = impl
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size
        rnn_class: Any = CELLS[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self.output_size
            self.forward_layers.append(rnn_class(layer_input, hidden_size, batch_first=True, **extra))
            if bidirectional:
                self.backward_layers.append(rnn_class(layer_input, hidden_size, batch_first=True, **extra))
        # Dropout between stacked layers (as nn.LSTM's `dropout` argument does).
        self.between_layers = nn.Dropout(dropout)
        # Opt-in, for measurements only (see the module docstring): record at least this many final steps.
        self.record_steps: int | None = None
        self.recorded: list[RecordedStates] = []
        # The packed implementation's multi-layer RNN over these same parameters, built at its first
        # use; in a tuple so that nn.Module does not register it (its parameters would be listed twice).
        self._packed: tuple[nn.RNNBase, ...] = ()

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: tuple[LayerState, ...] | None = None
    ) -> EncoderOutput:
        """x: (B, T, input_size) right-padded; lengths: (B,) real lengths, all >= 1; state: the
        `EncoderOutput.state` of the previous window to continue from (unidirectional only),
        None to start from zeros."""
        if state is not None and self.bidirectional:
            raise ValueError(
                "a bidirectional encoder cannot continue from a state: its backward direction "
                "starts at the end of the sequence"
            )
        device = x.device.type
        if torch.is_autocast_enabled(device):
            packed = self.runs_packed(x.device)
            if recurrent_precision(CELLS[self.cell], packed, x.device, torch.get_autocast_dtype(device)) is None:
                with torch.autocast(device, enabled=False):  # the layers refuse the precision: float32
                    floats = None if state is None else tuple(tuple(t.float() for t in layer) for layer in state)
                    return self._forward(x.float(), lengths, floats)
        return self._forward(x, lengths, state)

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor, state: tuple[LayerState, ...] | None) -> EncoderOutput:
        if self.runs_packed(x.device):
            return self._forward_packed(x, lengths, state)
        last_states: list[LayerState] = []
        self.recorded = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self.between_layers(x)
            initial: Any = None if state is None else state[layer]
            if initial is not None and self.cell != "lstm":
                initial = initial[0]  # GRU and RNN states are one tensor
            record = self.record_steps is not None and layer == self.num_layers - 1
            forward_out, last = self._run(self.forward_layers[layer], x, initial, lengths, record, "forward")
            last_states.append(last if isinstance(last, tuple) else (last,))
            if self.bidirectional:
                reversed_out, _ = self._run(
                    self.backward_layers[layer], reverse_within_lengths(x, lengths), None, lengths, record, "backward"
                )
                x = torch.cat([forward_out, reverse_within_lengths(reversed_out, lengths)], dim=-1)
            else:
                x = forward_out
        return EncoderOutput(
            outputs=x, final=self._final_states(x, lengths), state=None if self.bidirectional else tuple(last_states)
        )

    def runs_packed(self, device: torch.device) -> bool:
        """Whether a call on `device` runs the fused, packed stack (see the module docstring)."""
        if self.record_steps is not None or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return False
        return self.impl == "packed" or (self.impl == "auto" and device.type == "cuda")

    def packed_stack(self) -> nn.RNNBase:
        """One multi-layer torch RNN whose parameters are this encoder's own parameter objects: layer k's
        forward weights are its `weight_ih_l{k}`, the backward ones `weight_ih_l{k}_reverse`."""
        if not self._packed:
            rnn_class: Any = CELLS[self.cell]
            stack = rnn_class(
                self.input_size,
                self.hidden_size,
                num_layers=self.num_layers,
                bidirectional=self.bidirectional,
                batch_first=True,
                dropout=self.between_layers.p if self.num_layers > 1 else 0.0,  # torch refuses it for one layer
                device="meta",  # its own parameters are replaced at once
                **({"nonlinearity": "tanh"} if self.cell == "rnn" else {}),
            )
            for (layer, direction), weights in self.layer_weights().items():
                suffix = f"_l{layer - 1}" + ("_reverse" if direction == "backward" else "")
                for name, parameter in weights.items():
                    setattr(stack, name + suffix, parameter)  # RNNBase keeps its flat weight list in step
            self._packed = (stack,)
            self._flatten_packed()
        return self._packed[0]

    def _flatten_packed(self) -> None:
        # cuDNN reads a stack's weights fastest from one contiguous buffer; torch's RNN makes its
        # parameters views into one (on CUDA only; elsewhere this does nothing).
        if self._packed:
            self._packed[0].flatten_parameters()

    def _apply(self, fn, recurse=True):
        moved = super()._apply(fn, recurse)
        self._flatten_packed()  # the per-layer modules flattened their own weights apart
        return moved

    def _forward_packed(
        self, x: torch.Tensor, lengths: torch.Tensor, state: tuple[LayerState, ...] | None
    ) -> EncoderOutput:
        stack = self.packed_stack()
        stack.train(self.training)  # not a submodule, so model.train() / eval() do not reach it
        # Packing needs the lengths on the host, where batches keep them (so `.cpu()` copies nothing),
        # sorted longest first. The batch is sorted here rather than by torch (enforce_sorted=False),
        # whose copy of the order to the device and read of it back would each wait for the device.
        host = lengths.cpu()
        order = torch.argsort(host, descending=True, stable=True)
        identity = torch.equal(order, torch.arange(len(order)))  # e.g. a language model's equal windows
        to_sorted = None if identity else order.to(x.device, non_blocking=True)
        back = None if identity else torch.argsort(order).to(x.device, non_blocking=True)

        def arranged(t: torch.Tensor, dim: int, index: torch.Tensor | None) -> torch.Tensor:
            return t if index is None else t.index_select(dim, index)

        parts: tuple[torch.Tensor, ...] = ()
        if state is not None:  # each (layers, B, hidden)
            parts = tuple(arranged(torch.cat(layers, dim=0), 1, to_sorted) for layers in zip(*state))
        packed = pack_padded_sequence(arranged(x, 0, to_sorted), host[order], batch_first=True)
        out, last = stack(packed, None if state is None else parts if self.cell == "lstm" else parts[0])
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        outputs = arranged(outputs, 0, back)
        layer_states = None
        if not self.bidirectional:
            parts = tuple(arranged(part, 1, back) for part in (last if isinstance(last, tuple) else (last,)))
            layer_states = tuple(tuple(part[layer : layer + 1] for part in parts) for layer in range(self.num_layers))
        return EncoderOutput(outputs=outputs, final=self._final_states(outputs, lengths), state=layer_states)

    def _run(self, rnn: nn.Module, x: torch.Tensor, initial: Any, lengths: torch.Tensor, record: bool, direction: str):
        """One layer and direction: fused, or, when recording, fused up to the recorded steps and then
        one step at a time, each step's state being both that step's output and the next step's input."""
        if not record or self.record_steps is None:
            return rnn(x, initial)
        first = max(0, int(lengths.min()) - self.record_steps)
        outputs: list[torch.Tensor] = []
        state = initial
        if first > 0:
            head, state = rnn(x[:, :first], initial)
            outputs.append(head)
        states: list[torch.Tensor] = []
        for step in range(first, x.shape[1]):
            _, state = rnn(x[:, step : step + 1], state)
            h = state[0] if isinstance(state, tuple) else state  # (1, B, hidden)
            states.append(h)
            outputs.append(h.transpose(0, 1))
        self.recorded.append(RecordedStates(states, first, lengths.detach().cpu(), direction))
        return torch.cat(outputs, dim=1), state

    def layer_weights(self) -> dict[tuple[int, str], dict[str, nn.Parameter]]:
        """Each layer's and direction's weights, keyed (layer from 1, "forward" | "backward") and named as
        one torch RNN layer names them (weight_ih, weight_hh, bias_ih, bias_hh), however the layers are
        stored: what `models.transfer` copies between runs and what ULMFiT's layer groups hold."""
        found: dict[tuple[int, str], dict[str, nn.Parameter]] = {}
        for direction, layers in (("forward", self.forward_layers), ("backward", self.backward_layers)):
            for layer, rnn in enumerate(layers, 1):
                found[(layer, direction)] = {name.removesuffix("_l0"): p for name, p in rnn.named_parameters()}
        return found

    def _final_states(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last = (lengths.to(outputs.device, non_blocking=True) - 1).view(-1, 1, 1).expand(-1, 1, self.hidden_size)
        forward_final = outputs[..., : self.hidden_size].gather(1, last).squeeze(1)
        if not self.bidirectional:
            return forward_final
        backward_final = outputs[:, 0, self.hidden_size :]
        return torch.cat([forward_final, backward_final], dim=-1)
