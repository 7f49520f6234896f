"""CoNLL-U, the format of Universal Dependencies treebanks (universaldependencies.org/format.html).

A word line has 10 tab-separated fields: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC. Lines
that start with `#` are comments (`# newdoc` opens a document, `# sent_id`, `# text`, ...), and an
empty line ends a sentence. Two kinds of lines are not words, and are skipped as UD's own tools skip
them when they tag words: a multiword token (ID a range such as `3-4`: the surface form "don't" of the
words `3` do and `4` n't) and an empty node of the enhanced graph (a decimal ID such as `5.1`).
"""

from __future__ import annotations

import re

from seqmodels.data.conll import Sentence
from seqmodels.errors import DataError

FIELDS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
TAG_COLUMNS = {"upos": 3, "xpos": 4}  # the fields a tagger learns, by their data.tag_column names
FORM = 1
_ID = re.compile(r"\d+(?:-\d+|\.\d+)?")
_NEW_DOCUMENT = re.compile(r"#\s*newdoc\b")


def looks_like_conllu(lines: list[str]) -> bool:
    """The first line that is neither blank nor a comment is a word line of 10 tab-separated fields that
    opens with an ID (`1`, `3-4`, `5.1`)."""
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        return len(fields) == len(FIELDS) and _ID.fullmatch(fields[0]) is not None
    return False


def is_word(fields: list[str]) -> bool:
    """A word line: neither a multiword token (`3-4`) nor an empty node (`5.1`)."""
    return fields[0].isdigit()


def parse(lines: list[str], source: str, tag_column: str | None = "upos") -> list[Sentence]:
    """The sentences of a CoNLL-U file's lines: each word's FORM and, unless `tag_column` is None, its
    UPOS or XPOS (`tag_column`), the lines of the words, and the document (counted by `# newdoc`)."""
    tag_index = None if tag_column is None else TAG_COLUMNS[tag_column]
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    rows: list[int] = []
    document = 0

    def close() -> None:
        if words:
            sentences.append(Sentence(list(words), list(tags), document, tuple(rows)))
        words.clear()
        tags.clear()
        rows.clear()

    for index, line in enumerate(lines):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            if _NEW_DOCUMENT.match(line) and (sentences or words):
                close()
                document += 1
            continue
        fields = line.split("\t")
        if len(fields) != len(FIELDS) or _ID.fullmatch(fields[0]) is None:
            raise DataError(
                f"{source}:{index + 1}: {len(fields)} tab-separated fields where CoNLL-U has {len(FIELDS)} "
                f"({' '.join(FIELDS)}), the first an ID such as 1, 3-4 or 5.1: {line.strip()[:80]!r}"
            )
        if not is_word(fields):
            continue
        if tag_index is not None:
            tag = fields[tag_index]
            if tag == "_":
                other = "upos" if tag_column == "xpos" else "xpos"
                raise DataError(
                    f"{source}:{index + 1}: the word {fields[FORM]!r} has no {FIELDS[tag_index]} ('_'); "
                    f"tag another column (data.tag_column={other}) or fill in the tags"
                )
            tags.append(tag)
        words.append(fields[FORM])
        rows.append(index)
    close()
    return sentences


def with_tags(lines: list[str], sentences: list[Sentence], tags: list[list[str]], tag_column: str) -> list[str]:
    """The file's lines with each word's `tag_column` field (UPOS or XPOS) replaced by its tag in `tags`:
    still 10 columns, so UD's tools read the output; comments, multiword tokens and empty nodes as they were."""
    out = list(lines)
    index = TAG_COLUMNS[tag_column]
    for sentence, sentence_tags in zip(sentences, tags, strict=True):
        for row, tag in zip(sentence.lines, sentence_tags, strict=True):
            fields = out[row].split("\t")
            fields[index] = tag
            out[row] = "\t".join(fields)
    return out
