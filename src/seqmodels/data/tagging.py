"""Sequence-tagging data: its `data.*` keys (`TaggingData`), tagged sentences read from files, split, checked,
turned into ids once (the cache entry), and batched. Everything here runs without a Task.

Reading (`read_tagged`): CoNLL-U (detected from the file: `seqmodels.data.conllu`, UPOS or XPOS) or
whitespace columns (`seqmodels.data.conll`, the word and the tag from any columns), decoded by the one
encoding rule (`seqmodels.data.encoding`).

Splits (`read_splits`): train, val and test files; without a validation file a seeded share of the
training sentences (`data.val_fraction`); without a test file none. Before anything is built the tags
are checked (`check_tags`): more than one tag in training, span tags (`seqmodels.data.tag_schemes`) not
mixed with others, one scheme. IOB1 and IOB2 data is read as IOB2 (every span opens with `B-X`); IOBES
and BILOU keep their tags; other tag sets (parts of speech) are plain. A tag of validation or test that
training never shows is counted and kept: the model has an output for it that training never rewards,
so those words count as errors.

The cache entry (`build_entry`): word and character vocabularies from training alone, the tag names
of every split (`O` first for span tags), and each split as flat id arrays (`encode`). Batches
(`SplitBatches`): one sentence per example, or with `data.context_tokens` consecutive sentences of one
document together; the same arrays and the same batch assembly serve training and prediction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqmodels.contracts import Batch
from seqmodels.data import conll, conllu, ud_english_ewt
from seqmodels.data.batching import RaggedIds, pad_right
from seqmodels.data.config import FilesConfig
from seqmodels.data.conll import Sentence
from seqmodels.data.encoding import TextEncoding, read_text, split_lines
from seqmodels.data.pretrained import extend
from seqmodels.data.splits import seeded_split
from seqmodels.data.tag_schemes import (
    OUTSIDE,
    PREFIXES,
    detect_scheme,
    entity_spans,
    is_span_tag,
    split_tag,
    to_iob2,
)
from seqmodels.data.text import UNK_ID, flatten
from seqmodels.data.vocab import Vocabulary
from seqmodels.errors import ConfigError, DataError
from seqmodels.schema import setting

log = logging.getLogger("seqmodels")

SPLITS = ("train", "val", "test")


# -- reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    """Where a file's words and tags are. `tag`: a column file's column (from 0), or CoNLL-U's `upos` or
    `xpos`; None: the last column, or UPOS. `layout`: how a dataset's lines read, for errors."""

    word: int = 0
    tag: int | str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A tagged dataset a preset names (`data.dataset`): where its files are and how they read."""

    locate: Callable[[Path, bool], dict[str, Path]]  # (data.root, may download) -> split -> file
    columns: Columns


DATASETS = {
    "conll2003": Dataset(lambda root, _: conll.locate(root), Columns(layout=conll.LAYOUT)),
    "ud_english_ewt": Dataset(ud_english_ewt.locate, Columns(tag="upos")),
}


def dataset_files(
    dataset: str, root: Path, download: bool, files: dict[str, str | None]
) -> tuple[dict[str, Path], Columns | None]:
    """The files of `dataset` under `root`, or (`files`: the user's) the user's `files` by split; and the
    dataset's own columns (None for the user's files)."""
    if dataset != "files":
        found = DATASETS[dataset]
        return found.locate(Path(root), download), found.columns
    paths: dict[str, Path] = {}
    for split, name in files.items():
        if name is None:
            continue
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"data.{split}={name}: no such file (from {Path.cwd()})")
        paths[split] = path
    return paths, None


def read_tagged(path: Path, columns: Columns, encoding: TextEncoding) -> tuple[list[Sentence], str]:
    """The tagged sentences of a file, CoNLL-U or whitespace columns (detected from its lines), and what
    was detected (`CoNLL-U, UPOS`, `4 columns, word 0, tag 3`)."""
    lines = split_lines(read_text(path, encoding))
    tag = columns.tag
    if conllu.looks_like_conllu(lines):
        name = "upos" if tag is None else str(tag).lower()
        if name not in conllu.TAG_COLUMNS:
            raise DataError(
                f"{path} is CoNLL-U: data.tag_column={tag} names no tag field of it; use data.tag_column=upos or xpos"
            )
        return conllu.parse(lines, str(path), name), f"CoNLL-U, {name.upper()}"
    if isinstance(tag, str):
        raise DataError(
            f"{path} holds whitespace columns, not CoNLL-U: data.tag_column={tag} names no column of it; give "
            f"the tag's column number (0 the first)"
        )
    tag_column = -1 if tag is None else tag
    sentences = conll.parse(lines, str(path), word_column=columns.word, tag_column=tag_column, layout=columns.layout)
    width = next((len(line.split()) for line in lines if line.split()[:1] not in ([], [conll.DOCUMENT_START])), 0)
    return sentences, f"{width} columns, word {columns.word % max(width, 1)}, tag {tag_column % max(width, 1)}"


@dataclass
class TaggingData(FilesConfig):
    dataset: str = setting(
        "conll2003",
        "conll2003 | ud_english_ewt: the presets' data from data.root | files: the user's data.train (data.val, "
        "data.test): whitespace columns or CoNLL-U",
        choices=(*DATASETS, "files"),
    )
    word_column: int = setting(0, "column files: the word's column, counted from 0", minimum=0)
    tag_column: int | str | None = setting(
        None,
        "the tag's column: in column files its number (from 0), in CoNLL-U upos or xpos; null: the last "
        "column, or UPOS",
    )
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

    def check(self) -> None:
        if self.dataset == "files":
            if not self.train:
                raise ConfigError(
                    "task=tagging needs the training sentences: add data.train=FILE (one word and its tag per "
                    "line, or CoNLL-U; docs/your-data.md)"
                )
        else:
            given = [key for key in ("train", "val", "test") if getattr(self, key)]
            if given:
                raise ConfigError(
                    f"data.{given[0]} reads the user's files, but data.dataset={self.dataset} reads its own; "
                    f"use task=tagging for your files"
                )

    def columns(self) -> Columns:
        """Where the words and tags are: the preset dataset's own layout, with the keys' columns."""
        layout = DATASETS[self.dataset].columns.layout if self.dataset in DATASETS else None
        default = DATASETS[self.dataset].columns.tag if self.dataset in DATASETS else None
        return Columns(self.word_column, default if self.tag_column is None else self.tag_column, layout)


# -- splits and their checks ------------------------------------------------------------------------
@dataclass
class TaggedSplits:
    sentences: dict[str, list[Sentence]]  # train, val and (where there is one) test, tags as trained on
    sources: dict[str, str]  # each split's file, or how it was made
    files: dict[str, str]  # the file each split's sentences (and their line numbers) come from
    formats: dict[str, str]  # what each file was read as
    scheme: str | None  # the data's tag scheme as read (IOB1, IOB2, IOBES, BILOU), None: plain tags
    unseen: dict[str, dict[str, int]]  # val/test: the words of each tag training never shows


def read_splits(
    paths: dict[str, Path], columns: Columns, encoding: TextEncoding, *, val_fraction: float, seed: int
) -> TaggedSplits:
    """Read, split and check the tagged files (`paths`: train, and val and test where given)."""
    sentences: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    files: dict[str, str] = {}
    formats: dict[str, str] = {}
    for split in SPLITS:
        if split not in paths:
            continue
        sentences[split], formats[split] = read_tagged(paths[split], columns, encoding)
        sources[split] = files[split] = str(paths[split])
        log.info("%s: %s (%s)", split, paths[split], formats[split])
        if not sentences[split]:
            raise DataError(
                f"{paths[split]} holds no sentences; expected one word per line with its tag, blank lines "
                f"between sentences (or CoNLL-U)"
            )
    if "val" not in sentences:
        train = sentences["train"]
        kept, held = seeded_split(len(train), val_fraction, seed)
        sentences["train"], sentences["val"] = [train[i] for i in kept], [train[i] for i in held]
        sources["val"] = f"{len(held):,} of the {len(train):,} sentences of {sources['train']} (data.val_fraction)"
        files["val"] = files["train"]
        log.info(
            "no data.val: %d of the %d training sentences (data.val_fraction=%g, data.split_seed=%d) validate",
            len(held),
            len(train),
            val_fraction,
            seed,
        )
    if "test" not in sentences:
        log.info("no data.test: the run reports validation only")
    scheme = check_tags(sentences, files, columns.layout)
    if scheme in ("IOB1", "IOB2"):  # every span opens with B-X, so each tag says alone whether it opens one
        sentences = {
            split: [Sentence(s.words, to_iob2(s.tags), s.document, s.lines) for s in found]
            for split, found in sentences.items()
        }
    unseen = unseen_tags(sentences)
    for split, counts in unseen.items():
        log.warning(
            "%s: %d word(s) with tags training never shows (%s): the model cannot predict them; they count as errors",
            split,
            sum(counts.values()),
            ", ".join(f"{tag} {n}" for tag, n in counts.items()),
        )
    return TaggedSplits(sentences, sources, files, formats, scheme, unseen)


def check_tags(sentences: dict[str, list[Sentence]], files: dict[str, str], layout: str | None = None) -> str | None:
    """The scheme of the data's tags (`tag_schemes.detect_scheme`; None: plain tags), after the checks that
    would make a run learn nothing: training shows two tags or more, span tags are not mixed with other
    tags, and one scheme's prefixes are used."""
    training = Counter(tag for sentence in sentences["train"] for tag in sentence.tags)
    if len(training) < 2:
        (tag,) = training
        raise DataError(
            f"{files['train']}: every word has the tag {tag!r}; a tagger needs two tags or more to learn "
            f"(is data.tag_column the tags' column?)"
        )
    names = {tag for found in sentences.values() for sentence in found for tag in sentence.tags}
    prefixes = {part[0] for part in map(split_tag, names) if part is not None}
    odd = {tag for tag in names if not is_span_tag(tag)}
    if prefixes and odd:
        split, sentence, position = next(
            (split, sentence, position)
            for split, found in sentences.items()
            for sentence in found
            for position, tag in enumerate(sentence.tags)
            if tag in odd
        )
        expected = f"expected '{layout}': " if layout else ""
        raise DataError(
            f"{files[split]}:{sentence.lines[position] + 1}: {expected}the tag {sentence.tags[position]!r} is not "
            f"a span tag (O, or B-, I-, E-, S-, L-, U- and a type) though the data's other tags are (e.g. "
            f"{min(names - odd - {OUTSIDE})!r}); fix the tag, or check data.tag_column"
        )
    if all(prefixes & own for own in PREFIXES.values()):
        raise DataError(
            f"{files['train']}: the tags mix IOBES (E-, S-) and BILOU (L-, U-) prefixes; write them in one scheme"
        )
    if not prefixes:
        return None
    return detect_scheme(sentence.tags for found in sentences.values() for sentence in found)


def unseen_tags(sentences: dict[str, list[Sentence]]) -> dict[str, dict[str, int]]:
    """For val and test, the number of words of each tag that training never shows."""
    trained = {tag for sentence in sentences["train"] for tag in sentence.tags}
    unseen = {}
    for split in ("val", "test"):
        counts = Counter(tag for s in sentences.get(split, []) for tag in s.tags if tag not in trained)
        if counts:
            unseen[split] = dict(sorted(counts.items()))
    return unseen


# -- vocabularies and ids -----------------------------------------------------------------------------
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


@dataclass(frozen=True)
class TaggingArtifacts:
    """What a tagger's data preparation hands to its model and to prediction, saved in every checkpoint
    (as the plain dict `as_dict` writes)."""

    words: list[str]
    chars: list[str]
    tags: list[str]
    lowercase: bool
    singletons_from: int  # the word ids from here on were seen once in training
    frozen_words: int = 0  # the last ids: pretrained words beyond the training vocabulary

    @classmethod
    def from_dict(cls, artifacts: dict[str, Any]) -> TaggingArtifacts:
        words = list(artifacts["words"])
        return cls(
            words,
            list(artifacts["chars"]),
            list(artifacts["tags"]),
            bool(artifacts["lowercase"]),
            int(artifacts.get("singletons_from", len(words))),
            int(artifacts.get("frozen_words", 0)),
        )

    def as_dict(self) -> dict[str, Any]:
        plain = {
            "words": self.words,
            "chars": self.chars,
            "tags": self.tags,
            "lowercase": self.lowercase,
            "singletons_from": self.singletons_from,
        }
        return {**plain, "frozen_words": self.frozen_words} if self.frozen_words else plain

    def vocabularies(self) -> Vocabularies:
        return Vocabularies(
            Vocabulary(self.words), Vocabulary(self.chars), self.lowercase, lowercase_fallback=self.frozen_words > 0
        )


def encode(sentences: list[Sentence], vocabularies: Vocabularies, tag_ids: dict[str, int] | None) -> dict[str, Any]:
    """A split as flat id arrays: words and their `offsets` per sentence, tags (0 where `tag_ids` is None),
    characters and their offsets per word, word shapes, and each sentence's document."""
    flat_words, offsets = flatten([vocabularies.word_ids(s.words) for s in sentences])
    flat_chars, char_offsets = flatten([ids for s in sentences for ids in vocabularies.char_ids(s.words)])
    tags = [[tag_ids[t] for t in s.tags] if tag_ids is not None else [0] * len(s.words) for s in sentences]
    return {
        "words": flat_words,
        "offsets": offsets,
        "tags": flatten(tags)[0],
        "chars": flat_chars,
        "char_offsets": char_offsets,
        "shapes": flatten([vocabularies.shape_ids(s.words) for s in sentences])[0],
        "documents": torch.tensor([s.document for s in sentences], dtype=torch.int64),
    }


def tag_names(splits: TaggedSplits) -> list[str]:
    """Every split's tags, so every gold tag has an id: `O` first for span tags (the id padding holds)."""
    names = {tag for found in splits.sentences.values() for sentence in found for tag in sentence.tags}
    if splits.scheme is None:
        return sorted(names)
    return [OUTSIDE, *sorted(names - {OUTSIDE})]


def build_entry(splits: TaggedSplits, min_freq: int, lowercase: bool, candidates: list[str]) -> dict[str, Any]:
    """The cache entry: vocabularies, tags, each split's arrays (`encode`) and its statistics.
    `candidates`: pretrained words to keep beyond the training vocabulary (`tasks.vectors`)."""
    sentences = splits.sentences
    # Words and characters come from the training split only: validation and test words
    # it has not seen map to <unk>, as a user's new words do.
    train_words = [word for sentence in sentences["train"] for word in sentence.words]
    counts = Counter(w.lower() if lowercase else w for w in train_words)
    words = Vocabulary.build(counts, min_freq)
    trainable = len(words)
    # Pretrained words training never saw come after its words, so a validation, test or user's
    # word that the vectors know gets its vector: the vocabulary still comes from training alone.
    beyond = extend(words.strings, candidates)
    words = Vocabulary([*words.strings, *beyond])
    chars = Vocabulary.build(Counter(char for word in train_words for char in word))
    tags = tag_names(splits)
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    vocabularies = Vocabularies(words, chars, lowercase, lowercase_fallback=bool(beyond))
    entry: dict[str, Any] = {
        "words": words.strings,
        "chars": chars.strings,
        "tags": tags,
        "scheme": splits.scheme,
        "sources": splits.sources,
        "formats": splits.formats,
        "unseen": splits.unseen,
        "stats": {},
        # most frequent first, so the words seen once are the ids from here on
        "singletons_from": next(
            (i for i, w in enumerate(words.strings[:trainable]) if i > UNK_ID and counts[w] == 1), trainable
        ),
        "frozen_words": len(beyond),
    }
    for name, found in sentences.items():
        entry[name] = encode(found, vocabularies, tag_ids)
        spans = Counter(span.type for s in found for span in entity_spans(s.tags)) if splits.scheme else Counter()
        entry["stats"][name] = {
            "sentences": len(found),
            "tokens": int(entry[name]["offsets"][-1]),
            "entities": dict(spans),
            "unknown": float((entry[name]["words"] == UNK_ID).float().mean()),
        }
    return entry


# -- batches ------------------------------------------------------------------------------------------
@dataclass
class TaggingBatch(Batch):
    tokens: torch.Tensor  # (B, T) right-padded word ids
    lengths: torch.Tensor  # (B,) on the CPU (`Batch.host_fields`)
    tags: torch.Tensor  # (B, T) tag ids; padding positions hold 0 and are masked out
    chars: torch.Tensor | None = None  # (B, T, W) character ids, only when the model reads them
    shapes: torch.Tensor | None = None  # (B, T) conll.SHAPES ids, only when the model reads them
    # with document context: the lengths of the sentences each row is made of, so that
    # spans are scored sentence by sentence, as conlleval does
    sentences: list[list[int]] | None = None


class SplitBatches:
    """A split's examples (`encode`'s arrays): one sentence each, or with `context_tokens` > 0 runs of
    consecutive sentences of one document (`conll.context_starts`), which lie one after another in the
    arrays; `batch(indices)` assembles any of them as one padded batch."""

    def __init__(self, split: dict[str, Any], context_tokens: int, *, chars: bool, shapes: bool) -> None:
        sentence_lengths = split["offsets"].diff().tolist()
        starts = conll.context_starts(sentence_lengths, split["documents"].tolist(), context_tokens)
        offsets = split["offsets"][[*starts, len(sentence_lengths)]]
        self.words = RaggedIds(split["words"], offsets)
        self.tags = RaggedIds(split["tags"], offsets)
        self.shapes = RaggedIds(split["shapes"], offsets)
        self.sentences = [sentence_lengths[a:b] for a, b in zip(starts, [*starts[1:], len(sentence_lengths)])]
        self.context = context_tokens > 0
        self.flat_chars, self.char_offsets = split["chars"], split["char_offsets"]
        self.uses_chars, self.uses_shapes = chars, shapes

    def lengths(self) -> torch.Tensor:
        return self.words.lengths()

    def batch(self, indices: list[int]) -> TaggingBatch:
        tokens, lengths = pad_right([self.words[i] for i in indices])
        tag_ids, _ = pad_right([self.tags[i] for i in indices], pad_value=0)
        chars = None
        if self.uses_chars:
            real = torch.arange(tokens.shape[1]) < lengths.unsqueeze(1)
            positions = self.words.offsets[indices].unsqueeze(1) + torch.arange(tokens.shape[1])
            spelled = self.spelling(positions[real])  # the batch's real words, in the order of tokens[real]
            chars = torch.zeros(*tokens.shape, spelled.shape[1], dtype=torch.long)
            chars[real] = spelled
        shapes = pad_right([self.shapes[i] for i in indices])[0] if self.uses_shapes else None
        sentences = [self.sentences[i] for i in indices] if self.context else None
        return TaggingBatch(tokens, lengths, tag_ids, chars, shapes, sentences)

    def spelling(self, word_index: torch.Tensor) -> torch.Tensor:
        """(N, W) the character ids of the words at `word_index` of the flat arrays, 0-padded to the longest."""
        starts = self.char_offsets[word_index]
        lengths = self.char_offsets[word_index + 1] - starts
        positions = torch.arange(max(int(lengths.max()), 1) if len(lengths) else 1)
        index = starts.unsqueeze(1) + positions
        real = positions < lengths.unsqueeze(1)
        return torch.where(real, self.flat_chars[index.clamp(max=max(len(self.flat_chars) - 1, 0))].long(), 0)

    def words_of(self, example: int, chars: list[str]) -> list[str]:
        """The words of an example, spelled from the characters (the word vocabulary would show <unk>)."""
        start, end = int(self.words.offsets[example]), int(self.words.offsets[example + 1])
        flat, offsets = self.flat_chars.tolist(), self.char_offsets.tolist()
        return ["".join(chars[c] for c in flat[offsets[p] : offsets[p + 1]]) for p in range(start, end)]


def sentences_of(sequences: list[list[str]]) -> list[Sentence]:
    """Word sequences (a user's texts, or runs of a file's sentences) as untagged sentences, one per example."""
    return [Sentence(words, []) for words in sequences]
