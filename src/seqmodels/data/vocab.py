"""A vocabulary of words or characters already split apart: strings <-> ids.

For text that arrives as tokens (CoNLL has one word per line) a tokenizer would only get
in the way. A vocabulary is its list of strings, so it travels in checkpoints as plain
data; id 0 is `<pad>` and id 1 is `<unk>`, as for the tokenizers in `data.text`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from seqmodels.data.text import PAD, PAD_ID, UNK, UNK_ID


class Vocabulary:
    def __init__(self, strings: Iterable[str]) -> None:
        self.strings = list(strings)
        if self.strings[PAD_ID] != PAD or self.strings[UNK_ID] != UNK:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {self.strings[:2]}")
        self.index = {string: i for i, string in enumerate(self.strings)}

    @classmethod
    def build(cls, counts: Counter[str], min_freq: int = 1) -> Vocabulary:
        """`<pad>`, `<unk>`, then every string seen at least `min_freq` times, most frequent
        first (ties in first-seen order, so the same data gives the same ids)."""
        kept = [string for string, count in counts.most_common() if count >= min_freq and string not in (PAD, UNK)]
        return cls([PAD, UNK, *kept])

    def ids(self, strings: Iterable[str]) -> list[int]:
        return [self.index.get(string, UNK_ID) for string in strings]

    def __len__(self) -> int:
        return len(self.strings)
