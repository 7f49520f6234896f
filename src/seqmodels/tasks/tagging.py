"""Sequence tagging (many-to-many): a tag for every word. Named entities, parts of speech, chunks.

The data pipeline is `seqmodels.data.tagging` (files, splits, checks, vocabularies, cache, batches);
this module is the glue: the tagger (`models.tagger`), its loss, the metrics that follow the tags
(span tags: conlleval's entity precision, recall and F1, and F1 per type; any other tag set: token
accuracy and F1 per tag), the examples shown after each validation, and prediction.

Words are the tokens (no subwords): a word vocabulary from the training split (rarer words than
`data.min_freq` map to <unk>), a character vocabulary for the optional character CNN, and the tag
set of the data.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from seqmodels.data import conll
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, padding_report
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.tag_schemes import entity_spans, forbidden_moves, tag_set_scheme
from seqmodels.data.tagging import (
    SplitBatches,
    TaggingArtifacts,
    TaggingBatch,
    TaggingData,
    build_entry,
    dataset_files,
    encode,
    read_splits,
    sentences_of,
)
from seqmodels.data.text import PAD, UNK, UNK_ID
from seqmodels.errors import ConfigError
from seqmodels.models import TaggerConfig
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, decoding, tagger_graph
from seqmodels.models.tagger import SequenceTagger
from seqmodels.tasks.base import Answers, Showcase, StepOutput, Task, TaskData
from seqmodels.tasks.showcase import pick_sentences, tagged_sentences, tagged_tokens
from seqmodels.tasks.tagging_metrics import entity_scores, token_scores
from seqmodels.tasks.vectors import pretrained_rows, read_vectors, unseen_word_candidates, vocabulary_sources

log = logging.getLogger("seqmodels")

SPAN_METRICS: tuple[str, ...] = ("f1", "precision", "recall", "loss")
TOKEN_METRICS: tuple[str, ...] = ("accuracy", "loss")


class TaggingTask(Task[TaggingBatch]):
    # The metric that selects the checkpoint follows the tags: entity F1 for span tags, token accuracy
    # otherwise (`_follow_tags`, from `prepare` and `build_model`). The class declares both, so that every
    # run's HPARAMS columns are the same.
    monitor = "f1"
    mode = "max"
    metrics: tuple[str, ...] = SPAN_METRICS
    # plain tags (parts of speech): accuracy and loss instead of the span scores
    optional_metrics: tuple[str, ...] = ("accuracy",)
    aliases = ("ner",)  # saved runs of the named-entity task
    showcase: Showcase | None = None  # the validation sentences `examples` tags, picked by `prepare`
    reads_conll = True

    data_schema = TaggingData
    model_schema = TaggerConfig
    data_config: TaggingData
    model_config: TaggerConfig

    def check_config(self) -> None:
        if self.model_config.singleton_dropout > 0 and self.data_config.min_freq > 1:
            raise ConfigError(
                f"model.singleton_dropout needs words seen once in the vocabulary, but "
                f"data.min_freq={self.data_config.min_freq} already maps them to <unk>; set "
                f"data.min_freq=1"
            )

    def _follow_tags(self, tags: list[str]) -> None:
        """Monitor entity F1 for span tags, token accuracy for any other tag set, and report their metrics."""
        spans = tag_set_scheme(tags) is not None
        self.monitor = "f1" if spans else "accuracy"
        self.metrics, self.optional_metrics = (SPAN_METRICS, ()) if spans else (TOKEN_METRICS, ())

    def _settings(self) -> dict[str, Any]:
        """What the cached data depends on."""
        data = self.data_config
        columns = data.columns()
        settings = {
            "dataset": data.dataset,
            "min_freq": data.min_freq,
            "lowercase": data.lowercase,
            "word_column": columns.word,
            "tag_column": columns.tag,
            "encoding": [data.encoding, data.encoding_errors],
        }
        if data.dataset == "files" and data.val is None:
            settings |= {"val_fraction": data.val_fraction, "split_seed": data.split_seed}
        return settings

    def prepare(self) -> TaskData:
        settings = self._settings()
        uses_chars, uses_shapes = self.model_config.char_dim > 0, self.model_config.shape_dim > 0
        data = self.data_config
        files = {"train": data.train, "val": data.val, "test": data.test}
        paths, _ = dataset_files(data.dataset, Path(data.root), data.download, files)
        vectors = read_vectors(self.model_config, data)
        candidates = unseen_word_candidates(vectors, self.model_config, lowercase=settings["lowercase"])
        vector_files, vector_settings = vocabulary_sources(vectors, candidates, self.model_config)
        key = cache_key(
            [*paths.values(), *vector_files],
            {**settings, "shapes": conll.SHAPES, "singletons": "counted", "documents": "kept", **vector_settings},
        )

        def build() -> dict[str, Any]:
            log.info("reading %s (once; later runs load the cache)", paths["train"].parent)
            splits = read_splits(
                paths,
                data.columns(),
                data.text_encoding(),
                val_fraction=data.val_fraction,
                seed=data.split_seed,
            )
            return build_entry(splits, settings["min_freq"], settings["lowercase"], candidates)

        name = data.dataset if data.dataset != "files" else "tagging"
        entry, _ = cached(Path(data.cache_dir), name, key, build)
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
            split = SplitBatches(entry[name], context_tokens, chars=uses_chars, shapes=uses_shapes)
            sampler = BucketBatchSampler(split.lengths(), data.batch_size, shuffle=shuffle, seed=self.cfg.seed)
            return BatchLoader(sampler, split.batch)

        artifacts = TaggingArtifacts(
            entry["words"], entry["chars"], entry["tags"], settings["lowercase"], entry["singletons_from"], frozen
        )
        self._follow_tags(artifacts.tags)
        train = loader("train", shuffle=True)
        val = loader("val", shuffle=False)
        test = loader("test", shuffle=False) if "test" in entry else None
        self.showcase = self._showcase(entry["val"], artifacts, context_tokens, uses_chars, uses_shapes)
        summary = self._summary(entry, artifacts, train, settings)
        return TaskData(train, val, test, artifacts.as_dict(), summary)

    def _summary(
        self, entry: dict[str, Any], artifacts: TaggingArtifacts, train: BatchLoader, settings: dict[str, Any]
    ) -> dict[str, Any]:
        stats = entry["stats"]
        splits = [split for split in ("train", "val", "test") if split in stats]
        names = " / ".join(splits)
        scheme, formats = entry.get("scheme"), entry["formats"]
        train_lengths = entry["train"]["offsets"].diff()
        frozen = artifacts.frozen_words
        context_tokens = self.data_config.context_tokens
        summary = {
            "dataset": f"{settings['dataset']} ({Path(entry['sources']['train']).parent})",
            **{
                f"{split} from": entry["sources"][split] + (f" ({formats[split]})" if split in formats else "")
                for split in splits
            },
            **({} if "test" in stats else {"test": "none (no data.test): validation only"}),
            f"sentences {names}": " / ".join(f"{stats[s]['sentences']:,}" for s in splits),
            f"tokens {names}": " / ".join(f"{stats[s]['tokens']:,}" for s in splits),
        }
        if scheme is not None:
            types = sorted(stats["train"]["entities"].items())
            summary["entities train"] = ", ".join(f"{k} {v:,}" for k, v in types)
            read_as = ", read as IOB2" if scheme == "IOB1" else ""
            summary["tag scheme"] = f"{scheme} spans{read_as}: entity F1 (conlleval), per type"
        else:
            summary["tag scheme"] = "plain tags (no spans): token accuracy, F1 per tag"
        summary |= {
            "tags": f"{len(artifacts.tags)} ({' '.join(artifacts.tags)})",
            "vocabulary": f"{len(artifacts.words) - frozen:,} words (min_freq {settings['min_freq']}), "
            f"{len(artifacts.chars):,} characters" + (f"; {frozen:,} pretrained words beyond them" if frozen else ""),
            f"unknown words {' / '.join(splits[1:])}": " / ".join(f"{stats[s]['unknown']:.1%}" for s in splits[1:]),
            "mean / max length": f"{train_lengths.float().mean():.1f} / {int(train_lengths.max())}",
            "examples": (
                f"runs of sentences of one document, up to {context_tokens} tokens: "
                f"{len(train.sampler.lengths):,} in training"
                if context_tokens
                else "sentences"
            ),
            **padding_report(train_lengths, train.sampler),
        }
        for split, counts in entry.get("unseen", {}).items():
            words = sum(counts.values())
            summary[f"tags unseen in training, {split}"] = (
                f"{words:,} word{'s' if words > 1 else ''} ({', '.join(f'{t} {n}' for t, n in counts.items())}): "
                f"scored as errors"
            )
        return summary

    @staticmethod
    def _showcase(
        split: dict[str, Any], artifacts: TaggingArtifacts, context_tokens: int, chars: bool, shapes: bool
    ) -> Showcase:
        """A few validation examples with spans (or any, for plain tags: `tasks.showcase`), their words
        spelled from the characters (the word vocabulary would show <unk> for many names)."""
        examples = SplitBatches(split, context_tokens, chars=chars, shapes=shapes)
        lengths = examples.lengths().tolist()
        if tag_set_scheme(artifacts.tags) is not None:
            ends = list(itertools.accumulate(lengths))  # examples lie one after another in the flat arrays
            names = [artifacts.tags[t] for t in split["tags"].tolist()]
            marked = [len(entity_spans(names[end - n : end])) for n, end in zip(lengths, ends)]
        else:
            marked = lengths
        picked = pick_sentences(lengths, marked)
        return Showcase(examples.batch(picked), [examples.words_of(i, artifacts.chars) for i in picked])

    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        found = TaggingArtifacts.from_dict(artifacts)
        self._follow_tags(found.tags)
        return self.model_config.build(
            len(found.words),
            len(found.tags),
            num_chars=len(found.chars),
            num_shapes=len(conll.SHAPES),
            unk_id=UNK_ID,
            singletons_from=found.singletons_from,
            forbidden=forbidden_moves(found.tags),
            frozen_words=found.frozen_words,
            pretrained=self.pretrained,
        )

    def embedding_words(self, artifacts: dict[str, Any]) -> list[str]:
        return TaggingArtifacts.from_dict(artifacts).words

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
        names = TaggingArtifacts.from_dict(artifacts).tags
        spans = tag_set_scheme(names) is not None
        tokens = sum(o.num_tokens for o in outputs)
        if tokens == 0:
            return {metric: float("nan") for metric in (SPAN_METRICS if spans else TOKEN_METRICS)}
        pairs = [pair for o in outputs for pair in o.details]
        gold = ([names[i] for i in gold] for gold, _ in pairs)
        predicted = ([names[i] for i in predicted] for _, predicted in pairs)
        # the loss is a mean per token, so batches weigh by their tokens
        loss = sum(float(o.loss) * o.num_tokens for o in outputs) / tokens
        if not spans:
            scores = token_scores(gold, predicted, tags=names)
            return {"accuracy": scores.pop("accuracy"), "loss": loss, **scores}
        scores = entity_scores(gold, predicted, types=(tag[2:] for tag in names if tag != "O"))
        return {
            "f1": scores.pop("f1"),
            "precision": scores.pop("precision"),
            "recall": scores.pop("recall"),
            "loss": loss,
            **scores,
        }

    @torch.no_grad()
    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """The same validation sentences every epoch: gold and predicted spans (or tags), the differences in bold."""
        if self.showcase is None:
            return {}
        with evaluating(model):
            batch = cast(TaggingBatch, self.showcase.batch.to(next(model.parameters()).device))
            emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
            predicted = cast(SequenceTagger, model).decode(emissions, batch.lengths).cpu().tolist()
        names = TaggingArtifacts.from_dict(artifacts).tags
        shown = cast(TaggingBatch, self.showcase.batch)
        gold, lengths = shown.tags.tolist(), shown.lengths.tolist()
        sentences = [
            (words, [names[t] for t in g[:n]], [names[t] for t in p[:n]])
            for words, g, p, n in zip(self.showcase.texts, gold, predicted, lengths)
        ]
        if tag_set_scheme(names) is None:
            return {"tags": tagged_tokens(sentences)}
        return {"entities": tagged_sentences(sentences)}

    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text]).results[0]

    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """Each text split into words as CoNLL-2003 splits them and a tag per word; with span tags also the
        entities, with their place in the words and their text as written."""
        matches = [conll.split_words(text) for text in texts]
        words = [[match.group() for match in found] for found in matches]
        tags = self._tag(model, artifacts, words)
        spans = tag_set_scheme(TaggingArtifacts.from_dict(artifacts).tags) is not None
        results = []
        for text, found, sentence_words, sentence_tags in zip(texts, matches, words, tags):
            result: dict[str, Any] = {"tokens": sentence_words, "tags": sentence_tags}
            if spans:
                result["entities"] = [
                    {
                        "text": text[found[span.start].start() : found[span.end - 1].end()],
                        "type": span.type,
                        "start": span.start,
                        "end": span.end,
                    }
                    for span in entity_spans(sentence_tags)
                ]
            results.append(result)
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
        """{"tags": [the tags of each sentence]} for each sequence of `conll_sequences`."""
        words = [[word for sentence in sequence for word in sentence.words] for sequence in sequences]
        results = []
        for tags, sequence in zip(self._tag(model, artifacts, words), sequences):
            starts = itertools.accumulate((len(sentence.words) for sentence in sequence), initial=0)
            results.append({"tags": [tags[a : a + len(sentence.words)] for a, sentence in zip(starts, sequence)]})
        return Answers(results, tokens=sum(map(len, words)))

    @torch.no_grad()
    def _tag(self, model: nn.Module, artifacts: dict[str, Any], sequences: list[list[str]]) -> list[list[str]]:
        """The tag names of each sequence of words, the sequences run as one padded batch (assembled as
        training assembles its batches)."""
        model.eval()
        filled = [i for i, words in enumerate(sequences) if words]
        tags: list[list[str]] = [[] for _ in sequences]
        if not filled:
            return tags
        found = TaggingArtifacts.from_dict(artifacts)
        arrays = encode(sentences_of([sequences[i] for i in filled]), found.vocabularies(), None)
        examples = SplitBatches(arrays, 0, chars=self.model_config.char_dim > 0, shapes=self.model_config.shape_dim > 0)
        batch = cast(TaggingBatch, examples.batch(list(range(len(filled)))).to(next(model.parameters()).device))
        emissions = model(batch.tokens, batch.lengths, batch.chars, batch.shapes)
        predicted = cast(SequenceTagger, model).decode(emissions, batch.lengths).cpu().tolist()
        for i, ids, length in zip(filled, predicted, batch.lengths.tolist()):
            tags[i] = [found.tags[tag] for tag in ids[:length]]
        return tags

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        found = TaggingArtifacts.from_dict(artifacts)
        graph = tagger_graph(model, len(found.words), len(found.chars), len(conll.SHAPES))
        graph.sidecar = {
            "tags": found.tags,
            "decoding": decoding(model),
            "words": found.words,
            "lowercase": found.lowercase,
            # a word unknown as written is looked up lowercased (pretrained words beyond the training ones)
            "lowercase_fallback": found.frozen_words > 0,
            "chars": found.chars,
            "shapes": list(conll.SHAPES),
            "context_tokens": self.data_config.context_tokens,
        }
        return graph
