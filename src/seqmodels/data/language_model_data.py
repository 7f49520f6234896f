"""A language model's data: the `data.*` keys of `task=ptb|wikitext2|imdb_lm|words|chars`, the corpus read
into numbered token streams (cached), laid out as parallel streams and cut into windows (`data.corpus`).

Word corpora (PTB, WikiText-2) keep their own vocabulary; IMDB's training reviews and a user's word file
keep the most frequent training words (`data.vocab_size`, `data.min_freq`); a character file numbers its
characters. `data.reverse=true` reads every split from its end: a backward language model. Text files are
decoded by the one rule (`data.encoding`, `seqmodels.data.encoding`), IMDB's reviews included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqmodels.contracts import Batch, TaskData
from seqmodels.data import corpus, imdb, ptb, wikitext2
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.config import DataConfig
from seqmodels.data.documents import capped_vocabulary, imdb_streams, word_file_tokens
from seqmodels.data.encoding import TextEncoding
from seqmodels.errors import ConfigError, DataError
from seqmodels.schema import setting

log = logging.getLogger("seqmodels")

WORD_CORPORA = {"ptb": ptb, "wikitext2": wikitext2}
CHARACTERS = "chars"  # data.dataset for the characters of the file at data.path
WORDS = "words"  # data.dataset for the words of the file at data.path
IMDB = "imdb"  # data.dataset for IMDB's training reviews, labelled and unlabelled (never the test reviews)
FILE_DATASETS = (CHARACTERS, WORDS)  # read data.path, split by data.val_fraction and data.test_fraction
SPLITS = ("train", "val", "test")


@dataclass
class LanguageModelData(DataConfig):
    dataset: str = setting(
        "ptb",
        f"a word corpus ({', '.join(WORD_CORPORA)}), {IMDB} (its training and unsup reviews as a stream of "
        f"documents), {WORDS} or {CHARACTERS}: the words or characters of data.path",
        choices=(*WORD_CORPORA, IMDB, WORDS, CHARACTERS),
    )
    path: str | None = setting(None, "the text file of data.dataset=chars or words (decoded by data.encoding)")
    val_fraction: float = setting(
        0.05,
        "chars, words: the share of the file after the training part, for validation; imdb: the share "
        "of reviews held out for validation",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    test_fraction: float = setting(
        0.05,
        "chars, words: the share at the end of the file, for test; imdb: the share of reviews held out for test",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    vocab_size: int | None = setting(
        None, "words, imdb: the most frequent training words kept (rarer ones are <unk>); null: all", minimum=1
    )
    min_freq: int = setting(1, "words, imdb: words seen fewer times in training are <unk>", minimum=1)
    reverse: bool = setting(
        False, "read every text backwards (last token first): a backward language model (docs/transfer.md)"
    )
    batch_size: int = setting(20, "parallel streams of text in training", minimum=1)
    eval_batch_size: int | None = setting(10, "streams in validation and test; null: batch_size", minimum=1)
    bptt: int = setting(
        35, "steps per window; the hidden state carries over (detached) into the next window", minimum=1
    )

    def check(self) -> None:
        if self.dataset in FILE_DATASETS and not self.path:
            raise ConfigError(f"task={self.dataset} needs a text file: add data.path=/path/to/file.txt")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} "
                f"are impossible; each must be in (0, 1) and together below 1 (e.g. 0.05 and 0.05)"
            )


@dataclass
class TextWindow(Batch):
    inputs: torch.Tensor  # (streams, steps) token ids
    targets: torch.Tensor  # (streams, steps): the inputs shifted by one; corpus.IGNORE past the end of the text
    # the targets that are tokens, counted where the window is assembled (on the CPU) and carried along
    # by `to`, so that a training step counts them without reading the device
    num_targets: int = -1

    host_fields = ()  # no lengths: every stream runs the whole window

    def __post_init__(self) -> None:
        if self.num_targets < 0:
            self.num_targets = int((self.targets != corpus.IGNORE).sum())


@dataclass(frozen=True)
class LanguageModelArtifacts:
    """What a language model's data preparation hands to its model and to prediction, saved in every checkpoint
    (as the plain dict `as_dict` writes)."""

    level: str  # "word" or "char": how tokens are joined back into text
    vocabulary: list[str]  # the tokens, by id: the rows of the embedding and the outputs of the model
    unknown: str | None  # the token that stands for any other (None: the corpus has none)
    start: str  # the token a prompt or a sample starts from

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "vocabulary": self.vocabulary,
            "vocab_size": self.vocab_size,
            "unknown": self.unknown,
            "start": self.start,
        }

    @classmethod
    def from_dict(cls, artifacts: dict[str, Any]) -> LanguageModelArtifacts:
        return cls(artifacts["level"], list(artifacts["vocabulary"]), artifacts["unknown"], artifacts["start"])

    def join(self, tokens: list[str]) -> str:
        """Tokens as text: words with spaces between them, characters as they are."""
        return " ".join(tokens) if self.level == "word" else "".join(tokens)


@dataclass
class TextStreams:
    """A prepared corpus: its windows, artifacts and summary (`data`), the artifacts as their record, and the
    training split's ids in reading order (what word vectors are matched against)."""

    data: TaskData
    artifacts: LanguageModelArtifacts
    train_ids: torch.Tensor


def cache_settings(config: LanguageModelData) -> dict[str, Any]:
    """What the cached id streams depend on (the layout does not: it is cheap to redo), the decoding of
    text files included."""
    decoding = {"encoding": config.encoding, "encoding_errors": config.encoding_errors}
    if config.dataset in WORD_CORPORA:
        return {"dataset": config.dataset, "level": "word", **decoding}
    fractions = {"val_fraction": config.val_fraction, "test_fraction": config.test_fraction}
    if config.dataset in (IMDB, WORDS):
        vocabulary = {"vocab_size": config.vocab_size, "min_freq": config.min_freq}
        return {"dataset": config.dataset, "level": "word", **vocabulary, **fractions, **decoding}
    return {"dataset": CHARACTERS, "level": "char", **fractions, **decoding}


def locate(config: LanguageModelData) -> dict[str, Path]:
    """The files the corpus is read from, by role (a word corpus' splits, IMDB's archive, data.path)."""
    if config.dataset in WORD_CORPORA:
        return WORD_CORPORA[config.dataset].locate(Path(config.root), allow_download=config.download)
    if config.dataset == IMDB:
        return {"reviews": imdb.locate(Path(config.root), allow_download=config.download)}
    path = Path(config.path or "").expanduser()
    if config.path is None or not path.is_file():
        raise DataError(f"data.path={config.path} is not a file; point it at a text file")
    return {"text": path.resolve()}


def prepare_language_model_data(config: LanguageModelData) -> TextStreams:
    """The corpus of `config` as windows of parallel streams, read once and cached."""
    settings = cache_settings(config)
    sources = locate(config)
    key = cache_key(list(sources.values()), {**settings, "vocabulary": "most frequent first"})
    name = settings["dataset"]
    encoding = config.text_encoding()
    entry, _ = cached(Path(config.cache_dir), name, key, lambda: build_streams(sources, settings, encoding))
    # a backward language model reads each split from its end (documents in reverse order, each backwards)
    ids = {split: entry[split].flip(0) if config.reverse else entry[split] for split in SPLITS}
    streams = {"train": corpus.lay_out(ids["train"], config.batch_size)}
    for split in ("val", "test"):
        streams[split] = corpus.lay_out(ids[split], config.eval_batch_size or config.batch_size)
    loaders = {split: corpus.StreamWindows(streams[split], config.bptt, TextWindow) for split in streams}
    vocabulary = entry["vocabulary"]
    if settings["level"] == "word":
        start = corpus.EOS  # a prompt starts a new sentence, as every line of the corpus follows an <eos>
    else:
        start = "\n" if "\n" in vocabulary else vocabulary[1]  # [0] is the unknown
    artifacts = LanguageModelArtifacts(settings["level"], vocabulary, entry["unknown"], start)
    train = streams["train"]
    summary = {
        "dataset": f"{name} ({', '.join(str(path) for path in sources.values())})",
        "tokens train / val / test": " / ".join(f"{len(entry[split]):,}" for split in SPLITS),
        "vocabulary": f"{len(vocabulary):,} {'words' if settings['level'] == 'word' else 'characters'}",
        "train layout": f"{train.inputs.shape[0]} streams x {train.inputs.shape[1]:,} steps, "
        f"{len(loaders['train']):,} windows of {config.bptt}",
        **(
            {"documents train / val / test": " / ".join(f"{n:,}" for n in entry["documents"].values())}
            if "documents" in entry
            else {}
        ),
        **({"direction": "backward (data.reverse=true): every text is read from its end"} if config.reverse else {}),
    }
    data = TaskData(loaders["train"], loaders["val"], loaders["test"], artifacts.as_dict(), summary)
    return TextStreams(data, artifacts, entry["train"])


def build_streams(sources: dict[str, Path], settings: dict[str, Any], encoding: TextEncoding) -> dict[str, Any]:
    """The cache entry: the vocabulary (most frequent first), the unknown token (None if the corpus has
    none) and each split's token ids; text files are decoded by `encoding`."""
    log.info("reading %s (once; later runs load the cache)", ", ".join(str(p) for p in sources.values()))
    if settings["dataset"] == IMDB:
        return imdb_streams(
            sources["reviews"],
            vocab_size=settings["vocab_size"],
            min_freq=settings["min_freq"],
            val_fraction=settings["val_fraction"],
            test_fraction=settings["test_fraction"],
            encoding=encoding,
        )
    if settings["dataset"] == WORDS:
        tokens = word_file_tokens(sources["text"], settings["val_fraction"], settings["test_fraction"], encoding)
        vocabulary = capped_vocabulary(tokens["train"], settings["vocab_size"], settings["min_freq"])
        unknown: str | None = corpus.UNKNOWN
        where: dict[str, Any] = {split: f"the {split} part of {sources['text']}" for split in tokens}
    elif settings["level"] == "word":
        tokens = {split: corpus.read_words(path, encoding) for split, path in sources.items()}
        vocabulary = corpus.build_vocabulary(tokens["train"])  # the corpus' own vocabulary, <unk> included
        unknown = corpus.UNKNOWN if corpus.UNKNOWN in vocabulary else None
        where = {split: sources[split] for split in tokens}
    else:
        text = corpus.read_text(sources["text"], encoding)
        parts = corpus.split_by_fractions(text, settings["val_fraction"], settings["test_fraction"])
        tokens = {split: list(text) for split, text in parts.items()}
        vocabulary = corpus.build_vocabulary(tokens["train"], unknown=corpus.UNKNOWN_CHAR)
        unknown = corpus.UNKNOWN_CHAR
        where = {split: f"the {split} part of {sources['text']}" for split in tokens}
    entry: dict[str, Any] = {"vocabulary": vocabulary, "unknown": unknown}
    for split in SPLITS:
        if len(tokens[split]) < 2:
            raise DataError(f"{where[split]} holds {len(tokens[split])} token(s); at least 2 are needed to predict one")
        entry[split] = corpus.encode(tokens[split], vocabulary, unknown)
    return entry
