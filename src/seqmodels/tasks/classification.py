"""Text classification (many-to-one): a text in, its label out, or with multi-label data any number of labels.

Data (`data.classification`): IMDB's reviews (`task=imdb`), SST-5's sentences (`task=sst5`) or the user's
files (`task=classification data.train=FILE`), with any number of labels, named as the data names them.
The model is `models.classifier`: the encoder's states pooled into one vector, a linear layer over the labels.
Loss: cross-entropy over the labels (multi-label: binary cross-entropy per label, sigmoid outputs), weighted per
label with `data.class_weights=balanced`. Metrics (`classification_metrics`): accuracy, macro F1 (multi-label:
exact-match accuracy, macro and micro F1, a label predicted at probability `data.threshold`); the final report
adds precision, recall and F1 per label (`configure_evaluation`), and TensorBoard shows each validation's
confusion matrix (`figures`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.classification import (
    UNSEEN,
    ClassificationData,
    ClassifierArtifacts,
    build_splits,
    cache_settings,
    class_weights,
    locate,
    unseen_warning,
)
from seqmodels.data.labelled_text import Columns
from seqmodels.data.text import PAD, UNK, WHITESPACE_TOKEN, encode_with_cuts, tokenizer_from_json
from seqmodels.errors import ConfigError
from seqmodels.hparams import TEXT, Column
from seqmodels.models import ClassifierConfig
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, classifier_graph
from seqmodels.tasks.base import Answers, Batch, Showcase, SplitPass, StepOutput, Task, TaskData
from seqmodels.tasks.classification_metrics import LabelCounts, f1, per_label, per_label_table, single_label_counts
from seqmodels.tasks.confusion_matrix import confusion_figure
from seqmodels.tasks.showcase import labels_table, pick_reviews, review_table
from seqmodels.tasks.vectors import pretrained_rows, read_vectors, unseen_word_candidates, vocabulary_sources

log = logging.getLogger("seqmodels")

SPLITS = ("train", "val", "test")


@dataclass
class ClassificationBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded ids
    lengths: torch.Tensor  # (B,) on the CPU (`Batch.host_fields`)
    labels: torch.Tensor  # (B,) label ids (UNSEEN: a label training never saw); multi-label: (B, C) 0/1
    missed: torch.Tensor | None = None  # multi-label: (B,) each text's labels training never saw


@dataclass
class Outcome:
    """What `evaluate` needs of a batch, on the CPU (eval mode only)."""

    predicted: torch.Tensor  # (B,) label ids; multi-label: (B, C) bool
    gold: torch.Tensor  # (B,) label ids, UNSEEN included; multi-label: (B, C) bool
    missed: torch.Tensor | None  # multi-label: (B,)
    scored: int  # examples the loss covers (single-label: those with a label training saw)


@lru_cache(maxsize=4)
def _tokenizer(serialized: str):
    return tokenizer_from_json(serialized)


class ClassificationTask(Task[ClassificationBatch]):
    aliases = ("sentiment",)
    monitor = "accuracy"
    mode = "max"
    metrics = ("accuracy", "macro_f1", "loss")
    optional_metrics = ("micro_f1",)  # multi-label data only
    showcase: Showcase | None = None  # the validation texts `examples` classifies, picked by `prepare`

    data_schema = ClassificationData
    model_schema = ClassifierConfig
    data_config: ClassificationData
    model_config: ClassifierConfig

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.weights: torch.Tensor | None = None  # data.class_weights=balanced: per label, on the model's device
        self.label_count: int | None = None  # known once the data is prepared
        self.per_label = False  # the final evaluation also scores every label (`configure_evaluation`)
        self.split = "val"  # the split being evaluated (`start_pass`)
        self.confusion: torch.Tensor | None = None  # of the last validation, for `figures`

    # -- data -------------------------------------------------------------------------------------
    def prepare(self) -> TaskData:
        data = self.data_config
        sources = locate(data)
        vectors = read_vectors(self.model_config, data)
        candidates = unseen_word_candidates(
            vectors, self.model_config, lowercase=data.lowercase, token_pattern=WHITESPACE_TOKEN
        )
        vector_files, vector_settings = vocabulary_sources(vectors, candidates, self.model_config)
        settings = {**cache_settings(data, self.cfg.seed), **vector_settings}
        entry, _ = cached(
            Path(data.cache_dir),
            data.dataset,
            cache_key([*sources.files, *vector_files], settings),
            lambda: build_splits(data, sources, candidates=candidates, subset_seed=self.cfg.seed),
        )
        artifacts = ClassifierArtifacts(
            entry["tokenizer"], entry["labels"], entry["vocab_size"], entry["frozen_words"], entry["multi_label"]
        )
        self.label_count = len(artifacts.labels)
        if not artifacts.multi_label and (self.cfg.get("trainer") or {}).get("monitor") == "micro_f1":
            raise ConfigError(
                "trainer.monitor=micro_f1 scores multi-label data; these texts have one label each, where micro F1 "
                "is accuracy: use trainer.monitor=accuracy or macro_f1"
            )
        for split in ("val", "test"):
            warning = unseen_warning(entry, split, sources.names.get(split, data.name()))
            if warning:
                log.warning("%s", warning)
        if not entry["has_test"]:
            log.warning("no data.test: the run reports validation metrics only")
        if data.class_weights == "balanced":
            self.weights = class_weights(entry["label_counts"], len(entry["train"]["labels"]), artifacts.multi_label)
        frozen = artifacts.frozen_words
        if vectors is not None:
            words = sorted(_tokenizer(entry["tokenizer"]).get_vocab().items(), key=lambda item: item[1])
            self.pretrained, _ = pretrained_rows(
                vectors,
                [word for word, _ in words],
                frozen=frozen,
                train_ids=entry["train"]["flat"],
                specials=(PAD, UNK),
                lowercased_data=data.lowercase,
            )
        splits = {name: (RaggedIds(entry[name]["flat"], entry[name]["offsets"]), entry[name]) for name in SPLITS}

        def loader(name: str, shuffle: bool) -> BatchLoader:
            ids, split = splits[name]
            labels, missed = split["labels"], split.get("missed")

            def make_batch(indices: list[int]) -> ClassificationBatch:
                tokens, lengths = pad_right([ids[i] for i in indices])
                return ClassificationBatch(
                    tokens, lengths, labels[indices], None if missed is None else missed[indices]
                )

            sampler = BucketBatchSampler(ids.lengths(), data.batch_size, shuffle=shuffle, seed=self.cfg.seed)
            return BatchLoader(sampler, make_batch)

        train = loader("train", shuffle=True)
        train_lengths = splits["train"][0].lengths()
        summary = {
            "dataset": f"{data.dataset} ({sources.files[0]})" if data.dataset != "files" else data.name(),
            **dict(entry["read"]),
            **{f"{name} examples": len(splits[name][0]) for name in SPLITS},
            "labels": _labels_line(artifacts, entry["label_counts"]),
            "vocabulary": entry["vocab_size"]
            if not frozen
            else f"{entry['vocab_size'] - frozen:,} words; {frozen:,} pretrained words beyond them",
            "train tokens": int(train_lengths.sum()),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "truncated to max_length": f"{entry['truncated']:.1%}",
            **padding_report(train_lengths, train.sampler),
        }
        if not entry["has_test"]:
            summary["test examples"] = "none (no data.test)"
        val = loader("val", False)
        val_labels = splits["val"][1]["labels"]
        firsts = (val_labels.argmax(-1) if artifacts.multi_label else val_labels).tolist()
        lengths = splits["val"][0].lengths().tolist()
        shown = [i for i, label in enumerate(firsts) if label != UNSEEN]  # a gold label the model can name
        picked = [shown[j] for j in pick_reviews([lengths[i] for i in shown], [firsts[i] for i in shown])]
        tokenizer = _tokenizer(entry["tokenizer"])
        self.showcase = Showcase(
            val.make_batch(picked), [tokenizer.decode(splits["val"][0][i].tolist()) for i in picked]
        )
        test = loader("test", False) if entry["has_test"] else None
        return TaskData(train, val, test, artifacts.as_dict(), summary)

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        found = ClassifierArtifacts.from_dict(artifacts)
        return self.model_config.build(
            found.vocab_size, len(found.labels), frozen_words=found.frozen_words, pretrained=self.pretrained
        )

    def embedding_words(self, artifacts: dict[str, Any]) -> list[str]:
        return ClassifierArtifacts.from_dict(artifacts).words()

    # -- training and evaluation ----------------------------------------------------------------------
    def step(self, model: nn.Module, batch: ClassificationBatch) -> StepOutput:
        logits = model(batch.tokens, batch.lengths).float()
        weights = self._weights(logits.device)
        multi_label = batch.labels.dim() == 2
        if multi_label:
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float(), pos_weight=weights)
        else:
            loss = F.cross_entropy(logits, batch.labels, weight=weights)
        outcome = None
        if not model.training:  # read in eval mode only: reading waits for the device
            outcome = self._outcome(logits, batch, multi_label)
            if not outcome.scored:  # every label of the batch unseen in training: nothing to average
                loss = logits.sum() * 0.0
        return StepOutput(loss, int(batch.lengths.sum()), len(batch.labels), details=outcome)

    def _weights(self, device: torch.device) -> torch.Tensor | None:
        if self.weights is not None and self.weights.device != device:
            self.weights = self.weights.to(device)
        return self.weights

    def _outcome(self, logits: torch.Tensor, batch: ClassificationBatch, multi_label: bool) -> Outcome:
        if multi_label:
            predicted = (logits.sigmoid() >= self.data_config.threshold).cpu()
            missed = batch.missed.cpu() if batch.missed is not None else None
            return Outcome(predicted, batch.labels.cpu().bool(), missed, len(batch.labels))
        gold = batch.labels.cpu()
        return Outcome(logits.argmax(-1).cpu(), gold, None, int((gold != UNSEEN).sum()))

    def start_pass(self, model: nn.Module, split: str) -> None:
        self.split = split

    def configure_evaluation(
        self, model: nn.Module, data: TaskData, evaluate: SplitPass, **options: Any
    ) -> dict[str, Any]:
        self.per_label = True
        return {}

    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]:
        """Accuracy, macro F1 (multi-label: also micro F1) and the loss; in the final evaluation, every label's
        precision, recall and F1 too. An empty split (no test set) has no metrics."""
        total = sum(o.num_examples for o in outputs)
        if total == 0:
            return {}
        names = ClassifierArtifacts.from_dict(artifacts).labels
        outcomes = [cast(Outcome, o.details) for o in outputs]
        scored = sum(outcome.scored for outcome in outcomes)
        loss = sum(float(o.loss) * outcome.scored for o, outcome in zip(outputs, outcomes)) / max(scored, 1)
        if outcomes[0].predicted.dim() == 2:
            counts, scores = _multi_label_scores(outcomes)
        else:
            counts, scores = self._single_label_scores(outcomes, len(names))
        scores = {"accuracy": scores.pop("accuracy"), "macro_f1": counts.macro_f1(), **scores, "loss": loss}
        if self.per_label:
            log.info("%s per label:\n%s", self.split, per_label_table(counts, names))
            scores |= per_label(counts, names)
        return scores

    def _single_label_scores(self, outcomes: list[Outcome], classes: int) -> tuple[LabelCounts, dict[str, float]]:
        predicted = torch.cat([outcome.predicted for outcome in outcomes])
        gold = torch.cat([outcome.gold for outcome in outcomes])
        seen = gold != UNSEEN
        confusion = torch.bincount(gold[seen] * classes + predicted[seen], minlength=classes * classes)
        confusion = confusion.reshape(classes, classes)
        if self.split == "val":
            self.confusion = confusion
        unseen_predicted = torch.bincount(predicted[~seen], minlength=classes)
        counts = single_label_counts(confusion, unseen_predicted)
        return counts, {"accuracy": float(confusion.diagonal().sum()) / len(gold)}

    @torch.no_grad()
    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """The same validation texts every epoch: predicted label and probability against the gold one."""
        if self.showcase is None:
            return {}
        names = ClassifierArtifacts.from_dict(artifacts).labels
        batch = cast(ClassificationBatch, self.showcase.batch)
        with evaluating(model):
            moved = cast(ClassificationBatch, batch.to(next(model.parameters()).device))
            logits = model(moved.tokens, moved.lengths).float()
        if batch.labels.dim() == 2:
            probabilities = logits.sigmoid().cpu().tolist()
            gold = [[names[i] for i in row.nonzero().flatten().tolist()] for row in batch.labels]
            table = labels_table(self.showcase.texts, gold, probabilities, names, self.data_config.threshold)
            return {"reviews": table}
        probabilities = logits.softmax(-1).cpu().tolist()
        return {"reviews": review_table(self.showcase.texts, batch.labels.tolist(), probabilities, names)}

    def figures(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, Any]:
        """The confusion matrix of the validation just run (single-label data)."""
        if self.confusion is None:
            return {}
        names = ClassifierArtifacts.from_dict(artifacts).labels
        return {"confusion_matrix": confusion_figure(self.confusion, names, "validation")}

    # -- using a trained model ----------------------------------------------------------------------
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text]).results[0]

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """Each text's label and probabilities (multi-label: its labels at `data.threshold`, and every label's
        probability); an empty text gets label (labels) and probability None."""
        model.eval()
        found = ClassifierArtifacts.from_dict(artifacts)
        ids, cuts = encode_with_cuts(_tokenizer(found.tokenizer), texts, lowercase_fallback=found.frozen_words > 0)
        names = found.labels
        empty = {"labels": None} if found.multi_label else {"label": None, "probability": None}
        results: list[dict[str, Any]] = [{**empty, "probabilities": {}} for _ in texts]
        filled = [i for i, text in enumerate(texts) if text.strip()]
        if not filled:
            return Answers(results)
        tokens, lengths = pad_right([torch.tensor(ids[i]) for i in filled])
        device = next(model.parameters()).device
        logits = model(tokens.to(device), lengths.to(device)).float()
        rows = (logits.sigmoid() if found.multi_label else logits.softmax(-1)).cpu().tolist()
        for i, row in zip(filled, rows):
            probabilities = {name: round(p, 4) for name, p in zip(names, row)}
            if found.multi_label:
                chosen = [name for name, p in zip(names, row) if p >= self.data_config.threshold]
                results[i] = {"labels": chosen, "probabilities": probabilities}
            else:
                best = max(range(len(row)), key=row.__getitem__)
                results[i] = {"label": names[best], "probability": round(row[best], 4), "probabilities": probabilities}
        return Answers(results, tokens=int(lengths.sum()), cut=sum(cuts[i] for i in filled))

    def text_columns(self) -> Columns:
        return self.data_config.columns()

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        found = ClassifierArtifacts.from_dict(artifacts)
        graph = classifier_graph(model, found.vocab_size, multi_label=found.multi_label)
        graph.sidecar = {
            "labels": found.labels,
            # tokenizers.Tokenizer.from_str(json.dumps(...)) reads it; it lowercases and cuts as training did
            "tokenizer": json.loads(found.tokenizer),
            "lowercase_fallback": found.frozen_words > 0,
            "max_length": self.data_config.max_length,
            **({"multi_label": True, "threshold": self.data_config.threshold} if found.multi_label else {}),
        }
        return graph

    # -- what a run is, for tables ----------------------------------------------------------------------
    @classmethod
    def hparam_columns(cls) -> list[Column]:
        """The declared columns, and the number of labels after the data's (the file's name is `train`'s)."""
        columns = super().hparam_columns()
        at = next(i for i, c in enumerate(columns) if c.name == "dataset") + 1
        return [*columns[:at], Column("labels", TEXT, "how many labels the data has"), *columns[at:]]

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "labels": self.label_count}


def _multi_label_scores(outcomes: list[Outcome]) -> tuple[LabelCounts, dict[str, float]]:
    predicted = torch.cat([outcome.predicted for outcome in outcomes])
    gold = torch.cat([outcome.gold for outcome in outcomes])
    missed = torch.cat([cast(torch.Tensor, outcome.missed) for outcome in outcomes])
    counts = LabelCounts((predicted & gold).sum(0), predicted.sum(0), gold.sum(0))
    exact = int(((predicted == gold).all(1) & (missed == 0)).sum())
    # the micro average counts every label of every text, those training never saw as missed
    micro = f1(float(counts.correct.sum()), float(counts.predicted.sum()), float(counts.gold.sum() + missed.sum()))[2]
    return counts, {"accuracy": exact / len(gold), "micro_f1": micro}


def _labels_line(artifacts: ClassifierArtifacts, counts: list[int]) -> str:
    """`5: a (120), b (80), ...`: the labels in the model's order, each with its training examples."""
    shown = ", ".join(f"{name} ({count:,})" for name, count in list(zip(artifacts.labels, counts))[:20])
    more = f", ... ({len(counts) - 20} more)" if len(counts) > 20 else ""
    kind = "; multi-label" if artifacts.multi_label else ""
    return f"{len(artifacts.labels)}{kind}: {shown}{more}"
