"""Word streams for language models that are pretrained to be fine-tuned: IMDB's unlabelled reviews
(`task=imdb_lm`) and the words of any text file (`task=words`).

IMDB reviews are tokenized exactly as the classification task tokenizes them (`data.text`: HTML line breaks
removed, NFKC, lowercased, words and punctuation split apart), so the language model's words are the
classifier's words and `model.init_from` can carry each word's vector across by name. A review is one
document; documents follow each other in one stream, each ended by `<eos>` (id 0, which the classifier's
vocabulary gives to `<pad>`, a token no text holds).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from seqmodels.data import imdb
from seqmodels.data.corpus import EOS, UNKNOWN, read_words
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.splits import seeded_split
from seqmodels.data.text import UNK, train_word_tokenizer
from seqmodels.errors import DataError

log = logging.getLogger("seqmodels")

SPLITS = ("train", "val", "test")
# Which reviews hold out for the language model's own validation and test: fixed, so every run
# of imdb_lm validates on the same reviews.
DOCUMENT_SPLIT_SEED = 1234


def split_documents(count: int, val_fraction: float, test_fraction: float) -> dict[str, torch.Tensor]:
    """Indices of `count` documents for train, val and test: a seeded random split."""
    held = val_fraction + test_fraction
    train, rest = seeded_split(count, held, DOCUMENT_SPLIT_SEED)
    val_count = max(1, round(len(rest) * val_fraction / held))
    if val_count >= len(rest):
        raise DataError(f"{count} documents are too few to hold out both validation and test documents")
    return {"train": train, "val": rest[:val_count], "test": rest[val_count:]}


def imdb_streams(
    source: Path,
    *,
    vocab_size: int | None,
    min_freq: int,
    val_fraction: float,
    test_fraction: float,
    encoding: TextEncoding,
) -> dict[str, object]:
    """IMDB's training reviews (labelled and `unsup`; never the test reviews) as id streams of the
    train, val and test documents, and the vocabulary of the train documents, most frequent first."""
    texts, counts = imdb.read_unlabelled(source, encoding)
    log.info(
        "IMDB for a language model: %s reviews (train/pos %s, train/neg %s, train/unsup %s; no test review)",
        f"{len(texts):,}",
        f"{counts['pos']:,}",
        f"{counts['neg']:,}",
        f"{counts['unsup']:,}",
    )
    if not counts["unsup"]:
        log.warning(
            "%s holds no train/unsup reviews (Stanford's aclImdb_v1.tar.gz has 50,000): the language model "
            "reads the labelled training reviews only",
            source,
        )
    parts = split_documents(len(texts), val_fraction, test_fraction)
    documents = {split: [texts[i] for i in parts[split].tolist()] for split in SPLITS}
    tokenizer = train_word_tokenizer(
        documents["train"], vocab_size=vocab_size or 10**9, min_freq=min_freq, lowercase=True
    )
    vocabulary = [word for word, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    vocabulary[0] = EOS  # the classifier vocabulary's <pad>: no text holds it; here it ends each review
    entry: dict[str, object] = {"vocabulary": vocabulary, "unknown": UNK, "documents": {}}
    for split in SPLITS:
        encodings = tokenizer.encode_batch(documents[split])
        ids = [token for encoding in encodings for token in (*encoding.ids, 0)]
        entry[split] = torch.tensor(ids, dtype=torch.int32)
        entry["documents"][split] = len(documents[split])  # type: ignore[index]
    return entry


def word_file_tokens(
    path: Path, val_fraction: float, test_fraction: float, encoding: TextEncoding
) -> dict[str, list[str]]:
    """The words of a text file decoded by `encoding` (each line followed by `<eos>`) in three contiguous
    parts: the first 1 - val - test of the words train, the next part validates, the end tests."""
    tokens = read_words(path, encoding)
    val, test = int(len(tokens) * val_fraction), int(len(tokens) * test_fraction)
    train = len(tokens) - val - test
    return {"train": tokens[:train], "val": tokens[train : train + val], "test": tokens[train + val :]}


def capped_vocabulary(tokens: Sequence[str], vocab_size: int | None, min_freq: int) -> list[str]:
    """`<unk>` then the training words seen at least `min_freq` times, most frequent first (ties in
    first-seen order), at most `vocab_size` of them."""
    counts = Counter(tokens)
    words = [word for word, count in counts.most_common() if count >= min_freq and word != UNKNOWN]
    return [UNKNOWN, *words[:vocab_size]]
