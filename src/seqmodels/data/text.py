"""Word-level tokenization with HF `tokenizers` (torchtext does not import with our torch).

The tokenizer is trained on the training split only and travels inside checkpoints as
its JSON string, so prediction tokenizes exactly as training did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
HTML_LINE_BREAK = Regex(r"<br\s*/?>")
# the words `pre_tokenizers.Whitespace` keeps whole: a pretrained word outside this is never a token
WHITESPACE_TOKEN = r"\w+|[^\w\s]+"


def train_word_tokenizer(texts: Iterable[str], *, vocab_size: int, min_freq: int, lowercase: bool) -> Tokenizer:
    """A WordLevel tokenizer: HTML line breaks removed, optional lowercasing, words and
    punctuation split apart, `<pad>`=0 and `<unk>`=1, the `vocab_size` most frequent words
    seen at least `min_freq` times."""
    steps = [normalizers.Replace(HTML_LINE_BREAK, " "), normalizers.NFKC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    tokenizer = Tokenizer(WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_freq, special_tokens=[PAD, UNK], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: Sequence[str], *, lowercase_fallback: bool = False) -> list[list[int]]:
    """Token ids for each text; an empty text becomes one `<unk>` so every sequence has length >= 1.
    `lowercase_fallback`: a word unknown as it is takes the id of its lowercased form, if any (for
    pretrained words beyond the vocabulary, which GloVe 6B has only in lowercase)."""
    return encode_with_cuts(tokenizer, texts, lowercase_fallback=lowercase_fallback)[0]


def encode_with_cuts(
    tokenizer: Tokenizer, texts: Sequence[str], *, lowercase_fallback: bool = False
) -> tuple[list[list[int]], list[bool]]:
    """`encode`'s ids, and for each text whether the tokenizer's truncation cut it."""
    texts = list(texts)
    encodings = tokenizer.encode_batch(texts)
    cuts = [bool(encoding.overflowing) for encoding in encodings]
    if not lowercase_fallback:
        return [encoding.ids or [UNK_ID] for encoding in encodings], cuts
    encoded = []
    for text, encoding in zip(texts, encodings):
        ids = [
            i if i != UNK_ID else _id_or_unk(tokenizer, text[start:end].lower())
            for i, (start, end) in zip(encoding.ids, encoding.offsets)
        ]
        encoded.append(ids or [UNK_ID])
    return encoded, cuts


def _id_or_unk(tokenizer: Tokenizer, word: str) -> int:
    found = tokenizer.token_to_id(word)
    return UNK_ID if found is None else found


def extend_vocabulary(tokenizer: Tokenizer, words: Sequence[str]) -> None:
    """Give `words` (none of them in the vocabulary) the ids after the vocabulary's, in their order."""
    vocabulary = tokenizer.get_vocab()
    start = len(vocabulary)
    vocabulary.update((word, start + i) for i, word in enumerate(words))
    tokenizer.model = WordLevel(vocabulary, unk_token=UNK)


def tokenizer_from_json(serialized: str) -> Tokenizer:
    return Tokenizer.from_str(serialized)


def tokenizer_words(serialized: str) -> list[str]:
    """The vocabulary of a serialized `tokenizers` tokenizer, by id."""
    vocab = json.loads(serialized)["model"]["vocab"]
    if isinstance(vocab, list):  # unigram models: [word, score] pairs, in id order
        return [str(entry[0]) for entry in vocab]
    return [word for word, _ in sorted(vocab.items(), key=lambda item: item[1])]


def flatten(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id lists as one flat int32 tensor plus offsets (compact to cache, fast to slice)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    offsets = torch.zeros(len(sequences) + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    flat = torch.from_numpy(np.fromiter(chain.from_iterable(sequences), dtype=np.int32, count=int(offsets[-1])))
    return flat, offsets
