"""Models: embedding -> recurrent encoder -> task head. No files, tokenizers or training here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqmodels.errors import ConfigError
from seqmodels.models.classifier import POOLINGS, SequenceClassifier
from seqmodels.models.encoder import CELLS, RecurrentEncoder

__all__ = ["CELLS", "POOLINGS", "RecurrentEncoder", "SequenceClassifier", "check_model_config", "encoder_kwargs"]


def check_model_config(model: Mapping[str, Any]) -> None:
    """Reject impossible hyper-parameters with a message that says which key and what to use."""
    cell = model.get("cell")
    if cell not in CELLS:
        raise ConfigError(f"model.cell={cell!r} is not a recurrent cell; use one of {sorted(CELLS)} (e.g. model=lstm)")
    for key in ("embedding_dim", "hidden_size", "num_layers"):
        value = model.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}={value!r} is impossible; it must be a positive integer")
    dropout = model.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout={dropout!r} is impossible; it must be in [0, 1)")
    if not isinstance(model.get("bidirectional", False), bool):
        raise ConfigError(f"model.bidirectional={model.get('bidirectional')!r} must be true or false")
    pooling = model.get("pooling", "last")
    if pooling not in POOLINGS:
        raise ConfigError(f"model.pooling={pooling!r} is unknown; use one of {list(POOLINGS)}")


def encoder_kwargs(model: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder's constructor arguments from a `model` config group."""
    check_model_config(model)
    return {
        "cell": model["cell"],
        "hidden_size": int(model["hidden_size"]),
        "num_layers": int(model["num_layers"]),
        "bidirectional": bool(model["bidirectional"]),
        "dropout": float(model["dropout"]),
    }
