"""Whitespace-column files of tagged words (CoNLL-2003's layout), and CoNLL-2003 English itself.

A column file holds one word per line with its columns (`word POS chunk NER` in CoNLL-2003, `word tag`
in many others), blank lines between sentences and `-DOCSTART-` lines between documents. `parse`
reads any such file: the word from one column, the tag from another (or none, for predict's input).

CoNLL-2003 English (Tjong Kim Sang & De Meulder 2003): `data.root/conll2003` holds `eng.train`,
`eng.testa` (validation) and `eng.testb` (test). There is no canonical download (Reuters licence), so
missing files are an error that says which files to put where. Its NER column is IOB1, read as IOB2
(`seqmodels.data.tag_schemes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from seqmodels.data.encoding import UTF8, TextEncoding, read_text, split_lines
from seqmodels.errors import DataError

FOLDER = "conll2003"
FILES = {"train": "eng.train", "val": "eng.testa", "test": "eng.testb"}
LAYOUT = "word POS chunk NER"  # how CoNLL-2003's lines read, for errors
DOCUMENT_START = "-DOCSTART-"

# Words and punctuation apart, as in the CoNLL files: "London." -> London . ; hyphenated,
# dotted and apostrophe words stay whole (1996-08-30, 3.5, O'Neill), and so do
# abbreviations such as "U.S." that end in their own full stop.
WORD = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'.]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Sentence:
    words: list[str]
    tags: list[str]  # empty where the file's tags are not read (predict's input)
    document: int = 0  # which document of the file (counted by -DOCSTART- lines) it belongs to
    lines: tuple[int, ...] = ()  # the index (from 0) of each word's line in its file


def locate(root: Path) -> dict[str, Path]:
    """{'train', 'val', 'test'} -> the files under `root/conll2003`; all three must exist."""
    folder = Path(root) / FOLDER
    paths = {split: folder / name for split, name in FILES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise DataError(
            f"CoNLL-2003 not found: put {', '.join(FILES.values())} in {folder} "
            f"(missing: {', '.join(missing)}; the dataset has no official download), "
            f"or point data.root (or SEQMODELS_DATA_DIR) at a folder that holds {FOLDER}/"
        )
    return paths


def read(
    path: Path,
    encoding: TextEncoding = UTF8,
    *,
    word_column: int = 0,
    tag_column: int | None = -1,
    layout: str | None = None,
) -> list[Sentence]:
    """The sentences of a column file, decoded by the one rule (`seqmodels.data.encoding`); see `parse`."""
    return parse(
        split_lines(read_text(path, encoding)),
        str(path),
        word_column=word_column,
        tag_column=tag_column,
        layout=layout,
    )


def parse(
    lines: list[str],
    source: str,
    *,
    word_column: int = 0,
    tag_column: int | None = -1,
    layout: str | None = None,
) -> list[Sentence]:
    """The sentences of a column file's lines, each with the number of its document and the lines of its
    words; document markers and empty sentences dropped. Every word line has the columns of the first
    one (`source:line` names the one that does not). `tag_column` None: the tags are not read. `layout`
    says how the lines should read (CoNLL-2003's `word POS chunk NER`), for errors."""
    expected = f"expected '{layout}': " if layout else ""
    sentences: list[Sentence] = []
    width, width_line = 0, 0
    for document, rows in sentence_rows(lines):
        for index, columns in rows:
            if not width:
                width, width_line = len(columns), index + 1
                _check_columns(source, index, lines[index], width, word_column, tag_column)
            elif len(columns) != width:
                raise DataError(
                    f"{source}:{index + 1}: {expected}{len(columns)} columns where line {width_line} has {width}; a "
                    f"CoNLL file has one word per line, the same columns on every line, blank lines between sentences"
                )
        words = [columns[word_column] for _, columns in rows]
        tags = [] if tag_column is None else [columns[tag_column] for _, columns in rows]
        sentences.append(Sentence(words, tags, document, tuple(index for index, _ in rows)))
    return sentences


def _check_columns(source: str, index: int, line: str, width: int, word_column: int, tag_column: int | None) -> None:
    for key, column in (("data.word_column", word_column), ("data.tag_column", tag_column)):
        if column is not None and not -width <= column < width:
            raise DataError(
                f"{source}: {key}={column} but the file has {width} column{'s' if width > 1 else ''} (line "
                f"{index + 1}: {line.strip()!r}); columns count from 0"
            )
    if tag_column is not None and word_column % width == tag_column % width:
        raise DataError(
            f"{source}: the words and the tags are both column {word_column % width} of {width} (line "
            f"{index + 1}: {line.strip()!r}); set data.word_column and data.tag_column apart"
        )


def sentence_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[tuple[int, list[str]]]]]:
    """Each sentence of CoNLL-style lines as (its document, [(line index, columns) of each word]):
    blank lines end a sentence; a `-DOCSTART-` line ends one too and opens the next document (the
    first marker opens document 0)."""
    rows: list[tuple[int, list[str]]] = []
    document, sentences = 0, 0
    for index, line in enumerate(lines):
        columns = line.split()
        if columns and columns[0] != DOCUMENT_START:
            rows.append((index, columns))
            continue
        if rows:
            yield document, rows
            rows, sentences = [], sentences + 1
        if columns:  # a document marker
            document += 1 if sentences else 0
    if rows:
        yield document, rows


def context_starts(lengths: list[int], documents: list[int], max_tokens: int) -> list[int]:
    """Where each example starts when consecutive sentences of one document are read together:
    the indices of the sentences that open a run of at most `max_tokens` tokens (a longer
    sentence is a run of its own, never cut). `max_tokens` 0: every sentence alone."""
    starts: list[int] = []
    tokens = 0
    for index, (length, document) in enumerate(zip(lengths, documents, strict=True)):
        if not starts or document != documents[index - 1] or tokens + length > max_tokens:
            starts.append(index)
            tokens = 0
        tokens += length
    return starts


# A word's shape, for taggers whose word vectors are lowercased or <unk>: an unseen word in
# capitals is most likely a name (Collobert et al. 2011's "caps" feature). Id 0 is padding.
SHAPES = ("<pad>", "lower", "title", "upper", "mixed", "number", "has digit", "other")


def word_shape(word: str) -> int:
    """The id in SHAPES of a word's capitalisation and digits."""
    if any(char.isdigit() for char in word):
        return SHAPES.index("number") if NUMBER.fullmatch(word) else SHAPES.index("has digit")
    letters = [char for char in word if char.isalpha()]
    if not letters:
        return SHAPES.index("other")
    if all(char.islower() for char in letters):
        return SHAPES.index("lower")
    if all(char.isupper() for char in letters):
        return SHAPES.index("upper") if len(letters) > 1 else SHAPES.index("title")
    if letters[0].isupper() and all(char.islower() for char in letters[1:]):
        return SHAPES.index("title")
    return SHAPES.index("mixed")


NUMBER = re.compile(r"[+-]?\d+(?:[.,:/-]\d+)*")


def split_words(text: str) -> list[re.Match[str]]:
    """A user's raw text as CoNLL-style tokens; each match keeps its place in the text."""
    return list(WORD.finditer(text))
