"""Sentiment classification (many-to-one): a review in, positive or negative out."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.data import imdb
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.config import DataConfig
from seqmodels.data.pretrained import extend
from seqmodels.data.splits import seeded_split
from seqmodels.data.text import (
    PAD,
    UNK,
    WHITESPACE_TOKEN,
    encode,
    encode_with_cuts,
    extend_vocabulary,
    flatten,
    tokenizer_from_json,
    train_word_tokenizer,
)
from seqmodels.models import ClassifierConfig
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, classifier_graph
from seqmodels.schema import setting
from seqmodels.tasks.base import Answers, Batch, Showcase, StepOutput, Task, TaskData
from seqmodels.tasks.showcase import pick_reviews, review_table
from seqmodels.tasks.vectors import pretrained_rows, read_vectors, unseen_word_candidates, vocabulary_sources

log = logging.getLogger("seqmodels")

# Each dataset: how to find it and read it as {'train', 'test'} -> texts + labels.
DATASETS = {"imdb": imdb}
LABEL_NAMES = {"imdb": ["negative", "positive"]}


@dataclass
class SentimentData(DataConfig):
    dataset: str = setting("imdb", "the labelled reviews to read", choices=tuple(DATASETS))
    vocab_size: int = setting(30000, "most frequent training words kept (plus <pad>, <unk>)", minimum=1)
    min_freq: int = setting(2, "rarer words map to <unk>", minimum=1)
    max_length: int | None = setting(400, "tokens kept per review; longer reviews are cut; null: all", minimum=1)
    keep: str = setting(
        "head",
        "head: the first max_length tokens | tail: the last ones",
        choices=("head", "tail"),
        hint=" (head: first tokens, tail: last tokens)",
    )
    lowercase: bool = setting(True, "lowercase every review before tokenizing")
    val_fraction: float = setting(
        0.1, "of the training reviews, held out for validation", minimum=0.0, maximum=1.0, low_open=True
    )
    split_seed: int = setting(1234, "seeds the validation split, which does not move with `seed`", minimum=0)


@dataclass
class SentimentBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded ids
    lengths: torch.Tensor  # (B,) on the CPU (`Batch.host_fields`)
    labels: torch.Tensor  # (B,)


@lru_cache(maxsize=4)
def _tokenizer(serialized: str):
    return tokenizer_from_json(serialized)


class SentimentTask(Task[SentimentBatch]):
    monitor = "accuracy"
    mode = "max"
    metrics = ("accuracy", "loss")
    showcase: Showcase | None = None  # the validation reviews `examples` classifies, picked by `prepare`

    data_schema = SentimentData
    model_schema = ClassifierConfig
    data_config: SentimentData
    model_config: ClassifierConfig

    def _settings(self) -> dict[str, Any]:
        """What the cached data depends on."""
        settings = asdict(self.data_config)
        return {
            k: settings[k]
            for k in (
                "dataset",
                "vocab_size",
                "min_freq",
                "max_length",
                "keep",
                "lowercase",
                "val_fraction",
                "split_seed",
            )
        }

    def prepare(self) -> TaskData:
        settings = self._settings()
        data = self.data_config
        reader = DATASETS[settings["dataset"]]
        source = reader.locate(Path(data.root), allow_download=data.download)
        vectors = read_vectors(self.model_config, data)
        candidates = unseen_word_candidates(
            vectors, self.model_config, lowercase=settings["lowercase"], token_pattern=WHITESPACE_TOKEN
        )
        vector_files, vector_settings = vocabulary_sources(vectors, candidates, self.model_config)
        key = cache_key([source, *vector_files], {**settings, **vector_settings})
        entry, _ = cached(
            Path(data.cache_dir),
            settings["dataset"],
            key,
            lambda: self._build_cache(reader, source, settings, candidates),
        )
        frozen = entry.get("frozen_words", 0)
        if vectors is not None:
            words = sorted(_tokenizer(entry["tokenizer"]).get_vocab().items(), key=lambda item: item[1])
            self.pretrained, _ = pretrained_rows(
                vectors,
                [word for word, _ in words],
                frozen=frozen,
                train_ids=entry["train"]["flat"],
                specials=(PAD, UNK),
                lowercased_data=settings["lowercase"],
            )
        splits = {
            name: (RaggedIds(entry[name]["flat"], entry[name]["offsets"]), entry[name]["labels"])
            for name in ("train", "val", "test")
        }

        def loader(name: str, shuffle: bool) -> BatchLoader:
            ids, labels = splits[name]

            def make_batch(indices: list[int]) -> SentimentBatch:
                tokens, lengths = pad_right([ids[i] for i in indices])
                return SentimentBatch(tokens, lengths, labels[indices])

            sampler = BucketBatchSampler(ids.lengths(), data.batch_size, shuffle=shuffle, seed=self.cfg.seed)
            return BatchLoader(sampler, make_batch)

        train = loader("train", shuffle=True)
        train_lengths = splits["train"][0].lengths()
        summary = {
            "dataset": f"{settings['dataset']} ({source})",
            **{f"{name} examples": len(splits[name][1]) for name in ("train", "val", "test")},
            "vocabulary": entry["vocab_size"]
            if not frozen
            else f"{entry['vocab_size'] - frozen:,} words; {frozen:,} pretrained words beyond them",
            "train tokens": int(train_lengths.sum()),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "truncated to max_length": f"{entry['truncated']:.1%}",
            **padding_report(train_lengths, train.sampler),
        }
        artifacts = {
            "tokenizer": entry["tokenizer"],
            "labels": LABEL_NAMES[settings["dataset"]],
            "vocab_size": entry["vocab_size"],
            **({"frozen_words": frozen} if frozen else {}),
        }
        val = loader("val", False)
        picked = pick_reviews(splits["val"][0].lengths().tolist(), splits["val"][1].tolist())
        tokenizer = _tokenizer(entry["tokenizer"])
        self.showcase = Showcase(
            val.make_batch(picked), [tokenizer.decode(splits["val"][0][i].tolist()) for i in picked]
        )
        return TaskData(train, val, loader("test", False), artifacts, summary)

    @staticmethod
    def _build_cache(reader, source: Path, settings: dict[str, Any], candidates: list[str]) -> dict[str, Any]:
        """`candidates`: pretrained words to keep beyond the training vocabulary (`tasks.vectors`)."""
        log.info("reading %s (once; later runs load the cache)", source)
        splits = reader.read(source)
        train_index, val_index = seeded_split(
            len(splits["train"].texts), settings["val_fraction"], settings["split_seed"]
        )
        texts = {
            "train": [splits["train"].texts[i] for i in train_index],
            "val": [splits["train"].texts[i] for i in val_index],
            "test": splits["test"].texts,
        }
        labels = {
            "train": torch.tensor(splits["train"].labels)[train_index],
            "val": torch.tensor(splits["train"].labels)[val_index],
            "test": torch.tensor(splits["test"].labels),
        }
        # The vocabulary comes from the training part only: validation and test words it
        # has not seen map to <unk>, as they would for a user's new text.
        tokenizer = train_word_tokenizer(
            texts["train"],
            vocab_size=settings["vocab_size"],
            min_freq=settings["min_freq"],
            lowercase=settings["lowercase"],
        )
        full_lengths = torch.tensor([len(e.ids) for e in tokenizer.encode_batch(texts["train"])])
        # Pretrained words training never saw come after its words, so a validation, test or user's
        # word that the vectors know gets its vector: the vocabulary still comes from training alone.
        beyond = extend(list(tokenizer.get_vocab()), candidates)
        extend_vocabulary(tokenizer, beyond)
        if settings["max_length"]:
            tokenizer.enable_truncation(
                settings["max_length"], direction="right" if settings["keep"] == "head" else "left"
            )
        entry: dict[str, Any] = {
            "tokenizer": tokenizer.to_str(),
            "vocab_size": tokenizer.get_vocab_size(),
            "frozen_words": len(beyond),
            "truncated": float((full_lengths > (settings["max_length"] or 10**12)).float().mean()),
        }
        for name in ("train", "val", "test"):
            flat, offsets = flatten(encode(tokenizer, texts[name], lowercase_fallback=bool(beyond)))
            entry[name] = {"flat": flat, "offsets": offsets, "labels": labels[name]}
        return entry

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        return self.model_config.build(
            artifacts["vocab_size"],
            len(artifacts["labels"]),
            frozen_words=artifacts.get("frozen_words", 0),
            pretrained=self.pretrained,
        )

    def step(self, model: nn.Module, batch: SentimentBatch) -> StepOutput:
        logits = model(batch.tokens, batch.lengths)
        loss = F.cross_entropy(logits.float(), batch.labels)
        # counted in eval mode only: reading the count waits for the device
        correct = None if model.training else int((logits.argmax(-1) == batch.labels).sum())
        return StepOutput(loss, int(batch.lengths.sum()), len(batch.labels), details=correct)

    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]:
        total = sum(o.num_examples for o in outputs)
        if total == 0:
            return {"accuracy": float("nan"), "loss": float("nan")}
        return {
            "accuracy": sum(o.details for o in outputs) / total,
            "loss": sum(float(o.loss) * o.num_examples for o in outputs) / total,
        }

    @torch.no_grad()
    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """The same validation reviews every epoch: predicted label and probability against the gold one."""
        if self.showcase is None:
            return {}
        with evaluating(model):
            batch = cast(SentimentBatch, self.showcase.batch.to(next(model.parameters()).device))
            probabilities = model(batch.tokens, batch.lengths).float().softmax(-1).cpu().tolist()
        gold = cast(SentimentBatch, self.showcase.batch).labels.tolist()
        return {"reviews": review_table(self.showcase.texts, gold, probabilities, artifacts["labels"])}

    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text]).results[0]

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """The label and probabilities of each review; an empty review gets label and probability None."""
        model.eval()
        ids, cuts = encode_with_cuts(
            _tokenizer(artifacts["tokenizer"]), texts, lowercase_fallback=artifacts.get("frozen_words", 0) > 0
        )
        labels = artifacts["labels"]
        results: list[dict[str, Any]] = [{"label": None, "probability": None, "probabilities": {}} for _ in texts]
        filled = [i for i, text in enumerate(texts) if text.strip()]
        if not filled:
            return Answers(results)
        tokens, lengths = pad_right([torch.tensor(ids[i]) for i in filled])
        device = next(model.parameters()).device
        probabilities = model(tokens.to(device), lengths.to(device)).float().softmax(-1).cpu().tolist()
        for i, row in zip(filled, probabilities):
            best = max(range(len(row)), key=row.__getitem__)
            results[i] = {
                "label": labels[best],
                "probability": round(row[best], 4),
                "probabilities": {name: round(p, 4) for name, p in zip(labels, row)},
            }
        return Answers(results, tokens=int(lengths.sum()), cut=sum(cuts[i] for i in filled))

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        graph = classifier_graph(model, artifacts["vocab_size"])
        graph.sidecar = {
            "labels": artifacts["labels"],
            # tokenizers.Tokenizer.from_str(json.dumps(...)) reads it; it lowercases and cuts as training did
            "tokenizer": json.loads(artifacts["tokenizer"]),
            "lowercase_fallback": artifacts.get("frozen_words", 0) > 0,
            "max_length": self.data_config.max_length,
        }
        return graph
