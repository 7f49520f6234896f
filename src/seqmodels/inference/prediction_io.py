"""The files `predict.py` reads and writes: texts (one per line), JSON Lines, CoNLL columns; a classifier's
CSV, TSV and fastText lines too (`seqmodels.inference.labelled_files`).

In, UTF-8 unless `--encoding` names another (a byte that does not decode is refused with its line
unless `--encoding-errors replace`): plain text, one text per line; JSON Lines, one object per line
with a "text" field (its other fields are kept); or, for taggers, CoNLL columns: one word per line
with any columns after it (CoNLL-2003's `word POS chunk NER`, or just `word` or `word tag`), blank
lines between sentences, `-DOCSTART-` lines between documents (`seqmodels.data.conll`); or CoNLL-U
(`seqmodels.data.conllu`).

Out: JSON Lines, one line per input line in the same order; or, for CoNLL, the input's lines with
the predicted tag appended as the last column (`O` on `-DOCSTART-` lines), which is what conlleval
reads: gold tag second to last, prediction last; for CoNLL-U, the input's lines with the prediction
in the tag field the run learned (UPOS or XPOS), still 10 fields, so UD's tools read it.

The output is written whole or not at all (`seqmodels.atomic.AtomicOutput`): a failed run leaves no
partial file, and an unwritable output fails before any work.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqmodels.data import conll, conllu
from seqmodels.data.conll import DOCUMENT_START, Sentence
from seqmodels.data.encoding import TextEncoding, split_lines
from seqmodels.data.labelled_text import Columns, LabelledTexts, parse_labelled, read_labelled
from seqmodels.data.tag_schemes import is_span_tag
from seqmodels.errors import ConfigError, DataError
from seqmodels.inference import labelled_files

FORMATS = ("auto", "text", "jsonl", "conll", "conllu", *labelled_files.FORMATS)
TAGGED = ("conll", "conllu")  # the formats of a tagger's files
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# the share of word lines with the most common column count above which a file is read as CoNLL
CONLL_MIN_SHARE = 0.9


@dataclass
class InputFile:
    name: str  # the path, or <stdin>
    format: str  # text | jsonl | conll | conllu
    texts: list[str] = field(default_factory=list)  # text, jsonl: one per line
    records: list[dict[str, Any]] | None = None  # jsonl: each line's object
    lines: list[str] = field(default_factory=list)  # conll(u): the input's lines, without line ends
    sentences: list[Sentence] = field(default_factory=list)  # conll(u): words (tags unread), documents, lines
    table: LabelledTexts | None = None  # a classifier's CSV, TSV, JSON Lines or fastText (`labelled_files`)

    @property
    def count(self) -> int:
        return len(self.sentences) if self.format in TAGGED else len(self.texts)


def input_encoding(encoding: str = "utf-8", errors: str = "strict") -> TextEncoding:
    """How predict decodes its input: the one rule (`seqmodels.data.encoding`), set by `--encoding` and
    `--encoding-errors`."""
    return TextEncoding(encoding, errors, option="--encoding", errors_option="--encoding-errors")


def read_input(
    source: str,
    format: str = "auto",
    *,
    tagger: bool = False,
    what: str = "this run",
    encoding: TextEncoding | None = None,
    columns: Columns | None = None,
) -> InputFile:
    """`source`: a path or "-" (standard input). `tagger`: the run reads CoNLL files; `what` names the
    run in errors; `encoding`: UTF-8 (strict) unless given; `columns`: where a classifier finds the text in
    its CSV, TSV and JSON Lines (`Task.text_columns`), which it then reads as training did."""
    name = "<stdin>" if source == "-" else source
    if columns is not None and source != "-" and Path(source).is_dir():  # a classifier's folder of text files
        table = read_labelled(Path(source), columns, encoding or input_encoding(), labelled=False)
        return InputFile(name, "folders", texts=table.texts, records=[{"file": row} for row in table.rows], table=table)
    raw = sys.stdin.buffer.read() if source == "-" else _read_bytes(Path(source))
    text = (encoding or input_encoding()).decode(raw, name)
    lines = split_lines(text)
    if columns is not None and format in ("auto", "jsonl", *labelled_files.FORMATS):
        kind = labelled_files.labelled_format(name, text) if format == "auto" else format
        if kind is not None:
            table = parse_labelled(Path(name), text, kind, columns, labelled=False)
            records = table.rows if kind == "jsonl" else None
            return InputFile(name, kind, texts=table.texts, records=records, table=table)
    if format == "auto":
        format = _sniff(name, lines, tagger, what)
    if format == "conll":
        return InputFile(name, format, lines=lines, sentences=conll.parse(lines, name, tag_column=None))
    if format == "conllu":
        return InputFile(name, format, lines=lines, sentences=conllu.parse(lines, name, tag_column=None))
    if format == "jsonl":
        records = [_record(name, number, line) for number, line in enumerate(lines, start=1)]
        return InputFile(name, format, texts=[record["text"] for record in records], records=records)
    return InputFile(name, format, texts=lines)


def check_output_is_not_input(source: str, target: str) -> None:
    """Refuse an output that is the input file, however it is spelled (`./x`, a symlink, a hard link):
    the predictions would replace the texts they answer."""
    if source == "-" or target == "-":
        return
    try:
        same = os.path.samefile(source, target)  # the same device and inode, symlinks followed
    except OSError:  # the output does not exist yet (an unreadable input is read_input's to report)
        return
    if same:
        raise ConfigError(
            f"--output {target} is the --input file {source}; write the predictions to another file "
            f"(nothing was written, the input is as it was)"
        )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror})") from None


def _sniff(name: str, lines: list[str], tagger: bool, what: str) -> str:
    first = next((line for line in lines if line.strip()), "")
    if name.endswith(JSONL_SUFFIXES) or _is_json_object(first):
        return "jsonl"
    if not first:
        return "conll" if tagger else "text"
    if conllu.looks_like_conllu(lines):
        if tagger:
            return "conllu"
        raise DataError(
            f'{what} reads texts (one per line, or JSON Lines with a "text" field); {name} looks like a '
            f"CoNLL-U file (one word and its fields per line); pass --format text to read each line as a text"
        )
    if tagger and not looks_like_conll(lines, tagged=False):
        raise DataError(
            f"{what} is a tagger and reads CoNLL files (one word per line, blank lines between sentences); "
            f"{name} looks like plain text: pass --format text to tag one sentence per line"
        )
    if not tagger and looks_like_conll(lines, tagged=True):
        raise DataError(
            f'{what} reads texts (one per line, or JSON Lines with a "text" field); {name} looks like a '
            f"CoNLL file (one word and its tags per line); pass --format text to read each line as a text"
        )
    return "conll" if tagger else "text"


def looks_like_conll(lines: list[str], tagged: bool) -> bool:
    """A `-DOCSTART-` line, or word lines that nearly all have one column count and end in an IOB tag;
    unless `tagged`, also one column count and blank lines between sentences."""
    if any(line.split()[:1] == [DOCUMENT_START] for line in lines):
        return True
    rows = [line.split() for line in lines if line.strip()]
    width, count = Counter(map(len, rows)).most_common(1)[0]
    if count < CONLL_MIN_SHARE * len(rows):
        return False
    if width >= 2 and sum(is_span_tag(row[-1]) for row in rows) >= CONLL_MIN_SHARE * len(rows):
        return True
    return not tagged and (width == 1 or len(rows) < len(lines))


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _record(name: str, number: int, line: str) -> dict[str, Any]:
    if not line.strip():
        return {"text": ""}
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(
            f'{name}:{number}: not JSON ({error.msg}); expected an object such as {{"text": ...}}'
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise DataError(f'{name}:{number}: expected an object with a "text" string, got {line[:80]!r}')
    return record


def conll_output(source: InputFile, tags: list[list[str]], conllu_field: str = "upos") -> str:
    """The input's lines with each word's predicted tag appended (`O` on `-DOCSTART-` lines); CoNLL-U: in
    the `conllu_field` (upos or xpos) of each word line instead."""
    if source.format == "conllu":
        return "".join(f"{line}\n" for line in conllu.with_tags(source.lines, source.sentences, tags, conllu_field))
    appended: dict[int, str] = {}
    for sentence_tags, sentence in zip(tags, source.sentences, strict=True):
        appended.update(zip(sentence.lines, sentence_tags, strict=True))
    out = []
    for index, line in enumerate(source.lines):
        columns = line.split()
        if not columns:
            out.append("")
            continue
        separator = "\t" if "\t" in line else " "
        tag = appended.get(index, "O")  # only -DOCSTART- lines have none
        out.append(f"{line.rstrip()}{separator}{tag}")
    return "".join(f"{line}\n" for line in out)


def jsonl_output(source: InputFile, answers: list[dict[str, Any]]) -> str:
    """One JSON object per input line: the input's fields (a plain line's text as "text") and the answer's.
    An input field the answer would overwrite with another value is kept as "input_<name>"."""
    out = []
    for index, answer in enumerate(answers):
        record = dict(source.records[index]) if source.records is not None else {"text": source.texts[index]}
        for key, value in answer.items():
            if key in record and record[key] != value:
                record[f"input_{key}"] = record.pop(key)
            record[key] = value
        out.append(json.dumps(record, ensure_ascii=False))
    return "".join(f"{line}\n" for line in out)
