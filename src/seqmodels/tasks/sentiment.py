"""Sentiment classification (many-to-one): a review in, positive or negative out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.data import imdb
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.splits import seeded_split
from seqmodels.data.text import encode, flatten, tokenizer_from_json, train_word_tokenizer
from seqmodels.checks import require_bool, require_choice, require_int, require_number
from seqmodels.models import SequenceClassifier, encoder_kwargs
from seqmodels.tasks.base import Batch, StepOutput, Task, TaskData

log = logging.getLogger("seqmodels")

# Each dataset: how to find it and read it as {'train', 'test'} -> texts + labels.
DATASETS = {"imdb": imdb}
LABEL_NAMES = {"imdb": ["negative", "positive"]}


@dataclass
class SentimentBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded ids
    lengths: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B,)


@lru_cache(maxsize=4)
def _tokenizer(serialized: str):
    return tokenizer_from_json(serialized)


class SentimentTask(Task):
    monitor = "accuracy"
    mode = "max"

    def _settings(self) -> dict[str, Any]:
        data = self.cfg.data
        require_choice("data.dataset", data.dataset, DATASETS)
        for key in ("vocab_size", "min_freq", "batch_size"):
            require_int(f"data.{key}", data[key])
        require_int("data.max_length", data.max_length, allow_none=True)
        require_choice("data.keep", data.keep, ("head", "tail"), " (head: first tokens, tail: last tokens)")
        require_bool("data.lowercase", data.lowercase)
        require_number("data.val_fraction", data.val_fraction, 0.0, 1.0, low_open=True)
        require_int("data.split_seed", data.split_seed, minimum=0)
        return {k: data[k] for k in ("dataset", "vocab_size", "min_freq", "max_length", "keep", "lowercase",
                                     "val_fraction", "split_seed")}

    def prepare(self) -> TaskData:
        settings = self._settings()
        data = self.cfg.data
        reader = DATASETS[settings["dataset"]]
        source = reader.locate(Path(data.root), allow_download=data.download)
        key = cache_key([source], settings)
        entry, _ = cached(Path(data.cache_dir), settings["dataset"], key,
                          lambda: self._build_cache(reader, source, settings))
        splits = {name: (RaggedIds(entry[name]["flat"], entry[name]["offsets"]), entry[name]["labels"])
                  for name in ("train", "val", "test")}

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
            "vocabulary": entry["vocab_size"],
            "train tokens": int(train_lengths.sum()),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "truncated to max_length": f"{entry['truncated']:.1%}",
            **padding_report(train_lengths, train.sampler),
        }
        artifacts = {"tokenizer": entry["tokenizer"], "labels": LABEL_NAMES[settings["dataset"]],
                     "vocab_size": entry["vocab_size"]}
        return TaskData(train, loader("val", False), loader("test", False), artifacts, summary)

    @staticmethod
    def _build_cache(reader, source: Path, settings: dict[str, Any]) -> dict[str, Any]:
        log.info("reading %s (once; later runs load the cache)", source)
        splits = reader.read(source)
        train_index, val_index = seeded_split(len(splits["train"].texts), settings["val_fraction"],
                                              settings["split_seed"])
        texts = {"train": [splits["train"].texts[i] for i in train_index],
                 "val": [splits["train"].texts[i] for i in val_index],
                 "test": splits["test"].texts}
        labels = {"train": torch.tensor(splits["train"].labels)[train_index],
                  "val": torch.tensor(splits["train"].labels)[val_index],
                  "test": torch.tensor(splits["test"].labels)}
        # The vocabulary comes from the training part only: validation and test words it
        # has not seen map to <unk>, as they would for a user's new text.
        tokenizer = train_word_tokenizer(texts["train"], vocab_size=settings["vocab_size"],
                                         min_freq=settings["min_freq"], lowercase=settings["lowercase"])
        full_lengths = torch.tensor([len(e.ids) for e in tokenizer.encode_batch(texts["train"])])
        if settings["max_length"]:
            tokenizer.enable_truncation(settings["max_length"],
                                        direction="right" if settings["keep"] == "head" else "left")
        entry: dict[str, Any] = {
            "tokenizer": tokenizer.to_str(),
            "vocab_size": tokenizer.get_vocab_size(),
            "truncated": float((full_lengths > (settings["max_length"] or 10**12)).float().mean()),
        }
        for name in ("train", "val", "test"):
            flat, offsets = flatten(encode(tokenizer, texts[name]))
            entry[name] = {"flat": flat, "offsets": offsets, "labels": labels[name]}
        return entry

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        model = self.cfg.model
        return SequenceClassifier(vocab_size=artifacts["vocab_size"], num_classes=len(artifacts["labels"]),
                                  embedding_dim=model.embedding_dim, pooling=model.pooling, **encoder_kwargs(model))

    def step(self, model: nn.Module, batch: SentimentBatch) -> StepOutput:
        logits = model(batch.tokens, batch.lengths)
        loss = F.cross_entropy(logits.float(), batch.labels)
        correct = int((logits.argmax(-1) == batch.labels).sum())
        return StepOutput(loss, int(batch.lengths.sum()), len(batch.labels), details=correct)

    def evaluate(self, outputs: list[StepOutput]) -> dict[str, float]:
        total = sum(o.num_examples for o in outputs)
        if total == 0:
            return {"accuracy": float("nan"), "loss": float("nan")}
        return {"accuracy": sum(o.details for o in outputs) / total,
                "loss": sum(float(o.loss) * o.num_examples for o in outputs) / total}

    @torch.no_grad()
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        model.eval()
        ids = torch.tensor(encode(_tokenizer(artifacts["tokenizer"]), [text])[0])
        tokens, lengths = pad_right([ids])
        device = next(model.parameters()).device
        probabilities = model(tokens.to(device), lengths.to(device)).softmax(-1)[0].cpu()
        best = int(probabilities.argmax())
        return {"label": artifacts["labels"][best], "probability": round(float(probabilities[best]), 4),
                "probabilities": {name: round(float(p), 4) for name, p in zip(artifacts["labels"], probabilities)}}
