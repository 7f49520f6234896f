"""The graphs `scripts/export.py` writes to ONNX: each model's inference, with plain tensors in and out.

- a classifier: token ids and lengths in, class probabilities out (multi-label: each label's own);
- a tagger: token ids, lengths (and character ids, word shapes when it reads them) in, emission
  scores out; the tags are a small step after it (`inference.onnx_decoding`: argmax, or Viterbi with the
  CRF's scores, which `decoding` hands to the JSON beside the graph);
- a language model's step: token ids and the recurrent state in, log-probabilities of the next
  token at every position and the new state out, so a runtime can read a prompt and then sample
  token by token.

Batch and length axes are dynamic. Padding is on the right and `lengths` says where each sequence
ends, so a bidirectional encoder's backward direction starts at each sequence's own last token in
the graph as it does in PyTorch (`encoder.reverse_within_lengths`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from seqmodels.models.language_model import LanguageModel
from seqmodels.models.tagger import SequenceTagger

# stand-in for -inf in JSON (which has no infinities): far below any sum of real scores
FORBIDDEN_SCORE = -1e9


@dataclass
class OnnxGraph:
    module: nn.Module  # in eval mode
    example_inputs: tuple[torch.Tensor, ...]  # a batch the exporter traces (rows of different lengths)
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    # what a runtime needs besides the graph (vocabulary, labels, decoding), written as JSON beside it
    sidecar: dict[str, Any] = field(default_factory=dict)


Model = TypeVar("Model", bound=nn.Module)


def _expect(model: nn.Module, kind: type[Model]) -> Model:
    if not isinstance(model, kind):
        raise TypeError(f"expected a {kind.__name__}, got a {type(model).__name__}")
    return model


def example_ids(num_words: int, lengths: list[int], padding_id: int = 0) -> torch.Tensor:
    """(B, T) right-padded ids that use the last id too (a pretrained word beyond the trained rows,
    where the embedding has them, so the traced graph keeps that lookup)."""
    rows = torch.zeros(len(lengths), max(lengths), dtype=torch.int64) + padding_id
    for row, length in enumerate(lengths):
        rows[row, :length] = torch.arange(length) % max(num_words - 2, 1) + 2
    rows[0, 0] = num_words - 1
    return rows


class ClassifierGraph(nn.Module):
    def __init__(self, model: nn.Module, multi_label: bool = False) -> None:
        super().__init__()
        self.model = model
        self.multi_label = multi_label
        self.eval()  # the exporter puts the wrapper back in its mode afterwards, and the model with it

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = self.model(tokens, lengths).float()
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)


def classifier_graph(model: nn.Module, num_words: int, multi_label: bool = False) -> OnnxGraph:
    """`multi_label`: each label's own probability (sigmoid), else one distribution over the labels (softmax)."""
    lengths = [5, 3]
    return OnnxGraph(
        ClassifierGraph(model, multi_label),
        (example_ids(num_words, lengths), torch.tensor(lengths)),
        ["tokens", "lengths"],
        ["probabilities"],
        {"tokens": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}, "probabilities": {0: "batch"}},
    )


class TaggerGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval()  # the exporter puts the wrapper back in its mode afterwards, and the model with it

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        chars = features[0] if self.model.chars is not None else None
        shapes = features[-1] if self.model.shapes is not None else None
        return self.model(tokens, lengths, chars, shapes).float()


def tagger_graph(model: nn.Module, num_words: int, num_chars: int, num_shapes: int) -> OnnxGraph:
    lengths = [5, 3]
    tokens = example_ids(num_words, lengths)
    inputs: list[torch.Tensor] = [tokens, torch.tensor(lengths)]
    names = ["tokens", "lengths"]
    axes: dict[str, dict[int, str]] = {"tokens": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}}
    real = tokens != 0
    if model.chars is not None:
        chars = torch.randint(1, num_chars, (*tokens.shape, 4)) * real.unsqueeze(-1)
        chars[..., 3] = 0  # words shorter than the longest
        inputs.append(chars)
        names.append("chars")
        axes["chars"] = {0: "batch", 1: "steps", 2: "characters"}
    if model.shapes is not None:
        inputs.append(torch.randint(1, num_shapes, tokens.shape) * real)
        names.append("shapes")
        axes["shapes"] = {0: "batch", 1: "steps"}
    axes["emissions"] = {0: "batch", 1: "steps"}
    return OnnxGraph(TaggerGraph(model), tuple(inputs), names, ["emissions"], axes)


def decoding(model: nn.Module) -> dict[str, Any]:
    """How a tagger's emissions become tags: `argmax`, or `viterbi` with transition, start and end
    scores (the CRF's, plus the scheme's forbidden moves, first and last tags at FORBIDDEN_SCORE with
    model.valid_tags);
    `log_softmax`: Viterbi runs over log-softmax emissions (valid tags without a CRF)."""
    model = _expect(model, SequenceTagger)
    transition_penalty, start_penalty = model.transition_penalty, model.start_penalty
    if model.crf is None and transition_penalty is None:
        return {"method": "argmax"}
    num_tags = model.head.out_features
    transitions: torch.Tensor
    if model.crf is not None:
        transitions, start, end = model.crf.transitions.detach(), model.crf.start.detach(), model.crf.end.detach()
    else:
        transitions, start, end = torch.zeros(num_tags, num_tags), torch.zeros(num_tags), torch.zeros(num_tags)
    if transition_penalty is not None and start_penalty is not None and model.end_penalty is not None:
        transitions, start = transitions + transition_penalty.cpu(), start + start_penalty.cpu()
        end = end + model.end_penalty.cpu()

    def plain(scores: torch.Tensor) -> list:
        return scores.float().clamp(min=FORBIDDEN_SCORE).tolist()

    return {
        "method": "viterbi",
        "log_softmax": model.crf is None,
        "transitions": plain(transitions.cpu()),
        "start": plain(start.cpu()),
        "end": plain(end.cpu()),
    }


class LanguageModelStepGraph(nn.Module):
    """(tokens, h[, c]) -> (log_probs, h[, c]); h and c stacked over layers: (layers, B, hidden)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval()  # the exporter puts the wrapper back in its mode afterwards, and the model with it

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        layers = state[0].shape[0]
        per_layer = tuple(tuple(part[layer : layer + 1] for part in state) for layer in range(layers))
        scores, new_state = self.model(tokens, per_layer)
        stacked = tuple(torch.cat([layer[part] for layer in new_state], dim=0) for part in range(len(state)))
        return (scores.float().log_softmax(-1), *stacked)


def language_model_step_graph(model: nn.Module, num_words: int) -> OnnxGraph:
    model = _expect(model, LanguageModel)
    encoder = model.encoder
    parts = ["h", "c"] if encoder.cell == "lstm" else ["h"]
    tokens = example_ids(num_words, [4, 4])
    state = tuple(torch.zeros(encoder.num_layers, 2, encoder.hidden_size) for _ in parts)
    axes: dict[str, dict[int, str]] = {"tokens": {0: "batch", 1: "steps"}, "log_probs": {0: "batch", 1: "steps"}}
    for part in parts:
        axes[part] = {1: "batch"}
        axes[f"{part}_out"] = {1: "batch"}
    return OnnxGraph(
        LanguageModelStepGraph(model),
        (tokens, *state),
        ["tokens", *parts],
        ["log_probs", *(f"{part}_out" for part in parts)],
        axes,
        {
            "state": {
                "inputs": parts,
                "shape": ["layers", "batch", "hidden"],
                "layers": encoder.num_layers,
                "hidden": encoder.hidden_size,
            }
        },
    )
