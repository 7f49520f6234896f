"""Subword tokenizers (HF `tokenizers`) for translation: BPE or unigram, trained on training text only.

Text is NFKC-normalised and cut at spaces, each word marked by a leading "▁" (SentencePiece's
Metaspace), so decoding is exact: the pieces are joined and every "▁" becomes a space again. Case is
kept (BLEU is cased). Ids 0-3 are `<pad>`, `<unk>`, `<s>` (starts every decoder input) and `</s>`
(ends every target).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram
from tokenizers.trainers import BpeTrainer, UnigramTrainer

from seqmodels.data.text import PAD, PAD_ID, UNK, UNK_ID

BOS, EOS = "<s>", "</s>"
BOS_ID, EOS_ID = 2, 3
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]  # in id order
assert (PAD_ID, UNK_ID) == (0, 1)
MODELS = ("bpe", "unigram")


def train_subword_tokenizer(texts: Iterable[str], *, model: str, vocab_size: int) -> Tokenizer:
    """A `model` ("bpe" or "unigram") tokenizer of at most `vocab_size` pieces (special tokens included)."""
    if model == "bpe":
        tokenizer = Tokenizer(BPE(unk_token=UNK))
        trainer: BpeTrainer | UnigramTrainer = BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
        )
    elif model == "unigram":
        tokenizer = Tokenizer(Unigram())
        trainer = UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token=UNK, show_progress=False
        )
    else:
        raise ValueError(f"unknown subword model {model!r}; choose one of {MODELS}")
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != token_id:
            raise AssertionError(f"{token} has id {tokenizer.token_to_id(token)}, expected {token_id}")
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Piece ids of each text, without `<s>` or `</s>` (the batches add them)."""
    return [encoding.ids for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def decode_ids(tokenizer: Tokenizer, sequences: Sequence[Sequence[int]]) -> list[str]:
    """Detokenized text of each id sequence; special tokens are left out."""
    return tokenizer.decode_batch([list(ids) for ids in sequences], skip_special_tokens=True)


def pieces(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """The pieces of `ids` as strings, e.g. for the axes of an attention map."""
    return [tokenizer.id_to_token(i) or UNK for i in ids]
