"""A per-layer parameter table whose counts are checked against the textbook formulas.

For input size d and hidden size h, one layer and direction holds
  RNN  1*(d*h + h*h + 2h),  GRU 3*(d*h + h*h + 2h),  LSTM 4*(d*h + h*h + 2h)
(PyTorch keeps two bias vectors, b_ih and b_hh, hence 2h rather than the notes' h).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from seqmodels.models.encoder import RecurrentEncoder

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def recurrent_formula(cell: str, d: int, h: int) -> tuple[str, int]:
    gates = GATES[cell]
    return f"{gates}*({d}*{h} + {h}*{h} + 2*{h})", gates * (d * h + h * h + 2 * h)


@dataclass(frozen=True)
class ParameterRow:
    name: str
    kind: str
    shape: str
    count: int
    formula: str = ""


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_rows(model: nn.Module) -> list[ParameterRow]:
    """One row per leaf layer; recurrent layers carry the formula their count must equal."""
    rows: list[ParameterRow] = []
    owners: dict[int, str] = {}  # parameter -> the first layer that holds it
    for name, module in model.named_modules():
        if isinstance(module, RecurrentEncoder) or list(module.children()) or not list(module.parameters()):
            continue
        shared = sorted({owners[id(p)] for p in module.parameters() if id(p) in owners})
        count = sum(p.numel() for p in module.parameters() if id(p) not in owners)
        for parameter in module.parameters():
            owners.setdefault(id(parameter), name)
        formula = ""
        if isinstance(module, nn.RNNBase):
            cell = {nn.RNN: "rnn", nn.GRU: "gru", nn.LSTM: "lstm"}[type(module)]
            formula, expected = recurrent_formula(cell, module.input_size, module.hidden_size)
            if expected != count:  # the table would be lying: fail loudly
                raise AssertionError(f"{name}: {count} parameters, formula says {expected}")
            shape = f"{module.input_size}->{module.hidden_size}"
        elif isinstance(module, nn.Embedding):
            shape = f"{module.num_embeddings}x{module.embedding_dim}"
            formula = f"{module.num_embeddings}*{module.embedding_dim}"
            if not module.weight.requires_grad:
                formula += ", not trained"
            beyond = getattr(module, "frozen", None)  # models.embedding: pretrained words, a buffer
            if beyond is not None:
                formula += f"; + {len(beyond):,}x{module.embedding_dim} pretrained words, frozen (a buffer)"
        elif isinstance(module, nn.Linear):
            shape = f"{module.in_features}->{module.out_features}"
            formula = (
                f"{module.in_features}*{module.out_features} + {module.out_features}" if module.bias is not None else ""
            )
        else:
            shape = ""
        if shared:  # tied weights (e.g. a language model's decoder): counted once, where they first appear
            formula = f"{count:,} own, the rest shared with {', '.join(shared)}"
        rows.append(ParameterRow(name, type(module).__name__, shape, count, formula))
    return rows


def parameter_table(model: nn.Module) -> str:
    rows = parameter_rows(model)
    header = ("layer", "type", "shape", "parameters", "formula")
    body = [(r.name, r.kind, r.shape, f"{r.count:,}", r.formula) for r in rows]
    body.append(("total", "", "", f"{count_parameters(model):,}", ""))
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
