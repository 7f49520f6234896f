"""CoNLL-2003 English named entities (Tjong Kim Sang & De Meulder 2003).

`data.root/conll2003` holds `eng.train`, `eng.testa` (validation) and `eng.testb` (test):
one token per line, `word POS chunk NER`, blank lines between sentences and `-DOCSTART-`
lines between documents. There is no canonical download (Reuters licence), so missing
files are an error that says which files to put where.

The NER column is IOB1: `I-X` inside an entity, `B-X` only where an entity directly
follows another of the same type. Sentences are converted to IOB2 (every entity starts
with `B-X`), so each tag says on its own whether it starts an entity. Which tokens form
an entity follows conlleval's rules in both schemes (see `entity_spans`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from seqmodels.errors import DataError

FOLDER = "conll2003"
FILES = {"train": "eng.train", "val": "eng.testa", "test": "eng.testb"}
DOCUMENT_START = "-DOCSTART-"

# Words and punctuation apart, as in the CoNLL files: "London." -> London . ; hyphenated,
# dotted and apostrophe words stay whole (1996-08-30, 3.5, O'Neill), and so do
# abbreviations such as "U.S." that end in their own full stop.
WORD = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'.]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Sentence:
    words: list[str]
    tags: list[str]  # IOB2
    document: int = 0  # which document of the file (counted by -DOCSTART- lines) it belongs to


@dataclass(frozen=True)
class Span:
    type: str
    start: int  # first token
    end: int  # one past the last token


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


def read(path: Path) -> list[Sentence]:
    """The sentences of one file, tags in IOB2, each with the number of its document;
    document markers and empty sentences dropped."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the original distribution is Latin-1, some copies are UTF-8
        text = raw.decode("latin-1")
    lines = text.splitlines()
    sentences: list[Sentence] = []
    for document, rows in sentence_rows(lines):
        for index, columns in rows:
            if len(columns) < 2 or not _is_iob_tag(columns[-1]):
                raise DataError(
                    f"{path}:{index + 1}: expected 'word POS chunk NER' with an NER tag such as O, "
                    f"I-PER or B-LOC, got {lines[index].strip()!r}"
                )
        sentences.append(Sentence([c[0] for _, c in rows], to_iob2([c[-1] for _, c in rows]), document))
    return sentences


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


def _is_iob_tag(tag: str) -> bool:
    prefix, dash, kind = tag.partition("-")
    return tag == "O" or (prefix in ("B", "I") and dash == "-" and kind != "")


def entity_spans(tags: list[str]) -> list[Span]:
    """The entities of an IOB1 or IOB2 tag sequence, with conlleval's rules.

    An entity starts at every `B-X`, and at an `I-X` that follows `O` or a tag of another
    type; it ends before `O`, `B-*` or a change of type. So `I-PER I-PER B-PER` is two
    people, `I-ORG I-LOC` an organisation then a location, and an ill-formed prediction
    such as `O I-LOC` still counts as a location (as conlleval counts it).
    """
    spans: list[Span] = []
    current: str | None = None
    start = 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        if current is not None and (prefix != "I" or kind != current):
            spans.append(Span(current, start, position))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current, start = kind, position
    return spans


def to_iob2(tags: list[str]) -> list[str]:
    """The same entities written in IOB2: `B-X` at each entity's first token, `I-X` after."""
    converted = ["O"] * len(tags)
    for span in entity_spans(tags):
        converted[span.start] = f"B-{span.type}"
        converted[span.start + 1 : span.end] = [f"I-{span.type}"] * (span.end - span.start - 1)
    return converted


def to_iob1(tags: list[str]) -> list[str]:
    """The same entities in IOB1 (CoNLL-2003's own scheme): `I-X` throughout, `B-X` only at an entity
    that directly follows another of the same type."""
    converted = ["O"] * len(tags)
    previous_end, previous_type = -1, ""
    for span in entity_spans(tags):
        converted[span.start : span.end] = [f"I-{span.type}"] * (span.end - span.start)
        if span.start == previous_end and span.type == previous_type:
            converted[span.start] = f"B-{span.type}"
        previous_end, previous_type = span.end, span.type
    return converted


def forbidden_iob2(tags: list[str]) -> tuple[list[list[bool]], list[bool]]:
    """[before][after]: may `after` not follow `before`, and [tag]: may `tag` not start a
    sentence, in IOB2, where `I-X` only continues an X entity (after `B-X` or `I-X`)."""

    def continues(before: str | None, after: str) -> bool:
        return not after.startswith("I-") or before in (f"B-{after[2:]}", after)

    return [[not continues(before, after) for after in tags] for before in tags], [not continues(None, t) for t in tags]


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
