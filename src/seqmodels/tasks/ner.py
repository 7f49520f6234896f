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
from typing import Any, cast

import torch
from torch import nn

from seqmodels.data import conll
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.config import DataConfig
from seqmodels.data.pretrained import extend
from seqmodels.data.text import PAD, UNK, UNK_ID, flatten
from seqmodels.data.vocab import Vocabulary
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import TaggerConfig
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, decoding, tagger_graph
from seqmodels.models.tagger import SequenceTagger
from seqmodels.schema import setting
from seqmodels.tasks.base import Answers, Batch, Showcase, StepOutput, Task, TaskData
from seqmodels.tasks.ner_metrics import entity_scores
from seqmodels.tasks.showcase import pick_sentences, tagged_sentences
from seqmodels.tasks.vectors import pretrained_rows, read_vectors, unseen_word_candidates, vocabulary_sources

log = logging.getLogger("seqmodels")

DATASETS = ("conll2003",)
SPLITS = ("train", "val", "test")
OUTSIDE = "O"


@dataclass
class NerData(DataConfig):
    dataset: str = setting("conll2003", "the tagged sentences to read", choices=DATASETS)
    batch_size: int = setting(32, "sentences (or document runs) per training batch", minimum=1)
    min_freq: int = setting(2, "rarer training words map to <unk>, so <unk> is trained for unseen words", minimum=1)
    lowercase: bool = setting(False, "lowercase words (capitals mark names; the character CNN sees them either way)")
    context_tokens: int = setting(
        0,
        "0: every sentence is an example. N > 0: consecutive sentences of one document, "
        "up to N tokens, are read as one sequence; entities are still scored sentence "
        "by sentence",
        minimum=0,
    )


@dataclass
class TaggingBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded word ids
    lengths: torch.Tensor  # (B,) on the CPU (`Batch.host_fields`)
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
    # with pretrained words beyond the training vocabulary: a word unknown as it is is looked up in
    # lowercase too (GloVe 6B is lowercased, CoNLL-2003 is not)
    lowercase_fallback: bool = False

    def word_ids(self, words: list[str]) -> list[int]:
        if self.lowercase:
            words = [word.lower() for word in words]
        ids = self.words.ids(words)
        if self.lowercase_fallback:
            ids = [self.words.index.get(word.lower(), UNK_ID) if i == UNK_ID else i for i, word in zip(ids, words)]
        return ids

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


class NerTask(Task[TaggingBatch]):
    monitor = "f1"
    mode = "max"
    metrics = ("f1", "precision", "recall", "loss")
    showcase: Showcase | None = None  # the validation sentences `examples` tags, picked by `prepare`
    reads_conll = True

    data_schema = NerData
    model_schema = TaggerConfig
    data_config: NerData
    model_config: TaggerConfig

    def check_config(self) -> None:
        if self.model_config.singleton_dropout > 0 and self.data_config.min_freq > 1:
            raise ConfigError(
                f"model.singleton_dropout needs words seen once in the vocabulary, but "
                f"data.min_freq={self.data_config.min_freq} already maps them to <unk>; set "
                f"data.min_freq=1"
            )

    def _settings(self) -> dict[str, Any]:
        """What the cached data depends on."""
        data = self.data_config
        return {"dataset": data.dataset, "min_freq": data.min_freq, "lowercase": data.lowercase}

    def prepare(self) -> TaskData:
        settings = self._settings()
        uses_chars, uses_shapes = self.model_config.char_dim > 0, self.model_config.shape_dim > 0
        data = self.data_config
        paths = conll.locate(Path(data.root))
        vectors = read_vectors(self.model_config, data)
        candidates = unseen_word_candidates(vectors, self.model_config, lowercase=settings["lowercase"])
        vector_files, vector_settings = vocabulary_sources(vectors, candidates, self.model_config)
        key = cache_key(
            [*paths.values(), *vector_files],
            {**settings, "shapes": conll.SHAPES, "singletons": "counted", "documents": "kept", **vector_settings},
        )
        entry, _ = cached(
            Path(data.cache_dir), settings["dataset"], key, lambda: self._build_cache(paths, settings, candidates)
        )
        frozen = entry.get("frozen_words", 0)
        if vectors is not None:
            self.pretrained, _ = pretrained_rows(
                vectors,
                entry["words"],
                frozen=frozen,
                train_ids=entry["train"]["words"],
                specials=(PAD, UNK),
                lowercased_data=settings["lowercase"],
            )

        context_tokens = data.context_tokens

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
                return TaggingBatch(
                    tokens,
                    lengths,
                    tag_ids,
                    batch_chars,
                    batch_shapes,
                    [sentences[i] for i in indices] if context_tokens else None,
                )

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
            "vocabulary": f"{len(entry['words']) - frozen:,} words (min_freq {settings['min_freq']}), "
            f"{len(entry['chars']):,} characters" + (f"; {frozen:,} pretrained words beyond them" if frozen else ""),
            "unknown words val / test": " / ".join(f"{stats[s]['unknown']:.1%}" for s in ("val", "test")),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "examples": (
                f"runs of sentences of one document, up to {context_tokens} tokens: "
                f"{len(train.sampler.lengths):,} in training"
                if context_tokens
                else "sentences"
            ),
            **padding_report(train_lengths, train.sampler),
        }
        artifacts = {
            "words": entry["words"],
            "chars": entry["chars"],
            "tags": entry["tags"],
            "lowercase": settings["lowercase"],
            "singletons_from": entry["singletons_from"],
            **({"frozen_words": frozen} if frozen else {}),
        }
        val = loader("val", False)
        self.showcase = self._showcase(entry["val"], entry["chars"], entry["tags"], val)
        return TaskData(train, val, loader("test", False), artifacts, summary)

    @staticmethod
    def _showcase(split: dict[str, Any], chars: list[str], tags: list[str], val: BatchLoader) -> Showcase:
        """A few validation examples with entities (`tasks.showcase`), their words spelled from the
        characters (the word vocabulary would show <unk> for many names)."""
        lengths = val.sampler.lengths.tolist()
        ends = list(itertools.accumulate(lengths))  # examples lie one after another in the flat arrays
        names = [tags[t] for t in split["tags"].tolist()]
        entities = [len(conll.entity_spans(names[end - n : end])) for n, end in zip(lengths, ends)]
        picked = pick_sentences(lengths, entities)
        flat, offsets = split["chars"].tolist(), split["char_offsets"].tolist()
        words = [
            ["".join(chars[c] for c in flat[offsets[p] : offsets[p + 1]]) for p in range(ends[i] - lengths[i], ends[i])]
            for i in picked
        ]
        return Showcase(val.make_batch(picked), words)

    @staticmethod
    def _build_cache(paths: dict[str, Path], settings: dict[str, Any], candidates: list[str]) -> dict[str, Any]:
        """`candidates`: pretrained words to keep beyond the training vocabulary (`tasks.vectors`)."""
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
        trainable = len(words)
        # Pretrained words training never saw come after its words, so a validation, test or user's
        # word that the vectors know gets its vector: the vocabulary still comes from training alone.
        beyond = extend(words.strings, candidates)
        words = Vocabulary([*words.strings, *beyond])
        chars = Vocabulary.build(Counter(char for word in train_words for char in word))
        tag_names = {tag for name in SPLITS for sentence in sentences[name] for tag in sentence.tags}
        tags = [OUTSIDE, *sorted(tag_names - {OUTSIDE})]  # O is id 0, the value padding positions hold
        tag_ids = {tag: i for i, tag in enumerate(tags)}
        vocabularies = Vocabularies(words, chars, settings["lowercase"], lowercase_fallback=bool(beyond))
        entry: dict[str, Any] = {
            "words": words.strings,
            "chars": chars.strings,
            "tags": tags,
            "stats": {},
            # most frequent first, so the words seen once are the ids from here on
            "singletons_from": next(
                (i for i, w in enumerate(words.strings[:trainable]) if i > UNK_ID and counts[w] == 1), trainable
            ),
            "frozen_words": len(beyond),
        }
        for name in SPLITS:
            word_ids = [vocabularies.word_ids(s.words) for s in sentences[name]]
            flat_words, offsets = flatten(word_ids)
            flat_chars, char_offsets = flatten([ids for s in sentences[name] for ids in vocabularies.char_ids(s.words)])
            entry[name] = {
                "words": flat_words,
                "offsets": offsets,
                "tags": flatten([[tag_ids[t] for t in s.tags] for s in sentences[name]])[0],
                "chars": flat_chars,
                "char_offsets": char_offsets,
                "shapes": flatten([vocabularies.shape_ids(s.words) for s in sentences[name]])[0],
                "documents": torch.tensor([s.document for s in sentences[name]]),
            }
            entities = Counter(span.type for s in sentences[name] for span in conll.entity_spans(s.tags))
            entry["stats"][name] = {
                "sentences": len(sentences[name]),
                "tokens": int(offsets[-1]),
                "entities": dict(entities),
                "unknown": float((flat_words == UNK_ID).float().mean()),
            }
        return entry

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        return self.model_config.build(
            len(artifacts["words"]),
            len(artifacts["tags"]),
            num_chars=len(artifacts["chars"]),
            num_shapes=len(conll.SHAPES),
            unk_id=UNK_ID,
            singletons_from=artifacts.get("singletons_from", len(artifacts["words"])),
            forbidden=conll.forbidden_iob2(artifacts["tags"]),
            frozen_words=artifacts.get("frozen_words", 0),
            pretrained=self.pretrained,
        )

    @staticmethod
    def _emissions_and_loss(model: nn.Module, batch: TaggingBatch) -> tuple[torch.Tensor, torch.Tensor]:
        emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
        return emissions, cast(SequenceTagger, model).loss(emissions, batch.tags, batch.lengths)

    def step(self, model: nn.Module, batch: TaggingBatch) -> StepOutput:
        _, loss = self._emissions_and_loss(model, batch)
        return StepOutput(loss, int(batch.lengths.sum()), len(batch.lengths))

    def evaluation_step(self, model: nn.Module, batch: TaggingBatch) -> StepOutput:
        """The loss and, per sentence, (gold, predicted) tag ids: decoding (Viterbi with a CRF)."""
        emissions, loss = self._emissions_and_loss(model, batch)
        lengths = batch.lengths.tolist()
        predicted = cast(SequenceTagger, model).decode(emissions, batch.lengths).cpu().tolist()
        gold = batch.tags.cpu().tolist()
        sentences = batch.sentences or [[n] for n in lengths]
        details = [
            (g[start : start + n], p[start : start + n])
            for g, p, row in zip(gold, predicted, sentences)
            for start, n in zip(itertools.accumulate(row, initial=0), row)
        ]
        return StepOutput(loss, sum(lengths), len(lengths), details)

    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]:
        tokens = sum(o.num_tokens for o in outputs)
        if tokens == 0:
            return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan"), "loss": float("nan")}
        names = artifacts["tags"]
        pairs = [pair for o in outputs for pair in o.details]
        scores = entity_scores(
            ([names[i] for i in gold] for gold, _ in pairs),
            ([names[i] for i in predicted] for _, predicted in pairs),
            types=(tag[2:] for tag in names if tag != OUTSIDE),
        )
        # the loss is a mean per token, so batches weigh by their tokens
        loss = sum(float(o.loss) * o.num_tokens for o in outputs) / tokens
        return {
            "f1": scores.pop("f1"),
            "precision": scores.pop("precision"),
            "recall": scores.pop("recall"),
            "loss": loss,
            **scores,
        }

    @torch.no_grad()
    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """The same validation sentences every epoch: gold and predicted entities, the differences in bold."""
        if self.showcase is None:
            return {}
        with evaluating(model):
            batch = cast(TaggingBatch, self.showcase.batch.to(next(model.parameters()).device))
            emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
            predicted = cast(SequenceTagger, model).decode(emissions, batch.lengths).cpu().tolist()
        names = artifacts["tags"]
        shown = cast(TaggingBatch, self.showcase.batch)
        gold, lengths = shown.tags.tolist(), shown.lengths.tolist()
        sentences = [
            (words, [names[t] for t in g[:n]], [names[t] for t in p[:n]])
            for words, g, p, n in zip(self.showcase.texts, gold, predicted, lengths)
        ]
        return {"entities": tagged_sentences(sentences)}

    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text]).results[0]

    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """Each text split into words as CoNLL-2003 splits them, a tag per word, and the entities
        with their place in the words and their text as written."""
        matches = [conll.split_words(text) for text in texts]
        words = [[match.group() for match in found] for found in matches]
        tags = self._tag(model, artifacts, words)
        results = []
        for text, found, sentence_words, sentence_tags in zip(texts, matches, words, tags):
            entities = [
                {
                    "text": text[found[span.start].start() : found[span.end - 1].end()],
                    "type": span.type,
                    "start": span.start,
                    "end": span.end,
                }
                for span in conll.entity_spans(sentence_tags)
            ]
            results.append({"tokens": sentence_words, "tags": sentence_tags, "entities": entities})
        return Answers(results, tokens=sum(map(len, words)))

    def conll_sequences(self, sentences: list[conll.Sentence]) -> list[list[conll.Sentence]]:
        """The sentences as the model reads them: one by one, or with data.context_tokens consecutive
        sentences of one document together, as in training and evaluation (so the tags are evaluate.py's)."""
        lengths = [len(sentence.words) for sentence in sentences]
        documents = [sentence.document for sentence in sentences]
        starts = conll.context_starts(lengths, documents, self.data_config.context_tokens)
        return [sentences[a:b] for a, b in zip(starts, [*starts[1:], len(sentences)])]

    def tag_sequences(
        self, model: nn.Module, artifacts: dict[str, Any], sequences: list[list[conll.Sentence]]
    ) -> Answers:
        """{"tags": [IOB2 tags of each sentence]} for each sequence of `conll_sequences`."""
        words = [[word for sentence in sequence for word in sentence.words] for sequence in sequences]
        results = []
        for tags, sequence in zip(self._tag(model, artifacts, words), sequences):
            starts = itertools.accumulate((len(sentence.words) for sentence in sequence), initial=0)
            results.append({"tags": [tags[a : a + len(sentence.words)] for a, sentence in zip(starts, sequence)]})
        return Answers(results, tokens=sum(map(len, words)))

    @torch.no_grad()
    def _tag(self, model: nn.Module, artifacts: dict[str, Any], sequences: list[list[str]]) -> list[list[str]]:
        """The tag names of each sequence of words, the sequences run as one padded batch."""
        model.eval()
        filled = [i for i, words in enumerate(sequences) if words]
        tags: list[list[str]] = [[] for _ in sequences]
        if not filled:
            return tags
        vocabularies = Vocabularies(
            Vocabulary(artifacts["words"]),
            Vocabulary(artifacts["chars"]),
            artifacts["lowercase"],
            lowercase_fallback=artifacts.get("frozen_words", 0) > 0,
        )
        device = next(model.parameters()).device
        rows = [sequences[i] for i in filled]
        tokens, lengths = pad_right([torch.tensor(vocabularies.word_ids(words)) for words in rows])
        chars = shapes = None
        if self.model_config.char_dim > 0:
            spelled = [[torch.tensor(ids) for ids in vocabularies.char_ids(words)] for words in rows]
            width = max(len(ids) for words in spelled for ids in words)
            chars = torch.zeros(*tokens.shape, max(width, 1), dtype=torch.int64)
            for row, words in enumerate(spelled):
                for position, ids in enumerate(words):
                    chars[row, position, : len(ids)] = ids
            chars = chars.to(device)
        if self.model_config.shape_dim > 0:
            shapes = pad_right([torch.tensor(vocabularies.shape_ids(words)) for words in rows])[0].to(device)
        tokens, lengths = tokens.to(device), lengths.to(device)
        predicted = cast(SequenceTagger, model).decode(model(tokens, lengths, chars, shapes), lengths).cpu().tolist()
        names = artifacts["tags"]
        for i, ids, length in zip(filled, predicted, lengths.tolist()):
            tags[i] = [names[tag] for tag in ids[:length]]
        return tags

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        graph = tagger_graph(model, len(artifacts["words"]), len(artifacts["chars"]), len(conll.SHAPES))
        graph.sidecar = {
            "tags": artifacts["tags"],
            "decoding": decoding(model),
            "words": artifacts["words"],
            "lowercase": artifacts["lowercase"],
            # a word unknown as written is looked up lowercased (pretrained words beyond the training ones)
            "lowercase_fallback": artifacts.get("frozen_words", 0) > 0,
            "chars": artifacts["chars"],
            "shapes": list(conll.SHAPES),
            "context_tokens": self.data_config.context_tokens,
        }
        return graph
