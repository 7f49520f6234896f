"""Models: embedding -> recurrent encoder -> task head. No files, tokenizers or training here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqmodels.checks import require_bool, require_choice, require_int, require_number
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
    require_choice("model.cell", model.get("cell"), CELLS, " (e.g. model=lstm)")
    for key in ("embedding_dim", "hidden_size", "num_layers"):
        require_int(f"model.{key}", model.get(key))
    require_number("model.dropout", model.get("dropout", 0.0), 0.0, 1.0)
    require_bool("model.bidirectional", model.get("bidirectional", False))
    require_choice("model.pooling", model.get("pooling", "last"), POOLINGS)


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
    """The tagger's output layer and word features from a `model` config group (the NER task
    config adds these keys: crf, char_dim, char_filters, char_kernel_size, shape_dim, attention_dim,
    word_dropout, singleton_dropout, valid_tags)."""
    crf, char_dim, shape_dim = model.get("crf", False), model.get("char_dim", 0), model.get("shape_dim", 0)
    valid_tags, attention_dim = model.get("valid_tags", False), model.get("attention_dim", 0)
    word_dropout, singleton_dropout = model.get("word_dropout", 0.0), model.get("singleton_dropout", 0.0)
    require_bool("model.crf", crf)
    require_bool("model.valid_tags", valid_tags)
    require_int("model.char_dim", char_dim, minimum=0)  # 0: no character features
    require_int("model.shape_dim", shape_dim, minimum=0)  # 0: no word-shape feature
    require_int("model.attention_dim", attention_dim, minimum=0)  # 0: no attention layer
    require_number("model.word_dropout", word_dropout, 0.0, 1.0)
    require_number("model.singleton_dropout", singleton_dropout, 0.0, 1.0)
    options = {"crf": crf, "valid_tags": valid_tags, "char_dim": char_dim, "char_filters": 0, "char_kernel_size": 3,
               "shape_dim": shape_dim, "attention_dim": attention_dim, "word_dropout": float(word_dropout),
               "singleton_dropout": float(singleton_dropout)}
    if char_dim > 0:
        for key in ("char_filters", "char_kernel_size"):
            require_int(f"model.{key}", model.get(key))
            options[key] = model.get(key)
        if options["char_kernel_size"] % 2 == 0:
            raise ConfigError(f"model.char_kernel_size={options['char_kernel_size']} must be odd (3, 5, ...) "
                              f"so each filter centres on a character")
    return options
