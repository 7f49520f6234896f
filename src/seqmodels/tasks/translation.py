"""Translation (many-to-many of different lengths): a sentence in, its translation out.

The data (Multi30k or a user's parallel corpus, cut into subword pieces) is `data.translation_data`'s.
The model is `models.seq2seq`; the loss is label-smoothed cross-entropy over the real target tokens
(`</s>` included, padding left out).

Metrics (`translation_metrics`): sacreBLEU's cased BLEU on detokenized text (the monitor), chrF and
lowercased BLEU against the untouched reference lines, and teacher-forced `loss` and `perplexity`.
Validation during training decodes with `decode.val_beam_size` (1: greedy, fast); the final report
of the best checkpoint (`configure_evaluation`, which the trainer and `evaluate.py` call) and
`predict` decode with `decode.beam_size`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import torch
from torch import nn

from seqmodels.data.batching import pad_right
from seqmodels.data.subword import BOS_ID, EOS_ID, decode_ids, encode_texts, pieces
from seqmodels.data.text import tokenizer_from_json
from seqmodels.data.translation_data import (
    TranslationArtifacts,
    TranslationBatch,
    TranslationData,
    prepare_translation_data,
)
from seqmodels.errors import ConfigError
from seqmodels.models.modes import evaluating
from seqmodels.models.search import beam_search, greedy_search
from seqmodels.models.seq2seq import Seq2Seq, Seq2SeqConfig
from seqmodels.schema import Section, add_options, setting, with_options
from seqmodels.tasks.attention_map import attention_figure
from seqmodels.tasks.base import Answers, SplitPass, StepOutput, Task, TaskData
from seqmodels.tasks.translation_metrics import corpus_scores, signatures

log = logging.getLogger("seqmodels")


@dataclass
class DecodeConfig(Section):
    """`decode.*`: how translations are generated for metrics and `predict.py`."""

    beam_size: int = setting(
        5, "hypotheses kept per sentence in the final report, evaluate.py and predict.py; 1: greedy", minimum=1
    )
    val_beam_size: int = setting(
        1, "the same during training's validations, which pick the best epoch; 1: greedy (fast)", minimum=1
    )
    length_penalty: float = setting(
        0.6,
        "alpha of ((5 + length) / 6) ** alpha, which divides a finished hypothesis' log-probability; 0: none",
        minimum=0.0,
    )
    max_length_ratio: float = setting(
        1.5, "a translation has at most ratio x source pieces + max_length_extra", minimum=0.0, low_open=True
    )
    max_length_extra: int = setting(10, "see max_length_ratio", minimum=0)


@dataclass
class AttentionOption(Section):
    """`predict.py`'s option of a translation besides `--beam-size` (`decode.beam_size`)."""

    attention: bool = setting(False, "also print the attention weights of each generated piece over the source pieces")


@lru_cache(maxsize=8)
def _tokenizer(serialized: str):
    return tokenizer_from_json(serialized)


class TranslationTask(Task[TranslationBatch]):
    monitor = "bleu"
    mode = "max"
    metrics = ("bleu", "chrf", "bleu_lowercase", "loss", "perplexity")

    data_schema = TranslationData
    model_schema = Seq2SeqConfig
    extra_schemas = {"decode": DecodeConfig}
    data_config: TranslationData
    model_config: Seq2SeqConfig

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.decode_config = cast(DecodeConfig, self.sections["decode"])
        # the beam and length penalty of the evaluation passes; the final report switches to decode.beam_size
        self.beam_size, self.length_penalty = self.decode_config.val_beam_size, self.decode_config.length_penalty
        self._signature_logged = False

    def prepare(self) -> TaskData:
        return prepare_translation_data(self.data_config, self.cfg.seed)

    # -- model, loss, metrics ---------------------------------------------------------------
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        found = TranslationArtifacts.from_dict(artifacts)
        return self.model_config.build(found.source_vocab_size, found.target_vocab_size, bos_id=BOS_ID, eos_id=EOS_ID)

    def embedding_words(self, artifacts: dict[str, Any]) -> list[str]:
        return TranslationArtifacts.from_dict(artifacts).source_words()

    def step(self, model: nn.Module, batch: TranslationBatch) -> StepOutput:
        positions = batch.target_positions
        logits = model(batch.source, batch.source_lengths, batch.target_in, positions)  # (N, V): real positions only
        gold = batch.target_out.flatten()[positions]
        log_probs = logits.float().log_softmax(-1)
        nll = -log_probs.gather(1, gold.unsqueeze(1)).squeeze(1)
        smoothing = self.model_config.label_smoothing
        losses = nll if smoothing == 0 else (1 - smoothing) * nll - smoothing * log_probs.mean(-1)
        count = len(gold)
        loss_sum = losses.sum()
        details = None
        if not model.training:  # evaluation: what the corpus-level loss and perplexity need
            details = {"loss_sum": float(loss_sum.detach()), "nll_sum": float(nll.detach().sum()), "tokens": count}
        return StepOutput(loss_sum / count, count, len(batch.source_lengths), details)

    def max_lengths(self, source_lengths: torch.Tensor) -> torch.Tensor:
        decode = self.decode_config
        return (source_lengths.float() * decode.max_length_ratio).ceil().long() + decode.max_length_extra + 1

    def translate_ids(
        self, model: nn.Module, source: torch.Tensor, lengths: torch.Tensor, beam_size: int | None = None
    ) -> list[list[int]]:
        """Piece ids of each sentence's translation (greedy when the beam is 1)."""
        beam = self.beam_size if beam_size is None else beam_size
        max_lengths = self.max_lengths(lengths)
        seq2seq = cast(Seq2Seq, model)
        if beam == 1:
            return greedy_search(seq2seq, source, lengths, max_lengths)
        return beam_search(seq2seq, source, lengths, max_lengths, beam, self.length_penalty)

    def evaluation_step(self, model: nn.Module, batch: TranslationBatch) -> StepOutput:
        out = self.step(model, batch)
        out.details["hypotheses"] = self.translate_ids(model, batch.source, batch.source_lengths)
        out.details["references"] = batch.references
        return out

    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]:
        tokens = sum(o.details["tokens"] for o in outputs)
        if tokens == 0:
            return {
                "bleu": float("nan"),
                "chrf": float("nan"),
                "bleu_lowercase": float("nan"),
                "loss": float("nan"),
                "perplexity": float("nan"),
            }
        tokenizer = _tokenizer(TranslationArtifacts.from_dict(artifacts).target_tokenizer)
        hypotheses = decode_ids(tokenizer, [ids for o in outputs for ids in o.details["hypotheses"]])
        references = [line for o in outputs for line in o.details["references"]]
        if not self._signature_logged:
            log.info("sacreBLEU %s", signatures()["bleu"])
            self._signature_logged = True
        nll = sum(o.details["nll_sum"] for o in outputs) / tokens
        return {
            **corpus_scores(hypotheses, references),
            "loss": sum(o.details["loss_sum"] for o in outputs) / tokens,
            "perplexity": math.exp(nll) if nll < 700 else math.inf,
        }

    # -- the final report -------------------------------------------------------------------
    @classmethod
    def add_evaluate_options(cls, group) -> None:
        add_options(group, DecodeConfig, ("beam_size", "length_penalty"), run_section="decode")

    def check_evaluation_options(self, **options: Any) -> None:
        with_options(self.decode_config, options)

    def configure_evaluation(
        self, model: nn.Module, data: TaskData, evaluate: SplitPass, **options: Any
    ) -> dict[str, Any]:
        """The final report decodes with decode.beam_size (or --beam-size) instead of validation's beam."""
        decode = with_options(self.decode_config, options)
        self.beam_size, self.length_penalty = decode.beam_size, decode.length_penalty
        log.info("final evaluation: beam %d, length penalty %g", self.beam_size, self.length_penalty)
        return {"beam_size": self.beam_size, "length_penalty": self.length_penalty, "sacrebleu": signatures()}

    # -- text in, text out ------------------------------------------------------------------
    def _encode_source(self, found: TranslationArtifacts, texts: list[str]) -> list[torch.Tensor]:
        ids = encode_texts(_tokenizer(found.source_tokenizer), texts)
        return [torch.tensor(row[: found.max_length] or [1]) for row in ids]

    def _attention(
        self, model: nn.Module, source: torch.Tensor, lengths: torch.Tensor, hypotheses: list[list[int]]
    ) -> torch.Tensor | None:
        """(B, T, S) the attention of each translation's steps (</s> included), read with teacher forcing:
        decoding ran the same steps, so these are the weights it used."""
        seq2seq = cast(Seq2Seq, model)
        if seq2seq.attention is None:
            return None
        target_in, _ = pad_right([torch.tensor([BOS_ID, *ids]) for ids in hypotheses])
        _, weights = seq2seq.decode(seq2seq.encode(source, lengths), target_in.to(source.device))
        return weights

    @torch.no_grad()
    def _translate_showcase(self, model: nn.Module, found: TranslationArtifacts):
        with evaluating(model):
            device = next(model.parameters()).device
            texts = [source for source, _ in found.showcase]
            source, lengths = pad_right(self._encode_source(found, texts))
            source, lengths = source.to(device), lengths.to(device)
            hypotheses = self.translate_ids(model, source, lengths, self.decode_config.val_beam_size)
            return source, lengths, hypotheses, self._attention(model, source, lengths, hypotheses)

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """The same few validation sentences after every validation, with their references."""
        found = TranslationArtifacts.from_dict(artifacts)
        _, _, hypotheses, _ = self._translate_showcase(model, found)
        translations = decode_ids(_tokenizer(found.target_tokenizer), hypotheses)
        rows = [
            f"| {source} | {reference} | {translation} |"
            for (source, reference), translation in zip(found.showcase, translations)
        ]
        return {"translations": "\n".join(["| source | reference | translation |", "| --- | --- | --- |", *rows])}

    def figures(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, Any]:
        """The attention maps of the same sentences (none without attention)."""
        if model.attention is None:
            return {}
        found = TranslationArtifacts.from_dict(artifacts)
        source, lengths, hypotheses, weights = self._translate_showcase(model, found)
        source_pieces = _tokenizer(found.source_tokenizer)
        target_pieces = _tokenizer(found.target_tokenizer)
        figures = {}
        for row, ids in enumerate(hypotheses):
            n = int(lengths[row])
            figures[f"attention_{row}"] = attention_figure(
                pieces(source_pieces, source[row, :n].tolist()),
                [*pieces(target_pieces, ids), "</s>"],
                weights[row, : len(ids) + 1, :n].cpu().tolist(),
                title=found.showcase[row][0],
            )
        return figures

    @classmethod
    def add_predict_options(cls, group) -> None:
        add_options(group, DecodeConfig, ("beam_size",), run_section="decode")
        add_options(group, AttentionOption)

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """Each text's translation, the texts decoded as one batch (beam search in batches returns what
        one sentence at a time does); with `attention`, one by one."""
        if with_options(AttentionOption(), options).attention:
            return super().predict_batch(model, artifacts, texts, **options)
        beam = with_options(self.decode_config, options).beam_size
        model.eval()
        results: list[dict[str, Any]] = [{"translation": "", "beam_size": beam} for _ in texts]
        filled = [i for i, text in enumerate(texts) if text.strip()]
        if not filled:
            return Answers(results)
        device = next(model.parameters()).device
        found = TranslationArtifacts.from_dict(artifacts)
        full = encode_texts(_tokenizer(found.source_tokenizer), [texts[i].strip() for i in filled])
        limit = found.max_length
        source, lengths = pad_right([torch.tensor(row[:limit] or [1]) for row in full])
        self.length_penalty = self.decode_config.length_penalty
        hypotheses = self.translate_ids(model, source.to(device), lengths.to(device), beam)
        for i, translation in zip(filled, decode_ids(_tokenizer(found.target_tokenizer), hypotheses)):
            results[i]["translation"] = translation
        return Answers(results, tokens=int(lengths.sum()), cut=sum(len(row) > limit for row in full))

    @torch.no_grad()
    def predict(
        self,
        model: nn.Module,
        artifacts: dict[str, Any],
        text: str,
        **options: Any,
    ) -> dict[str, Any]:
        beam = with_options(self.decode_config, options).beam_size
        attention = with_options(AttentionOption(), options).attention
        model.eval()
        if not text.strip():
            return {"translation": "", "beam_size": beam}
        device = next(model.parameters()).device
        found = TranslationArtifacts.from_dict(artifacts)
        source, lengths = pad_right(self._encode_source(found, [text.strip()]))
        source, lengths = source.to(device), lengths.to(device)
        self.length_penalty = self.decode_config.length_penalty
        ids = self.translate_ids(model, source, lengths, beam)[0]
        result: dict[str, Any] = {
            "translation": decode_ids(_tokenizer(found.target_tokenizer), [ids])[0],
            "beam_size": beam,
        }
        if attention:
            weights = self._attention(model, source, lengths, [ids])
            if weights is None:
                raise ConfigError("--attention: this model has none (model.attention=none)")
            result["attention"] = {
                "source": pieces(_tokenizer(found.source_tokenizer), source[0].tolist()),
                "translation": [*pieces(_tokenizer(found.target_tokenizer), ids), "</s>"],
                "weights": [[round(w, 3) for w in row] for row in weights[0].cpu().tolist()],
            }
        return result
