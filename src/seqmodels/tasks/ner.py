"""Named-entity recognition (many-to-many): a tag for every word, entities from the tags.

Sentences come from CoNLL-2003 already split into words, so words are the tokens (no
subwords): a word vocabulary from the training split (rarer words than `data.min_freq`
map to <unk>), a character vocabulary for the optional character CNN, and the tag set of
the data in IOB2. Metrics are conlleval's entity-level precision, recall and F1.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqmodels.data import conll
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.text import UNK_ID, flatten
from seqmodels.data.vocab import Vocabulary
from seqmodels.checks import require_bool, require_choice, require_int
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import SequenceTagger, encoder_kwargs, tagger_kwargs
from seqmodels.tasks.base import Batch, StepOutput, Task, TaskData
from seqmodels.tasks.ner_metrics import entity_scores

log = logging.getLogger("seqmodels")

DATASETS = ("conll2003",)
SPLITS = ("train", "val", "test")
OUTSIDE = "O"


@dataclass
class TaggingBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded word ids
    lengths: torch.Tensor  # (B,)
    tags: torch.Tensor  # (B, T) tag ids; padding positions hold 0 and are masked out
    chars: torch.Tensor | None = None  # (B, T, W) character ids, only when the model reads them
    shapes: torch.Tensor | None = None  # (B, T) conll.SHAPES ids, only when the model reads them
    # with document context: the lengths of the sentences each row is made of, so that
    # entities are scored sentence by sentence, as conlleval does
    sentences: list[list[int]] | None = None


@dataclass(frozen=True)
class Vocabularies:
    """Words -> ids the way training saw them (one place, for the cache and for predict)."""

    words: Vocabulary
    chars: Vocabulary
    lowercase: bool

    def word_ids(self, words: list[str]) -> list[int]:
        return self.words.ids(word.lower() for word in words) if self.lowercase else self.words.ids(words)

    def char_ids(self, words: list[str]) -> list[list[int]]:
        return [self.chars.ids(word) for word in words]  # spelling keeps its capitals

    @staticmethod
    def shape_ids(words: list[str]) -> list[int]:
        return [conll.word_shape(word) for word in words]  # capitals, whatever lowercase did to the words


def _padded_chars(flat: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, W) the character ids of N words stored flat, 0-padded to the longest word."""
    positions = torch.arange(int(lengths.max()))
    index = starts.unsqueeze(1) + positions
    real = positions < lengths.unsqueeze(1)
    return torch.where(real, flat[index.clamp(max=len(flat) - 1)].long(), 0)


def _context_tokens(data: Any) -> int:
    return data.get("context_tokens", 0)  # runs saved before the option read sentences alone


class NerTask(Task):
    monitor = "f1"
    mode = "max"

    def _settings(self) -> dict[str, Any]:
        data = self.cfg.data
        require_choice("data.dataset", data.dataset, DATASETS)
        for key in ("min_freq", "batch_size"):
            require_int(f"data.{key}", data[key])
        require_int("data.context_tokens", _context_tokens(data), minimum=0)
        require_bool("data.lowercase", data.lowercase)
        return {"dataset": data.dataset, "min_freq": data.min_freq, "lowercase": bool(data.lowercase)}

    def prepare(self) -> TaskData:
        settings = self._settings()
        options = tagger_kwargs(self.cfg.model)  # checked before reading any data
        if options["singleton_dropout"] > 0 and settings["min_freq"] > 1:
            raise ConfigError(f"model.singleton_dropout needs words seen once in the vocabulary, but "
                              f"data.min_freq={settings['min_freq']} already maps them to <unk>; set data.min_freq=1")
        uses_chars, uses_shapes = options["char_dim"] > 0, options["shape_dim"] > 0
        data = self.cfg.data
        paths = conll.locate(Path(data.root))
        key = cache_key(paths.values(), {**settings, "shapes": conll.SHAPES, "singletons": "counted",
                                         "documents": "kept"})
        entry, _ = cached(Path(data.cache_dir), settings["dataset"], key, lambda: self._build_cache(paths, settings))

        context_tokens = _context_tokens(data)

        def loader(name: str, shuffle: bool) -> BatchLoader:
            split = entry[name]
            # An example is one sentence, or with data.context_tokens a run of consecutive
            # sentences of one document, which are consecutive in the flat arrays too.
            sentence_lengths = split["offsets"].diff().tolist()
            starts = conll.context_starts(sentence_lengths, split["documents"].tolist(), context_tokens)
            offsets = split["offsets"][[*starts, len(sentence_lengths)]]
            words = RaggedIds(split["words"], offsets)
            tags = RaggedIds(split["tags"], offsets)
            shapes = RaggedIds(split["shapes"], offsets)
            sentences = [sentence_lengths[a:b] for a, b in zip(starts, [*starts[1:], len(sentence_lengths)])]
            chars, char_offsets = split["chars"], split["char_offsets"]

            def make_batch(indices: list[int]) -> TaggingBatch:
                tokens, lengths = pad_right([words[i] for i in indices])
                tag_ids, _ = pad_right([tags[i] for i in indices], pad_value=0)
                batch_chars = None
                if uses_chars:
                    real = torch.arange(tokens.shape[1]) < lengths.unsqueeze(1)
                    positions = words.offsets[indices].unsqueeze(1) + torch.arange(tokens.shape[1])
                    word_index = positions[real]  # the batch's real words, in the order of tokens[real]
                    starts = char_offsets[word_index]
                    spelled = _padded_chars(chars, starts, char_offsets[word_index + 1] - starts)
                    batch_chars = torch.zeros(*tokens.shape, spelled.shape[1], dtype=torch.long)
                    batch_chars[real] = spelled
                batch_shapes = pad_right([shapes[i] for i in indices])[0] if uses_shapes else None
                return TaggingBatch(tokens, lengths, tag_ids, batch_chars, batch_shapes,
                                    [sentences[i] for i in indices] if context_tokens else None)

            sampler = BucketBatchSampler(words.lengths(), data.batch_size, shuffle=shuffle, seed=self.cfg.seed)
            return BatchLoader(sampler, make_batch)

        train = loader("train", shuffle=True)
        train_lengths = entry["train"]["offsets"].diff()
        stats = entry["stats"]
        summary = {
            "dataset": f"{settings['dataset']} ({paths['train'].parent})",
            "sentences train / val / test": " / ".join(f"{stats[s]['sentences']:,}" for s in SPLITS),
            "tokens train / val / test": " / ".join(f"{stats[s]['tokens']:,}" for s in SPLITS),
            "entities train": ", ".join(f"{k} {v:,}" for k, v in sorted(stats["train"]["entities"].items())),
            "tags": f"{len(entry['tags'])} ({' '.join(entry['tags'])})",
            "vocabulary": f"{len(entry['words']):,} words (min_freq {settings['min_freq']}), "
                          f"{len(entry['chars']):,} characters",
            "unknown words val / test": " / ".join(f"{stats[s]['unknown']:.1%}" for s in ("val", "test")),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "examples": (f"runs of sentences of one document, up to {context_tokens} tokens: "
                         f"{len(train.sampler.lengths):,} in training" if context_tokens else "sentences"),
            **padding_report(train_lengths, train.sampler),
        }
        artifacts = {"words": entry["words"], "chars": entry["chars"], "tags": entry["tags"],
                     "lowercase": settings["lowercase"], "singletons_from": entry["singletons_from"]}
        return TaskData(train, loader("val", False), loader("test", False), artifacts, summary)

    @staticmethod
    def _build_cache(paths: dict[str, Path], settings: dict[str, Any]) -> dict[str, Any]:
        log.info("reading %s (once; later runs load the cache)", paths["train"].parent)
        sentences = {}
        for name in SPLITS:
            sentences[name] = conll.read(paths[name])
            if not sentences[name]:
                raise DataError(f"{paths[name]} holds no sentences; expected CoNLL-2003 lines 'word POS chunk NER'")
        # Words and characters come from the training split only: validation and test words
        # it has not seen map to <unk>, as a user's new words do. The tag set is the labels
        # of all splits (not a vocabulary to learn), so every gold tag has an id.
        train_words = [word for sentence in sentences["train"] for word in sentence.words]
        counts = Counter(w.lower() if settings["lowercase"] else w for w in train_words)
        words = Vocabulary.build(counts, settings["min_freq"])
        chars = Vocabulary.build(Counter(char for word in train_words for char in word))
        tag_names = {tag for name in SPLITS for sentence in sentences[name] for tag in sentence.tags}
        tags = [OUTSIDE, *sorted(tag_names - {OUTSIDE})]  # O is id 0, the value padding positions hold
        tag_ids = {tag: i for i, tag in enumerate(tags)}
        vocabularies = Vocabularies(words, chars, settings["lowercase"])
        entry: dict[str, Any] = {"words": words.strings, "chars": chars.strings, "tags": tags, "stats": {},
                                 # most frequent first, so the words seen once are the ids from here on
                                 "singletons_from": next((i for i, w in enumerate(words.strings)
                                                          if i > UNK_ID and counts[w] == 1), len(words))}
        for name in SPLITS:
            word_ids = [vocabularies.word_ids(s.words) for s in sentences[name]]
            flat_words, offsets = flatten(word_ids)
            flat_chars, char_offsets = flatten([ids for s in sentences[name] for ids in vocabularies.char_ids(s.words)])
            entry[name] = {"words": flat_words, "offsets": offsets,
                           "tags": flatten([[tag_ids[t] for t in s.tags] for s in sentences[name]])[0],
                           "chars": flat_chars, "char_offsets": char_offsets,
                           "shapes": flatten([vocabularies.shape_ids(s.words) for s in sentences[name]])[0],
                           "documents": torch.tensor([s.document for s in sentences[name]])}
            entities = Counter(span.type for s in sentences[name] for span in conll.entity_spans(s.tags))
            entry["stats"][name] = {"sentences": len(sentences[name]), "tokens": int(offsets[-1]),
                                    "entities": dict(entities),
                                    "unknown": float((flat_words == UNK_ID).float().mean())}
        return entry

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        # evaluate() turns tag ids back into names; the names travel with the artifacts
        self.tag_names: list[str] = list(artifacts["tags"])
        model = self.cfg.model
        options = tagger_kwargs(model)
        valid_tags = options.pop("valid_tags")
        return SequenceTagger(vocab_size=len(artifacts["words"]), num_tags=len(artifacts["tags"]),
                              embedding_dim=model.embedding_dim, num_chars=len(artifacts["chars"]),
                              num_shapes=len(conll.SHAPES), unk_id=UNK_ID,
                              # checkpoints from before singletons were counted: none known
                              singletons_from=artifacts.get("singletons_from", len(artifacts["words"])),
                              forbidden=conll.forbidden_iob2(self.tag_names) if valid_tags else None,
                              **encoder_kwargs(model), **options)

    def step(self, model: nn.Module, batch: TaggingBatch) -> StepOutput:
        emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
        loss = model.loss(emissions, batch.tags, batch.lengths)
        details = None
        if not model.training:  # decoding (Viterbi with a CRF) only to evaluate: training steps stay fast
            lengths = batch.lengths.tolist()
            predicted = model.decode(emissions, batch.lengths).cpu().tolist()
            gold = batch.tags.cpu().tolist()
            sentences = batch.sentences or [[n] for n in lengths]
            details = [(g[start:start + n], p[start:start + n])
                       for g, p, row in zip(gold, predicted, sentences)
                       for start, n in zip(itertools.accumulate(row, initial=0), row)]
        return StepOutput(loss, int(batch.lengths.sum()), len(batch.lengths), details)

    def evaluate(self, outputs: list[StepOutput]) -> dict[str, float]:
        tokens = sum(o.num_tokens for o in outputs)
        if tokens == 0:
            return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan"), "loss": float("nan")}
        names = self.tag_names
        pairs = [pair for o in outputs for pair in o.details]
        scores = entity_scores(([names[i] for i in gold] for gold, _ in pairs),
                               ([names[i] for i in predicted] for _, predicted in pairs),
                               types=(tag[2:] for tag in names if tag != OUTSIDE))
        # the loss is a mean per token, so batches weigh by their tokens
        loss = sum(float(o.loss) * o.num_tokens for o in outputs) / tokens
        return {"f1": scores.pop("f1"), "precision": scores.pop("precision"), "recall": scores.pop("recall"),
                "loss": loss, **scores}

    @torch.no_grad()
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        model.eval()
        matches = conll.split_words(text)
        words = [match.group() for match in matches]
        if not words:
            return {"tokens": [], "tags": [], "entities": []}
        vocabularies = Vocabularies(Vocabulary(artifacts["words"]), Vocabulary(artifacts["chars"]),
                                    artifacts["lowercase"])
        device = next(model.parameters()).device
        tokens, lengths = pad_right([torch.tensor(vocabularies.word_ids(words))])
        chars, _ = pad_right([torch.tensor(ids) for ids in vocabularies.char_ids(words)])
        shapes = torch.tensor([vocabularies.shape_ids(words)], device=device)
        tokens, lengths, chars = tokens.to(device), lengths.to(device), chars.unsqueeze(0).to(device)
        predicted = model.decode(model(tokens, lengths, chars, shapes), lengths)[0].tolist()
        tags = [artifacts["tags"][i] for i in predicted]
        entities = [{"text": text[matches[span.start].start():matches[span.end - 1].end()], "type": span.type,
                     "start": span.start, "end": span.end} for span in conll.entity_spans(tags)]
        return {"tokens": words, "tags": tags, "entities": entities}

    def hparams(self) -> dict[str, Any]:
        options = tagger_kwargs(self.cfg.model)
        return {**super().hparams(), "crf": options["crf"], "valid_tags": options["valid_tags"],
                "char_dim": options["char_dim"], "char_filters": options["char_filters"],
                "shape_dim": options["shape_dim"], "attention_dim": options["attention_dim"],
                "word_dropout": options["word_dropout"], "singleton_dropout": options["singleton_dropout"],
                "min_freq": self.cfg.data.min_freq,
                "lowercase": bool(self.cfg.data.lowercase), "context_tokens": _context_tokens(self.cfg.data)}
