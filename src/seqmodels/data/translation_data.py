"""A translation task's data: the `data.*` keys of `task=multi30k|translation`, the parallel corpus read
(`data.parallel`), cut into subword pieces (`data.subword`: BPE or unigram vocabularies trained on the
training split only, one per language or one for both) and cached, and bucketed batches of sentence pairs.
The files are decoded by the one rule (`data.encoding`, `seqmodels.data.encoding`).

Multi30k's test is test_2016_flickr; its 2017 and 2018 test sets are extra test sets reported beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqmodels.contracts import Batch, Loader, TaskData
from seqmodels.data import multi30k
from seqmodels.data.batching import BatchLoader, BucketBatchSampler, RaggedIds, pad_right, padding_fraction
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.config import DataConfig
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.parallel import read_parallel
from seqmodels.data.subword import BOS_ID, EOS_ID, MODELS, encode_texts, train_subword_tokenizer
from seqmodels.data.text import PAD_ID, flatten, tokenizer_words
from seqmodels.errors import ConfigError, DataError
from seqmodels.schema import setting

log = logging.getLogger("seqmodels")

DATASETS = ("multi30k", "files")
SPLITS = ("train", "val", "test")
SHOWCASE = 3  # validation sentences translated (and their attention drawn) after each validation
SHOWCASE_MAX_WORDS = 14


@dataclass
class TranslationData(DataConfig):
    dataset: str = setting(
        "multi30k", "multi30k | files: DIR/{train,val,test}.{source,target}[.gz] of data.path", choices=DATASETS
    )
    source: str = setting("de", "the source language (multi30k: en, de or fr; files: the source files' suffix)")
    target: str = setting("en", "the target language (as data.source)")
    path: str | None = setting(None, "files: the folder of the parallel corpus")
    subword: str = setting("bpe", "bpe | unigram: how words are cut into pieces", choices=MODELS)
    vocab: str = setting(
        "separate", "separate: one subword vocabulary per language | joint: one for both", choices=("separate", "joint")
    )
    vocab_size: int = setting(5000, "pieces per vocabulary, <pad> <unk> <s> </s> included", minimum=8)
    max_length: int = setting(100, "pieces kept per sentence; longer sentences are cut (counted at start)", minimum=1)
    batch_size: int = setting(64, "sentence pairs per training batch", minimum=1)
    eval_batch_size: int = setting(128, "sentences decoded together in validation and test", minimum=1)

    def check(self) -> None:
        if self.dataset == "multi30k":
            for key, language in (("source", self.source), ("target", self.target)):
                if language not in multi30k.LANGUAGES:
                    raise ConfigError(
                        f"data.{key}={language!r} is not a Multi30k language; use one of {list(multi30k.LANGUAGES)}"
                    )
        else:
            if not self.path:
                raise ConfigError(
                    "task=translation needs a corpus: add data.path=DIR (a folder with "
                    "{train,val,test}.{source,target}, e.g. train.de and train.en)"
                )
            for key, language in (("source", self.source), ("target", self.target)):
                if not language or "/" in language or language.startswith("."):
                    raise ConfigError(f"data.{key}={language!r} must be a file suffix such as de or en")
        if self.source == self.target:
            raise ConfigError(f"data.source and data.target are both {self.source!r}; choose two languages")


@dataclass
class TranslationBatch(Batch):
    source: torch.Tensor  # (B, S) right-padded piece ids
    source_lengths: torch.Tensor  # (B,) on the CPU (`Batch.host_fields`)
    target_in: torch.Tensor  # (B, T) <s> y1 .. yn, padded
    target_out: torch.Tensor  # (B, T) y1 .. yn </s>, padded with <pad> (left out of the loss)
    # (N,) the flat (row-major) indices of target_out's real positions: indices, not a mask, so a step
    # selects them without asking the device how many there are
    target_positions: torch.Tensor
    references: list[str] | None = None  # the untouched target lines (validation and test)

    host_fields = ("source_lengths",)


@dataclass(frozen=True)
class TranslationArtifacts:
    """What a translator's data preparation hands to its model and to prediction, saved in every checkpoint
    (as the plain dict `as_dict` writes)."""

    source_tokenizer: str  # the HF tokenizers JSON of the source side's subword pieces
    target_tokenizer: str  # the same of the target side (the same JSON with data.vocab=joint)
    source_vocab_size: int
    target_vocab_size: int
    source: str  # the languages (data.source, data.target)
    target: str
    max_length: int  # source pieces kept per sentence (data.max_length)
    showcase: list[list[str]]  # [source, reference] of the validation sentences shown after each validation

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_tokenizer": self.source_tokenizer,
            "target_tokenizer": self.target_tokenizer,
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "source": self.source,
            "target": self.target,
            "max_length": self.max_length,
            "showcase": self.showcase,
        }

    @classmethod
    def from_dict(cls, artifacts: dict[str, Any]) -> TranslationArtifacts:
        return cls(
            artifacts["source_tokenizer"],
            artifacts["target_tokenizer"],
            artifacts["source_vocab_size"],
            artifacts["target_vocab_size"],
            artifacts["source"],
            artifacts["target"],
            artifacts["max_length"],
            [list(pair) for pair in artifacts["showcase"]],
        )

    def source_words(self) -> list[str]:
        """The source pieces, by id: what the rows of the encoder's embedding stand for."""
        return tokenizer_words(self.source_tokenizer)


def locate_files(folder: Path, source: str, target: str) -> dict[str, tuple[Path, Path]]:
    """A user's corpus: DIR/{train,val,test}.{source,target}, each plain text or .gz."""
    if not folder.is_dir():
        raise DataError(
            f"data.path={folder} is not a folder; point it at a folder with {{train,val,test}}.{{{source},{target}}}"
        )
    found = {}
    for split in SPLITS:
        pair = []
        for language in (source, target):
            candidates = [folder / f"{split}.{language}", folder / f"{split}.{language}.gz"]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise DataError(
                    f"{folder} has no {split}.{language} (or {split}.{language}.gz); a parallel corpus "
                    f"is {{train,val,test}}.{{{source},{target}}}, one sentence per line"
                )
            pair.append(path.resolve())
        found[split] = (pair[0], pair[1])
    return found


CACHED_BY = (
    "dataset",
    "source",
    "target",
    "subword",
    "vocab",
    "vocab_size",
    "max_length",
    "encoding",
    "encoding_errors",
)


def cache_settings(data: TranslationData) -> dict[str, Any]:
    """What the cached data depends on: the `data.*` keys of `CACHED_BY`."""
    return {key: getattr(data, key) for key in CACHED_BY}


def locate(data: TranslationData) -> dict[str, tuple[Path, Path]]:
    """Each split's (source, target) files."""
    if data.dataset == "multi30k":
        return multi30k.locate(Path(data.root), data.source, data.target, allow_download=data.download)
    assert data.path is not None  # TranslationData.check: a user's corpus names its folder
    return locate_files(Path(data.path).expanduser(), data.source, data.target)


def prepare_translation_data(data: TranslationData, seed: int) -> TaskData:
    """The parallel corpus of `data` as bucketed batches of sentence pairs (shuffled from `seed` in
    training), read, cut into subwords and cached once; the artifacts carry the tokenizers."""
    settings = cache_settings(data)
    sources = locate(data)
    files = [path for pair in sources.values() for path in pair]
    name = f"{settings['dataset']}-{data.source}-{data.target}"
    encoding = data.text_encoding()
    entry, _ = cached(
        Path(data.cache_dir), name, cache_key(files, settings), lambda: build_pairs(sources, settings, encoding)
    )

    def loader(split: str, shuffle: bool) -> BatchLoader:
        part = entry["splits"][split]
        source_ids = RaggedIds(part["source"], part["source_offsets"])
        target_ids = RaggedIds(part["target"], part["target_offsets"])
        references = part.get("references")
        bos, eos = torch.tensor([BOS_ID], dtype=torch.int32), torch.tensor([EOS_ID], dtype=torch.int32)

        def make_batch(indices: list[int]) -> TranslationBatch:
            source, source_lengths = pad_right([source_ids[i] for i in indices])
            target_in, _ = pad_right([torch.cat([bos, target_ids[i]]) for i in indices])
            target_out, _ = pad_right([torch.cat([target_ids[i], eos]) for i in indices])
            return TranslationBatch(
                source,
                source_lengths,
                target_in,
                target_out,
                (target_out != PAD_ID).flatten().nonzero().squeeze(1),
                None if references is None else [references[i] for i in indices],
            )

        # sorted by both lengths together, so neither side of a batch is padded much
        lengths = source_ids.lengths() + target_ids.lengths()
        sampler = BucketBatchSampler(
            lengths, data.batch_size if shuffle else data.eval_batch_size, shuffle=shuffle, seed=seed
        )
        return BatchLoader(sampler, make_batch)

    train = loader("train", shuffle=True)
    extra: dict[str, Loader] = {split: loader(split, False) for split in entry["splits"] if split not in SPLITS}
    stats = entry["stats"]
    part = entry["splits"]["train"]
    source_lengths, target_lengths = part["source_offsets"].diff(), part["target_offsets"].diff()
    batches = train.sampler.batches()
    summary = {
        "dataset": f"{settings['dataset']} {data.source}->{data.target} ({sources['train'][0].parent})",
        "pairs": ", ".join(f"{split} {stats[split]['pairs']:,}" for split in stats),
        "skipped (an empty side)": ", ".join(f"{split} {stats[split]['skipped']}" for split in stats),
        f"cut to max_length {data.max_length}": ", ".join(f"{split} {stats[split]['cut']}" for split in stats),
        "vocabulary": (
            f"{data.subword} {data.vocab}: {entry['source_vocab_size']:,} source / "
            f"{entry['target_vocab_size']:,} target pieces"
        ),
        "pieces per sentence (train)": (
            f"source {source_lengths.float().mean():.1f} (max "
            f"{int(source_lengths.max())}), target {target_lengths.float().mean():.1f}"
            f" (max {int(target_lengths.max())})"
        ),
        "padding, bucketed batches": (
            f"source {padding_fraction(source_lengths, batches):.1%}, target "
            f"{padding_fraction(target_lengths + 1, batches):.1%}"
        ),
    }
    artifacts = TranslationArtifacts(
        entry["source_tokenizer"],
        entry["target_tokenizer"],
        entry["source_vocab_size"],
        entry["target_vocab_size"],
        data.source,
        data.target,
        data.max_length,
        entry["showcase"],
    )
    return TaskData(train, loader("val", False), loader("test", False), artifacts.as_dict(), summary, extra)


def build_pairs(
    sources: dict[str, tuple[Path, Path]], settings: dict[str, Any], encoding: TextEncoding
) -> dict[str, Any]:
    """The cache entry: the subword tokenizers (trained on the training split) and each split's piece ids,
    references (validation and test), counts, and the showcase sentences; the files decoded by `encoding`."""
    log.info("reading %s (once; later runs load the cache)", sources["train"][0].parent)
    texts = {split: read_parallel(*pair, encoding) for split, pair in sources.items()}
    for split, text in texts.items():
        if text.skipped_empty:
            log.warning("%s: %d pairs with an empty side skipped", split, text.skipped_empty)
    # The vocabularies come from the training split only, as a user's new sentences would meet them.
    train = texts["train"]
    model, size = settings["subword"], settings["vocab_size"]
    if settings["vocab"] == "joint":
        source_tokenizer = target_tokenizer = train_subword_tokenizer(
            train.sources + train.targets, model=model, vocab_size=size
        )
    else:
        source_tokenizer = train_subword_tokenizer(train.sources, model=model, vocab_size=size)
        target_tokenizer = train_subword_tokenizer(train.targets, model=model, vocab_size=size)
    limit = settings["max_length"]
    entry: dict[str, Any] = {
        "source_tokenizer": source_tokenizer.to_str(),
        "target_tokenizer": target_tokenizer.to_str(),
        "source_vocab_size": source_tokenizer.get_vocab_size(),
        "target_vocab_size": target_tokenizer.get_vocab_size(),
        "splits": {},
        "stats": {},
    }
    for split, text in texts.items():
        source_ids = encode_texts(source_tokenizer, text.sources)
        target_ids = encode_texts(target_tokenizer, text.targets)
        cut = sum(len(s) > limit or len(t) > limit for s, t in zip(source_ids, target_ids))
        # a sentence of only unknown characters would be empty: it keeps one <unk>
        source_flat, source_offsets = flatten([ids[:limit] or [1] for ids in source_ids])
        target_flat, target_offsets = flatten([ids[:limit] for ids in target_ids])
        part: dict[str, Any] = {
            "source": source_flat,
            "source_offsets": source_offsets,
            "target": target_flat,
            "target_offsets": target_offsets,
        }
        if split != "train":
            part["references"] = text.targets  # scored untouched, never through the tokenizer
        entry["splits"][split] = part
        entry["stats"][split] = {"pairs": len(text.sources), "skipped": text.skipped_empty, "cut": cut}
    val = texts["val"]
    short = [i for i, line in enumerate(val.sources) if len(line.split()) <= SHOWCASE_MAX_WORDS]
    entry["showcase"] = [[val.sources[i], val.targets[i]] for i in (short or range(len(val.sources)))[:SHOWCASE]]
    return entry
