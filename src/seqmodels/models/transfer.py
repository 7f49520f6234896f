"""A model's weights by role, for starting one run from another (`model.init_from`) and for ULMFiT's
layer groups (`optim.layer_lr_decay`, `trainer.unfreeze`).

Every model here is word vectors -> a recurrent encoder -> a task's head, so its weights fall into parts
that mean the same thing in any task:

    word vectors        the word embedding; its rows follow the vocabulary, so they are remapped
                        word by word between two runs' vocabularies
    layer N forward     the encoder's layer N, each direction (`RecurrentEncoder.layer_weights`)
    layer N backward
    head                everything else (the classifier, the tagger's emissions, CRF and character
                        CNN, the language model's output layer, the decoder): it means something
                        only with the same task and data, so it is copied only from a run whose
                        prepared data (vocabulary, labels) are the same

A language model that read its text backwards (`data.reverse=true`) holds a backward direction in its
forward layers: its parts are relabelled as backward ones before matching, so a forward and a backward
language model together start both directions of a bidirectional encoder.

The layer groups are the same parts from the bottom up: word vectors, each encoder layer (both
directions), the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from seqmodels.errors import ConfigError
from seqmodels.models.embedding import WordEmbedding
from seqmodels.models.encoder import RecurrentEncoder

WORD_VECTORS = "word vectors"
HEAD = "head"
# tokens that are no word: never counted as shared; <pad> stays zero
SPECIALS = frozenset({"<pad>", "<unk>", "<eos>", "<s>", "</s>", "<bos>"})
MIN_SHARED = 0.10  # a remap that finds fewer of the words refuses: the vectors would be mostly noise


@dataclass
class Part:
    role: str
    group: int  # layer group from the bottom: 0 word vectors, N encoder layer N; the head is above them all
    tensors: dict[str, torch.Tensor]  # parameters (and buffers) by name within the part, written in place
    source_rows: torch.Tensor | None = None  # word vectors: every id's row, pretrained words beyond included


def _embedding_and_encoder(model: nn.Module) -> tuple[nn.Embedding | None, RecurrentEncoder | None]:
    """The word embedding and encoder of any model here (a translation model's source side)."""
    embedding = getattr(model, "embedding", None)
    if embedding is None:
        embedding = getattr(model, "source_embedding", None)
    encoder = getattr(model, "encoder", None)
    return (
        embedding if isinstance(embedding, nn.Embedding) else None,
        encoder if isinstance(encoder, RecurrentEncoder) else None,
    )


def parts(model: nn.Module, reading: str = "forward") -> list[Part]:
    """The model's parts by role. `reading="backward"`: the model read its texts backwards, so its
    forward layers are relabelled backward ones."""
    embedding, encoder = _embedding_and_encoder(model)
    found: list[Part] = []
    if embedding is not None:
        rows = embedding.weight
        if isinstance(embedding, WordEmbedding) and embedding.frozen is not None:
            rows = torch.cat([embedding.weight, embedding.frozen])
        found.append(Part(WORD_VECTORS, 0, {"weight": embedding.weight}, rows))
    if encoder is not None:
        for (layer, direction), weights in sorted(encoder.layer_weights().items()):
            if reading == "backward":
                direction = {"forward": "backward", "backward": "forward"}[direction]
            found.append(Part(f"layer {layer} {direction}", layer, dict(weights)))
    described = {id(t) for part in found for t in part.tensors.values()}
    head = {name: t for name, t in model.state_dict(keep_vars=True).items() if id(t) not in described}
    if embedding is not None and isinstance(embedding, WordEmbedding) and embedding.frozen is not None:
        head = {name: t for name, t in head.items() if t is not embedding.frozen}
    if head:
        top = 1 + (encoder.num_layers if encoder is not None else 0)
        found.append(Part(HEAD, top, head))
    return found


@dataclass(frozen=True)
class LayerGroup:
    name: str
    parameters: list[nn.Parameter]


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's parameters in layer groups from the bottom up: word vectors, each encoder layer
    (both directions), the head (every other parameter). Each parameter is in exactly one group."""
    described = parts(model)
    top = max((part.group for part in described), default=0)
    by_group: dict[int, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for part in described:
        for tensor in part.tensors.values():
            if isinstance(tensor, nn.Parameter) and id(tensor) not in seen:
                seen.add(id(tensor))
                by_group.setdefault(part.group, []).append(tensor)
    for parameter in model.parameters():  # none in practice: the head holds every other weight
        if id(parameter) not in seen:
            by_group.setdefault(top, []).append(parameter)
    names = {
        part.group: part.role if part.group in (0, top) and part.role in (WORD_VECTORS, HEAD) else ""
        for part in described
    }
    return [LayerGroup(names.get(group) or f"layer {group}", by_group[group]) for group in sorted(by_group)]


# -- transfer ---------------------------------------------------------------------------------------
@dataclass
class Source:
    """A trained model to start from: its parts (relabelled by how it read), its vocabulary."""

    name: str  # how the table names it (the path the user gave)
    model: nn.Module
    words: Sequence[str] | None  # the vocabulary by id; None: no word vectors to remap
    reading: str = "forward"
    same_data: bool = False  # its task and prepared data are this run's: the head may be copied too
    settings: dict[str, object] = field(default_factory=dict)  # model.* keys, to name what differs


@dataclass
class Row:
    role: str
    shape: str
    outcome: str  # "copied", "remapped", "new"
    detail: str = ""


@dataclass
class TransferReport:
    rows: list[Row]

    def count(self, outcome: str) -> int:
        return sum(row.outcome == outcome for row in self.rows)

    def table(self) -> str:
        width = max(len(row.role) for row in self.rows)
        shape_width = max(len(row.shape) for row in self.rows)
        lines = [f"  {'part'.ljust(width)}  {'shape'.ljust(shape_width)}  weights"]
        for row in self.rows:
            detail = f" ({row.detail})" if row.detail else ""
            lines.append(f"  {row.role.ljust(width)}  {row.shape.ljust(shape_width)}  {row.outcome}{detail}")
        return "\n".join(lines)


def _shape(tensors: dict[str, torch.Tensor]) -> str:
    if len(tensors) == 1:
        return " x ".join(f"{n:,}" for n in next(iter(tensors.values())).shape)
    return f"{sum(t.numel() for t in tensors.values()):,} weights"


def remap(target: Sequence[str], source: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(target ids, source ids) of the words both vocabularies hold, found as they are or, failing
    that, lowercased in the source; and how many of the target's words (specials aside) were found
    and could have been."""
    index = {word: i for i, word in enumerate(source)}
    lowered: dict[str, int] = {}
    for word, i in index.items():
        lowered.setdefault(word.lower(), i)
    targets, sources = [], []
    words = found = 0
    for i, word in enumerate(target):
        if word == "<pad>":
            continue  # stays zero
        j = index.get(word)
        if j is None:
            j = lowered.get(word.lower())
        if word not in SPECIALS:
            words += 1
            found += j is not None
        if j is not None:
            targets.append(i)
            sources.append(j)
    return torch.tensor(targets, dtype=torch.int64), torch.tensor(sources, dtype=torch.int64), found, words


ENCODER_KEYS = ("cell", "hidden_size", "embedding_dim", "num_layers", "bidirectional")


def differences(mine: dict[str, object], theirs: dict[str, object], keys: Sequence[str]) -> str:
    """`cell gru here, lstm there; hidden_size 128 here, 256 there`: the keys whose values differ."""
    return "; ".join(
        f"model.{key} {mine.get(key)} here, {theirs.get(key)} there" for key in keys if mine.get(key) != theirs.get(key)
    )


@torch.no_grad()
def transfer(
    model: nn.Module, words: Sequence[str] | None, settings: dict[str, object], sources: Sequence[Source]
) -> TransferReport:
    """Copy into `model` (whose model.* keys are `settings`) every weight of `sources` that matches by
    role and shape; returns what was copied, remapped and left new. Raises ConfigError (one line) when
    the transfer would be useless."""
    mine = parts(model)
    roles = {part.role for part in mine}
    for source in sources:
        differ = differences(settings, source.settings, ("cell", "hidden_size"))
        if differ:
            raise ConfigError(
                f"model.init_from={source.name} cannot start this model's encoder ({differ}): give this run "
                f"the model.cell and model.hidden_size of that one"
            )
        if source.reading == "backward" and not any(role.endswith(" backward") for role in roles):
            raise ConfigError(
                f"model.init_from={source.name} is a backward language model (data.reverse=true): it can start "
                f"only the backward direction of a bidirectional encoder; set model.bidirectional=true"
            )
    offered = [(source, {part.role: part for part in parts(source.model, source.reading)}) for source in sources]
    rows: list[Row] = []
    for part in mine:
        outcome, detail, given_by = "new", "", ""
        reasons: list[str] = []
        for source, theirs in offered:
            other = theirs.get(part.role)
            if other is None:
                continue
            if given_by:
                if part.role != WORD_VECTORS:  # both sources would write the same layer
                    raise ConfigError(
                        f"model.init_from gives {part.role} twice ({given_by} and {source.name}): give one "
                        f"forward and one backward (data.reverse=true) language model"
                    )
                continue  # the first source's word vectors are kept
            if part.role == WORD_VECTORS:
                remapped = _remap_rows(part, other, words, source)
                if remapped is None:
                    reasons.append(_mismatch(part, other))
                    continue
                outcome, detail = "remapped", remapped
            elif part.role == HEAD:
                if not source.same_data:
                    reasons.append("copied only from a run of the same task and data")
                    continue
                copied = _copy_matching(part.tensors, other.tensors)
                if not copied:
                    reasons.append(_mismatch(part, other))
                    continue
                outcome = "copied"
                if copied < len(part.tensors):
                    detail = f"{copied} of {len(part.tensors)} tensors; the others differ in shape"
            else:
                shapes = {name: t.shape for name, t in other.tensors.items()}
                if any(shapes.get(name) != t.shape for name, t in part.tensors.items()):
                    reasons.append(_mismatch(part, other))
                    continue
                for name, t in part.tensors.items():
                    t.copy_(other.tensors[name])
                outcome = "copied"
            given_by = source.name
        if given_by and len(sources) > 1:
            detail = "; ".join(filter(None, [f"from {given_by}", detail]))
        if outcome == "new":
            direction = part.role.rsplit(" ", 1)[-1]
            missing = f"no {direction} source" if direction in ("forward", "backward") else "not in the source"
            detail = "; ".join(dict.fromkeys(reasons)) or missing
        rows.append(Row(part.role, _shape(part.tensors), outcome, detail))
    report = TransferReport(rows)
    if not report.count("copied") and not report.count("remapped"):
        names = ", ".join(source.name for source in sources)
        raise ConfigError(
            f"model.init_from={names}: nothing there matches this model by role and shape "
            f"({'; '.join(f'{row.role}: {row.detail}' for row in rows)})"
        )
    return report


def _mismatch(part: Part, other: Part) -> str:
    mine = {name: tuple(t.shape) for name, t in part.tensors.items()}
    theirs = {name: tuple(t.shape) for name, t in other.tensors.items()}
    for name, shape in mine.items():
        if theirs.get(name) != shape:
            return f"{name} {shape} here, {theirs.get(name)} there"
    return "shapes differ"


def _copy_matching(mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> int:
    copied = 0
    for name, tensor in mine.items():
        other = theirs.get(name)
        if other is not None and other.shape == tensor.shape:
            tensor.copy_(other)
            copied += 1
    return copied


def _remap_rows(part: Part, other: Part, words: Sequence[str] | None, source: Source) -> str | None:
    """Word vectors of `other` into `part`, row by row by word, and how many words were found; None if
    their dimensions differ."""
    weight = part.tensors["weight"]
    rows = other.source_rows if other.source_rows is not None else other.tensors["weight"]
    if rows.shape[1] != weight.shape[1]:
        return None
    if words is None or source.words is None:
        raise ConfigError(
            f"model.init_from={source.name}: word vectors cannot be matched without both runs' vocabularies"
        )
    mine = list(words)[: weight.shape[0]]  # trainable rows only; pretrained words beyond stay frozen as they are
    target_ids, source_ids, found, total = remap(mine, source.words)
    share = found / max(total, 1)
    if share < MIN_SHARED:
        raise ConfigError(
            f"model.init_from={source.name}: only {found:,} of this run's {total:,} words ({share:.1%}) are in its "
            f"vocabulary, below {MIN_SHARED:.0%}: its word vectors would be mostly noise (another language or "
            f"tokenization?); start from a run trained on similar text"
        )
    weight[target_ids] = rows[source_ids].to(weight.dtype)
    return f"{found:,} of {total:,} words found ({share:.1%}); {total - found:,} new"
