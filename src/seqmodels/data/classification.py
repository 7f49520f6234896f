"""Text classification data, from the files to the cached splits a classifier trains on.

`data.dataset` picks where the labelled texts come from:

- `imdb`: IMDB's reviews (`data.imdb`); its validation reviews are a seeded random `data.val_fraction` of
  the training reviews, the same in every run (`data.split_seed`), so runs stay comparable.
- `sst5`: the Stanford Sentiment Treebank's sentences (`data.sst`), its own dev and test sets; with
  `data.phrases=true` training reads every labelled phrase of the training trees.
- `files`: the user's `data.train` (and `data.val`, `data.test`) in any format of `data.labelled_text`.
  Without `data.val`, a stratified, seeded `data.val_fraction` of the training examples validates;
  without `data.test`, there is no test set and the run reports validation only.

Then, in this order: `data.train_examples` keeps a stratified, seeded subset of the training examples
(after the validation split, so validation stays the same); the label set is the training labels'
(a validation or test label training never saw is counted in a warning and scored as an error); the
word tokenizer is trained on the training texts (all of them, also those `train_examples` leaves
unlabelled); every split is tokenized. The result is one cache entry of tensors and strings
(`build_splits`), keyed on the files and every setting that shapes it (`cache_settings`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqmodels.data import imdb, sst
from seqmodels.data.config import FilesConfig
from seqmodels.data.labelled_text import Columns, LabelledTexts, check_examples, label_order, read_labelled
from seqmodels.data.pretrained import extend
from seqmodels.data.splits import seeded_split, stratified_split, stratified_subset
from seqmodels.data.text import encode, extend_vocabulary, flatten, tokenizer_words, train_word_tokenizer
from seqmodels.errors import ConfigError, DataError
from seqmodels.schema import setting

log = logging.getLogger("seqmodels")

DATASETS = ("imdb", "sst5", "files")
SPLITS = ("train", "val", "test")
IMDB_LABELS = ("negative", "positive")  # imdb.LABELS' neg and pos, as predictions name them
UNSEEN = -100  # a validation or test label training never saw: cross-entropy leaves it out, metrics count it wrong
CLASS_WEIGHTS = ("none", "balanced")
ENTRY_LAYOUT = 2  # what a cache entry holds (part of its key: an entry of another layout is never read)
Read = list[tuple[str, str]]  # what was read, as (what, how) lines of the start-up summary


@dataclass
class ClassificationData(FilesConfig):
    dataset: str = setting(
        "imdb",
        "imdb | sst5: the presets' data from data.root | files: the user's data.train (data.val, data.test)",
        choices=DATASETS,
    )
    text_column: list[int | str] = setting(
        ["text"],
        "the text's column (a header's name, a JSON key, or a 0-based index); several are joined, e.g. [title,body]",
        hint="name the text's columns by name or 0-based index, e.g. text or [title,body] or 1",
    )
    label_column: int | str = setting("label", "the label's column (a header's name, a JSON key, or a 0-based index)")
    header: bool | None = setting(
        None, "CSV/TSV: whether the first row names the columns; null: yes when a column is given by name"
    )
    label_separator: str | None = setting(
        None,
        "multi-label: a label cell holds several labels split at this string (e.g. '|'); JSON Lines may give a "
        "list of labels instead",
    )
    threshold: float = setting(
        0.5,
        "multi-label: a label is predicted when its probability is at least this",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    class_weights: str = setting(
        "none",
        "none | balanced: weigh each label's loss by n / (labels x its count) (multi-label: the positive term by "
        "negatives / positives), for imbalanced data",
        choices=CLASS_WEIGHTS,
    )
    vocab_size: int = setting(30000, "most frequent training words kept (plus <pad>, <unk>)", minimum=1)
    min_freq: int = setting(2, "rarer words map to <unk>", minimum=1)
    max_length: int | None = setting(400, "tokens kept per text; longer texts are cut; null: all", minimum=1)
    keep: str = setting(
        "head",
        "head: the first max_length tokens | tail: the last ones",
        choices=("head", "tail"),
        hint=" (head: first tokens, tail: last tokens)",
    )
    lowercase: bool = setting(True, "lowercase every text before tokenizing")
    train_examples: int | None = setting(
        None,
        "train on a stratified subset of this many training examples (drawn after the validation split, seeded "
        "by `seed`); the vocabulary still comes from every training text; null: all",
        minimum=1,
    )
    phrases: bool = setting(
        False, "sst5: train on every labelled phrase of the training trees; validation and test stay sentences"
    )

    def check(self) -> None:
        if self.dataset == "files":
            if not self.train:
                raise ConfigError(
                    "task=classification needs the training examples: add data.train=FILE (CSV, TSV, JSON Lines, "
                    "fastText lines, or a folder per label; docs/your-data.md)"
                )
        else:
            given = [key for key in ("train", "val", "test") if getattr(self, key)]
            if given:
                raise ConfigError(
                    f"data.{given[0]} reads the user's files, but data.dataset={self.dataset} reads its own; "
                    f"use task=classification for your files"
                )
        if self.phrases and self.dataset != "sst5":
            raise ConfigError(
                f"data.phrases=true reads the phrases of SST's trees; data.dataset={self.dataset} has none"
            )

    def columns(self) -> Columns:
        return Columns(tuple(self.text_column), self.label_column, self.header, self.label_separator)

    def name(self) -> str:
        """The data in a word, for tables: the preset, or the training file's name."""
        return Path(self.train).name if self.dataset == "files" and self.train else self.dataset


@dataclass(frozen=True)
class ClassifierArtifacts:
    """What a classifier's data preparation hands to its model and to prediction, stored in every checkpoint
    (as `as_dict`: the keys a single-label run has always had, the others only where they apply)."""

    tokenizer: str  # the HF tokenizers JSON: it lowercases and cuts as training did
    labels: list[str]  # the label names, in the order of the model's outputs
    vocab_size: int
    frozen_words: int = 0  # pretrained words beyond the training vocabulary (`tasks.vectors`)
    multi_label: bool = False  # sigmoid outputs, any number of labels per text

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "tokenizer": self.tokenizer,
            "labels": list(self.labels),
            "vocab_size": self.vocab_size,
        }
        if self.frozen_words:
            found["frozen_words"] = self.frozen_words
        if self.multi_label:
            found["multi_label"] = True
        return found

    @classmethod
    def from_dict(cls, artifacts: dict[str, Any]) -> ClassifierArtifacts:
        return cls(
            artifacts["tokenizer"],
            list(artifacts["labels"]),
            artifacts["vocab_size"],
            artifacts.get("frozen_words", 0),
            artifacts.get("multi_label", False),
        )

    def words(self) -> list[str]:
        """The tokenizer's words, by id: what the rows of the word embedding stand for."""
        return tokenizer_words(self.tokenizer)


@dataclass
class Examples:
    """One split's texts and each text's labels, before tokenizing."""

    texts: list[str]
    labels: list[tuple[str, ...]]
    multi_label: bool = False  # the labels came as lists, or split at data.label_separator

    def take(self, indices: Sequence[int]) -> Examples:
        return Examples([self.texts[i] for i in indices], [self.labels[i] for i in indices], self.multi_label)


@dataclass
class Sources:
    """Where a dataset's splits come from: the files that key the cache, and how to read them."""

    files: list[Path]
    names: dict[str, str] = field(default_factory=dict)  # split -> the file or folder, for messages


def locate(data: ClassificationData) -> Sources:
    """The files of `data`'s dataset (downloading a missing preset if allowed); nothing is read yet."""
    if data.dataset == "imdb":
        source = imdb.locate(Path(data.root), allow_download=data.download)
        return Sources([source], {"train": str(source), "test": str(source)})
    if data.dataset == "sst5":
        source = sst.locate(Path(data.root), allow_download=data.download)
        return Sources([source], {split: f"{source}/{name}" for split, name in sst.FILES.items()})
    names = {split: str(Path(path).expanduser()) for split in SPLITS if (path := getattr(data, split))}
    for split, name in names.items():
        if not Path(name).exists():
            raise DataError(f"data.{split}={name}: no such file or folder")
    return Sources([Path(name).resolve() for name in names.values()], names)


def cache_settings(data: ClassificationData, subset_seed: int) -> dict[str, Any]:
    """Every setting the prepared splits depend on (with the files, the cache key)."""
    keys = ("dataset", "vocab_size", "min_freq", "max_length", "keep", "lowercase", "val_fraction", "split_seed")
    settings: dict[str, Any] = {key: getattr(data, key) for key in keys}
    settings["entry"] = ENTRY_LAYOUT
    settings["encoding"] = [data.encoding, data.encoding_errors]
    if data.dataset == "files":
        settings["columns"] = [list(data.text_column), data.label_column, data.header, data.label_separator]
    if data.phrases:
        settings["phrases"] = True
    if data.train_examples is not None:
        settings["train_examples"] = [data.train_examples, subset_seed]
    return settings


def read_splits(
    data: ClassificationData, sources: Sources
) -> tuple[dict[str, Examples | None], list[str] | None, Read]:
    """Each split's examples (test None where there is none), the preset's label names in their order (None:
    from the data), and lines that say what was read."""
    splits: dict[str, Examples | None]
    read: Read = []
    if data.dataset == "imdb":
        reviews = imdb.read(sources.files[0], data.text_encoding())
        names = list(IMDB_LABELS)
        train = Examples(reviews["train"].texts, [(names[y],) for y in reviews["train"].labels])
        train_index, val_index = seeded_split(len(train.texts), data.val_fraction, data.split_seed)
        test = Examples(reviews["test"].texts, [(names[y],) for y in reviews["test"].labels])
        splits = {"train": train.take(train_index.tolist()), "val": train.take(val_index.tolist()), "test": test}
        return splits, names, []
    if data.dataset == "sst5":
        trees = sst.read(sources.files[0], data.text_encoding())
        sentences = {split: [tree.sentence for tree in found] for split, found in trees.items()}
        if data.phrases:
            sentences["train"] = sst.phrases_of(trees["train"])
        splits = {
            split: Examples([" ".join(p.words) for p in phrases], [(sst.LABELS[p.label],) for p in phrases])
            for split, phrases in sentences.items()
        }
        if data.phrases:
            read = [("training phrases", f"{len(sentences['train']):,} distinct, of {len(trees['train']):,} trees")]
        return splits, list(sst.LABELS), read
    return _read_files(data, sources)


def _read_files(data: ClassificationData, sources: Sources) -> tuple[dict[str, Examples | None], None, Read]:
    columns, encoding = data.columns(), data.text_encoding()
    found: dict[str, LabelledTexts] = {}
    for split, name in sources.names.items():
        found[split] = read_labelled(Path(name), columns, encoding)
        check_examples(found[split], f"data.{split}")
    train_labels = found["train"].labels or []
    check_labels(
        sorted({label for labels in train_labels for label in labels}), len(train_labels), sources.names["train"]
    )
    read = [(f"data.{split}", f"{examples.source}: {examples.describe()}") for split, examples in found.items()]
    multi_label = any(examples.multi_label for examples in found.values())
    splits: dict[str, Examples | None] = {
        split: Examples(found[split].texts, found[split].labels or [], multi_label) if split in found else None
        for split in SPLITS
    }
    train = splits["train"]
    assert train is not None
    if splits["val"] is None:
        keys = _strata(train.labels)
        train_index, val_index = stratified_split(keys, data.val_fraction, data.split_seed)
        splits["train"], splits["val"] = train.take(train_index), train.take(val_index)
        held = f"none: data.val_fraction={data.val_fraction:g} of the training examples, stratified by label"
        read.insert(1, ("data.val", f"{held} (data.split_seed={data.split_seed})"))
    return splits, None, read


def check_labels(names: Sequence[str], examples: int, source: str) -> None:
    """Refuse training examples of fewer than two labels: a classifier has nothing to tell apart."""
    if not names:
        raise DataError(f"data.train={source}: no example has a label")
    if len(names) < 2:
        raise DataError(
            f"data.train={source}: every example has the label {names[0]!r} (of {examples:,}); a classifier "
            f"needs at least two labels"
        )


def _strata(labels: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """What a stratified split keeps in proportion: each text's label set; sets seen once share one stratum, so
    multi-label data with many combinations still splits."""
    counts = Counter(labels)
    return [labels_ if counts[labels_] > 1 else ("",) for labels_ in labels]


def build_splits(
    data: ClassificationData,
    sources: Sources,
    *,
    candidates: Sequence[str] = (),
    subset_seed: int = 0,
) -> dict[str, Any]:
    """The cache entry: the tokenizer (trained on the training texts, extended by the pretrained `candidates`,
    `tasks.vectors`), the labels, and each split's token ids (flat + offsets) and label tensors."""
    splits, names, read = read_splits(data, sources)
    train = splits["train"]
    assert train is not None and splits["val"] is not None
    vocabulary_texts = train.texts
    if data.train_examples is not None and data.train_examples < len(train.texts):
        keep = stratified_subset(_strata(train.labels), data.train_examples, subset_seed)
        read.append(
            (
                "data.train_examples",
                f"{len(keep):,} of {len(train.texts):,} training examples (stratified, seed {subset_seed})",
            )
        )
        train = splits["train"] = train.take(keep)
    multi_label = train.multi_label
    if names is None:
        names = label_order([label for labels in train.labels for label in labels])
    check_labels(names, len(train.texts), sources.names.get("train", data.dataset))
    tokenizer = train_word_tokenizer(
        vocabulary_texts, vocab_size=data.vocab_size, min_freq=data.min_freq, lowercase=data.lowercase
    )
    full_lengths = torch.tensor([len(e.ids) for e in tokenizer.encode_batch(train.texts)])
    # Pretrained words training never saw come after its words, so a validation, test or user's word that
    # the vectors know gets its vector: the vocabulary still comes from training alone.
    beyond = extend(list(tokenizer.get_vocab()), candidates)
    extend_vocabulary(tokenizer, beyond)
    if data.max_length:
        tokenizer.enable_truncation(data.max_length, direction="right" if data.keep == "head" else "left")
    entry: dict[str, Any] = {
        "tokenizer": tokenizer.to_str(),
        "vocab_size": tokenizer.get_vocab_size(),
        "frozen_words": len(beyond),
        "truncated": float((full_lengths > (data.max_length or 10**12)).float().mean()),
        "labels": names,
        "multi_label": multi_label,
        "read": read,
        "has_test": splits["test"] is not None,
    }
    index = {name: i for i, name in enumerate(names)}
    for split in SPLITS:
        examples = splits[split] or Examples([], [])
        flat, offsets = flatten(encode(tokenizer, examples.texts, lowercase_fallback=bool(beyond)))
        entry[split] = {"flat": flat, "offsets": offsets, **_label_tensors(examples.labels, index, multi_label)}
    entry["label_counts"] = _label_counts(entry["train"], len(names), multi_label)
    return entry


def _label_tensors(labels: Sequence[tuple[str, ...]], index: dict[str, int], multi_label: bool) -> dict[str, Any]:
    """Single-label: `labels` (N,) int64 ids, UNSEEN for a label training never saw. Multi-label: `labels`
    (N, C) 0/1 and `missed` (N,) how many of a text's labels training never saw; also the unseen labels."""
    unseen = Counter(label for labels_ in labels for label in labels_ if label not in index)
    if not multi_label:
        ids = torch.tensor([index.get(labels_[0], UNSEEN) for labels_ in labels], dtype=torch.int64)
        return {"labels": ids, "unseen": dict(unseen)}
    hot = torch.zeros(len(labels), len(index), dtype=torch.uint8)
    missed = torch.zeros(len(labels), dtype=torch.int64)
    for row, labels_ in enumerate(labels):
        for label in labels_:
            if label in index:
                hot[row, index[label]] = 1
            else:
                missed[row] += 1
    return {"labels": hot, "missed": missed, "unseen": dict(unseen)}


def _label_counts(split: dict[str, Any], classes: int, multi_label: bool) -> list[int]:
    labels = split["labels"]
    if multi_label:
        return labels.sum(0).tolist()
    return torch.bincount(labels[labels >= 0], minlength=classes).tolist()


def unseen_warning(entry: dict[str, Any], split: str, name: str) -> str | None:
    """One line when `split`'s examples hold labels training never saw: how many, and that they count as errors."""
    unseen: dict[str, int] = entry[split]["unseen"]
    if not unseen:
        return None
    total = sum(unseen.values())
    shown = ", ".join(repr(label) for label in list(unseen)[:5]) + (", ..." if len(unseen) > 5 else "")
    noun = "label" if len(unseen) == 1 else "labels"
    return (
        f"{name}: {total:,} {split} label{'s' if total != 1 else ''} never seen in training ({len(unseen)} {noun}: "
        f"{shown}); they count as errors in the {split} metrics"
    )


def class_weights(counts: Sequence[int], examples: int, multi_label: bool) -> torch.Tensor:
    """`balanced`: n / (labels x count) per label (a label's examples weigh as much in all as another's);
    multi-label: negatives / positives per label, the weight of its positive term."""
    counts_ = torch.tensor(counts, dtype=torch.float64).clamp(min=1)
    if multi_label:
        return ((examples - counts_).clamp(min=1) / counts_).float()
    return (sum(counts) / (len(counts) * counts_)).float()
