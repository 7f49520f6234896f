"""A user's labelled texts, read from the files people keep them in: the readers of `task=classification`'s
`data.train`, `data.val` and `data.test`, and of `predict.py` on such a run.

Formats, detected from the file (`detect_format`):

- CSV and TSV, with or without a header: the text in `data.text_column` (a name or a 0-based index;
  several columns are joined, a title and a body, say) and the label in `data.label_column`. Quoted
  fields may hold commas, tabs and newlines (Python's `csv` module reads them as spreadsheets write them).
- JSON Lines: one object per line, the text and label under the same keys; a label may be a list
  (several labels per text).
- fastText lines: `__label__sports __label__news The text ...`, one text per line.
- a folder per label (the aclImdb layout): `DIR/<label>/<any name>`, one text per file; `unsup/` holds
  unlabelled texts and is not a label.

Every file is read through `data.encoding` (UTF-8 unless named, a BOM dropped, an undecodable byte refused
with its file and line). A text's labels are a tuple: one label, or with several labels per text
(multi-label: JSON lists, several `__label__`s, or cells split at `data.label_separator`) any number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqmodels.data.encoding import UTF8, TextEncoding, read_text, split_lines
from seqmodels.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "folders")
NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "jsonl": "JSON Lines",
    "fasttext": "fastText lines",
    "folders": "a folder per label",
}
FASTTEXT_LABEL = "__label__"
UNLABELLED_FOLDERS = ("unsup",)  # the aclImdb layout's unlabelled reviews
JOINER = "\n"  # between the text columns joined into one text

Column = str | int


@dataclass(frozen=True)
class Columns:
    """Where a row keeps its text and label: column names (a header row, or JSON Lines keys) or 0-based
    indexes; `header` None: a CSV/TSV has a header row when a column is named."""

    text: tuple[Column, ...] = ("text",)
    label: Column = "label"
    header: bool | None = None
    separator: str | None = None  # multi-label: a cell's labels are split at it

    def has_header(self) -> bool:
        if self.header is not None:
            return self.header
        return any(isinstance(column, str) for column in (*self.text, self.label))


@dataclass
class LabelledTexts:
    """The examples of one file (or folder), in its order."""

    source: str  # the file or folder, for messages
    format: str  # one of FORMATS
    texts: list[str]
    labels: list[tuple[str, ...]] | None  # None when read without labels (predict)
    places: list[str]  # where each example starts: file:line, or the file of a folder's text
    multi_label: bool = False  # labels came as lists (JSON), several __label__s, or split at the separator
    header: list[str] | None = None  # CSV/TSV: the header row, if any
    rows: list[Any] = field(default_factory=list)  # CSV/TSV: each row's cells; JSON Lines: each object

    def __len__(self) -> int:
        return len(self.texts)

    def describe(self) -> str:
        """E.g. `CSV with a header (id, text, label)`: what was detected, for the log."""
        name = NAMES[self.format]
        if self.format in ("csv", "tsv"):
            name += f" with a header ({', '.join(self.header)})" if self.header is not None else " without a header"
        return name


def detect_format(path: Path, text: str | None = None) -> str:
    """The format of `path` from its content (`text`, the file decoded) and name: a folder; a first line
    that starts with `__label__` (fastText) or is a JSON object (JSON Lines); else TSV for `.tsv`/`.tab`
    or a tab in the first line, CSV otherwise."""
    if path.is_dir():
        return "folders"
    first = next((line for line in split_lines(text or "") if line.strip()), "")
    if first.lstrip().startswith(FASTTEXT_LABEL):
        return "fasttext"
    if first.lstrip().startswith("{") and _is_json_object(first):
        return "jsonl"
    if path.suffix.lower() in (".tsv", ".tab"):
        return "tsv"
    if path.suffix.lower() == ".csv":
        return "csv"
    return "tsv" if "\t" in first else "csv"


def read_labelled(
    path: Path, columns: Columns = Columns(), encoding: TextEncoding = UTF8, *, labelled: bool = True
) -> LabelledTexts:
    """The texts (and, if `labelled`, their labels) of a file or folder in any of FORMATS. A file that cannot
    be read as its format is one DataError line naming the file and line; a missing text or label column
    lists the columns found. Empty texts and missing labels are left to `check_examples`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_folders(path, encoding, labelled)
    text = read_text(path, encoding)
    return parse_labelled(path, text, detect_format(path, text), columns, labelled=labelled)


def parse_labelled(path: Path, text: str, kind: str, columns: Columns = Columns(), *, labelled: bool) -> LabelledTexts:
    """The examples of `text`, a file's content in the format `kind` (any of FORMATS but folders); `path`
    names it in messages."""
    if kind == "fasttext":
        return _read_fasttext(path, text, labelled)
    if kind == "jsonl":
        return _read_jsonl(path, text, columns, labelled)
    return _read_table(path, text, kind, columns, labelled)


def write_table(table: LabelledTexts, names: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """A CSV or TSV table's rows (and header, if it had one) with the columns `names` appended, holding `cells`
    (one row of cells per example): the input as it was, quoted where a field needs it, plus the new columns."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if table.format == "tsv" else ",", lineterminator="\n")
    if table.header is not None:
        writer.writerow([*table.header, *names])
    for row, added in zip(table.rows, cells, strict=True):
        writer.writerow([*row, *added])
    return out.getvalue()


def check_examples(examples: LabelledTexts, what: str) -> None:
    """Refuse, in one line each, texts that are empty and examples without a label (`what` names the
    setting that read the file, e.g. `data.train`)."""
    empty = [place for text, place in zip(examples.texts, examples.places) if not text.strip()]
    if empty:
        raise DataError(
            f"{what}={examples.source}: {_count(len(empty), 'text is', 'texts are')} empty (first at {empty[0]}); "
            f"remove those examples or fill in their text"
        )
    if examples.labels is None:
        return
    unlabelled = [place for labels, place in zip(examples.labels, examples.places) if labels is MISSING]
    if unlabelled:
        raise DataError(
            f"{what}={examples.source}: {_count(len(unlabelled), 'example has', 'examples have')} no label (first "
            f"at {unlabelled[0]}); every example needs one: fill it in or remove the row"
        )


# the labels of an example whose label cell is empty or absent (told apart from a JSON `[]`, no label at all)
MISSING: tuple[str, ...] = ("\0missing",)


def _count(count: int, one: str, many: str) -> str:
    return f"1 {one}" if count == 1 else f"{count:,} {many}"


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _labels_of(value: Any, separator: str | None) -> tuple[tuple[str, ...], bool]:
    """A cell's or field's labels, and whether they came as a list (multi-label)."""
    if value is None:
        return MISSING, False
    if isinstance(value, list):
        return tuple(str(item).strip() for item in value if str(item).strip()), True
    if isinstance(value, bool):
        value = str(value).lower()
    label = str(value).strip()
    if not label:
        return MISSING, separator is not None
    if separator is not None:
        return tuple(part.strip() for part in label.split(separator) if part.strip()) or MISSING, True
    return (label,), False


# -- CSV and TSV -----------------------------------------------------------------------------------
def _read_table(path: Path, text: str, kind: str, columns: Columns, labelled: bool) -> LabelledTexts:
    delimiter = "\t" if kind == "tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    starts: list[int] = []
    line = 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append(row)
                starts.append(line)
            line = reader.line_num + 1
    except csv.Error as error:
        raise DataError(
            f"{path}:{line}: not {NAMES[kind]} ({error}); a field with quotes must be quoted whole"
        ) from None
    header = rows.pop(0) if columns.has_header() and rows else None
    if header is not None:
        header = [name.strip() for name in header]
        starts.pop(0)
    width = len(header) if header is not None else (Counter(map(len, rows)).most_common(1)[0][0] if rows else 0)
    text_at = [_column_index(path, column, header, width, "data.text_column") for column in columns.text]
    label_at = _column_index(path, columns.label, header, width, "data.label_column") if labelled else None
    result = LabelledTexts(str(path), kind, [], [] if labelled else None, [], header=header, rows=rows)
    for row, start in zip(rows, starts):
        place = f"{path}:{start}"
        if header is not None and len(row) > len(header):
            raise DataError(
                f"{place}: {len(row)} fields where the header has {len(header)}; a field that holds a "
                f'{"tab" if kind == "tsv" else "comma"} must be quoted ("like{delimiter} this")'
            )
        result.texts.append(JOINER.join(row[i].strip() for i in text_at if i < len(row)))
        result.places.append(place)
        if label_at is not None and result.labels is not None:
            labels, listed = _labels_of(row[label_at] if label_at < len(row) else None, columns.separator)
            result.labels.append(labels)
            result.multi_label |= listed
    return result


def _column_index(path: Path, column: Column, header: list[str] | None, width: int, key: str) -> int:
    if isinstance(column, int):
        if column < 0 or (width and column >= width):
            raise ConfigError(f"{key}={column}: {path} has {width} columns (0 to {width - 1})")
        return column
    if header is None:
        raise ConfigError(
            f"{key}={column} names a column, but {path} is read without a header (data.header=false): give the "
            f"column's 0-based index"
        )
    if column not in header:
        raise DataError(f"{path}: no column {column!r} ({key}); the header has: {', '.join(header)}")
    return header.index(column)


# -- JSON Lines ------------------------------------------------------------------------------------
def _read_jsonl(path: Path, text: str, columns: Columns, labelled: bool) -> LabelledTexts:
    records: list[dict[str, Any]] = []
    places: list[str] = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not JSON ({error.msg}); JSON Lines hold one object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {line[:80]!r}")
        records.append(record)
        places.append(f"{path}:{number}")
    seen = list(dict.fromkeys(key for record in records for key in record))
    wanted = [*columns.text, *([columns.label] if labelled else [])]
    for column, key in zip(wanted, [*["data.text_column"] * len(columns.text), "data.label_column"]):
        if isinstance(column, int):
            raise ConfigError(f"{key}={column}: JSON Lines name their fields; give the field's name")
        if records and column not in seen:
            raise DataError(f"{path}: no field {column!r} ({key}); the objects have: {', '.join(seen)}")
    result = LabelledTexts(str(path), "jsonl", [], [] if labelled else None, places, rows=records)
    text_keys, label_key = [str(column) for column in columns.text], str(columns.label)  # names, checked above
    for record in records:
        result.texts.append(JOINER.join(_text_of(record.get(key)) for key in text_keys))
        if labelled and result.labels is not None:
            labels, listed = _labels_of(record.get(label_key), columns.separator)
            result.labels.append(labels)
            result.multi_label |= listed
    return result


def _text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()


# -- fastText --------------------------------------------------------------------------------------
def _read_fasttext(path: Path, text: str, labelled: bool) -> LabelledTexts:
    result = LabelledTexts(str(path), "fasttext", [], [] if labelled else None, [])
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        words = line.split(" ")
        labels = []
        while words and (words[0].startswith(FASTTEXT_LABEL) or not words[0]):
            if words[0]:
                labels.append(words[0].removeprefix(FASTTEXT_LABEL))
            words.pop(0)
        result.texts.append(" ".join(words).strip())
        result.places.append(f"{path}:{number}")
        result.rows.append(line)
        if result.labels is not None:
            result.labels.append(tuple(label for label in labels if label) or MISSING)
            result.multi_label |= len(labels) > 1
    return result


# -- a folder per label ----------------------------------------------------------------------------
def _read_folders(path: Path, encoding: TextEncoding, labelled: bool) -> LabelledTexts:
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not labelled:  # predict: the folder's own files, then its folders' (any name: labels are not read)
        return _read_texts(path, [path, *folders], encoding)
    labels = [p for p in folders if p.name not in UNLABELLED_FOLDERS]
    if not labels:
        raise DataError(
            f"{path} holds no folder per label; expected {path}/<label>/<text files> (e.g. aclImdb/train/pos/*.txt)"
        )
    result = LabelledTexts(str(path), "folders", [], [] if labelled else None, [])
    for folder in labels:
        for file in sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural):
            result.texts.append(read_text(file, encoding).strip())
            result.places.append(str(file))
            result.rows.append(f"{folder.name}/{file.name}")
            if result.labels is not None:
                result.labels.append((folder.name,))
    return result


def _read_texts(path: Path, folders: list[Path], encoding: TextEncoding) -> LabelledTexts:
    """Every file of `folders` as one text, named by its path below `path` (`rows`)."""
    result = LabelledTexts(str(path), "folders", [], None, [])
    for folder in folders:
        for file in sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural):
            result.texts.append(read_text(file, encoding).strip())
            result.places.append(str(file))
            result.rows.append(file.relative_to(path).as_posix())
    return result


def _natural(path: Path) -> tuple[Any, ...]:
    """`2_7.txt` before `10_3.txt`: numbers in a name compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def label_order(labels: Sequence[str]) -> list[str]:
    """Labels in a stable order: as numbers when all of them are numbers (`1` ... `10`), else as text."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)
