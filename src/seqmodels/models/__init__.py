"""Models: embedding -> recurrent encoder -> task head. No files, tokenizers or training here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqmodels.errors import ConfigError
from seqmodels.models.classifier import POOLINGS, SequenceClassifier
from seqmodels.models.crf import LinearChainCRF
from seqmodels.models.encoder import CELLS, RecurrentEncoder
from seqmodels.models.language_model import LanguageModel
from seqmodels.models.tagger import SequenceTagger

__all__ = ["CELLS", "POOLINGS", "LanguageModel", "LinearChainCRF", "RecurrentEncoder", "SequenceClassifier",
           "SequenceTagger", "check_model_config", "encoder_kwargs", "tagger_kwargs"]


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


def tagger_kwargs(model: Mapping[str, Any]) -> dict[str, Any]:
    """The tagger's output layer and character features from a `model` config group (the
    NER task config adds these keys: crf, char_dim, char_filters, char_kernel_size)."""
    crf = model.get("crf", False)
    if not isinstance(crf, bool):
        raise ConfigError(f"model.crf={crf!r} must be true or false")
    char_dim = model.get("char_dim", 0)
    if not isinstance(char_dim, int) or isinstance(char_dim, bool) or char_dim < 0:
        raise ConfigError(f"model.char_dim={char_dim!r} is impossible; use 0 (no character features) or a positive integer")
    options = {"crf": crf, "char_dim": char_dim, "char_filters": 0, "char_kernel_size": 3}
    if char_dim > 0:
        for key in ("char_filters", "char_kernel_size"):
            value = model.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.{key}={value!r} is impossible with model.char_dim={char_dim}; "
                                  f"it must be a positive integer")
            options[key] = value
        if options["char_kernel_size"] % 2 == 0:
            raise ConfigError(f"model.char_kernel_size={options['char_kernel_size']} must be odd (3, 5, ...) "
                              f"so each filter centres on a character")
    return options
