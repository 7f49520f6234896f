"""Models: embedding -> recurrent encoder -> task head. No files, tokenizers or training here.

Each head declares its `model.*` keys as a config section (`ClassifierConfig`, `TaggerConfig`,
`LanguageModelConfig`, `Seq2SeqConfig`, all extending `EncoderConfig`) that validates them, builds the model
(`build`) and describes it (`describe`, and every key for HPARAMS and compare tables).
"""

from __future__ import annotations

from seqmodels.models.classifier import POOLINGS, ClassifierConfig, SequenceClassifier
from seqmodels.models.crf import LinearChainCRF
from seqmodels.models.encoder import CELLS, EncoderConfig, RecurrentEncoder
from seqmodels.models.language_model import LanguageModel, LanguageModelConfig
from seqmodels.models.seq2seq import Seq2Seq, Seq2SeqConfig
from seqmodels.models.tagger import SequenceTagger, TaggerConfig

__all__ = [
    "CELLS",
    "POOLINGS",
    "ClassifierConfig",
    "EncoderConfig",
    "LanguageModel",
    "LanguageModelConfig",
    "LinearChainCRF",
    "RecurrentEncoder",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceClassifier",
    "SequenceTagger",
    "TaggerConfig",
]
