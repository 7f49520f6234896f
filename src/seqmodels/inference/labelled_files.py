"""`predict.py` on a classifier's own kinds of file: CSV and TSV (the text in the run's `data.text_column`),
JSON Lines (the same keys), fastText lines (`__label__X text`: the text after the labels) and a folder of text
files (its own and its folders', each file one text), read as training read them (`seqmodels.data.labelled_text`).

Out: a CSV or TSV is the input as it was (its header, if it had one) with columns added: `predicted_label`
(multi-label: `predicted_labels`, joined by the run's `data.label_separator`, else `|`), `probability` (of the
predicted label; not for multi-label) and `probability_<label>` for every label. JSON Lines, fastText lines and
a folder become JSON Lines: each input object (a fastText line's text as "text", a file's path below the folder
as "file") with the answer's fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqmodels.data.encoding import split_lines
from seqmodels.data.labelled_text import FASTTEXT_LABEL, LabelledTexts, detect_format, write_table

FORMATS = ("csv", "tsv", "fasttext")  # what --format may name besides predict's own
TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def labelled_format(name: str, text: str) -> str | None:
    """How a classifier's input file reads (`--format auto`): a CSV or TSV by its name, fastText lines or JSON
    Lines by their first line or name; None for plain text, one text per line."""
    first = next((line for line in split_lines(text) if line.strip()), "")
    if name.lower().endswith(TABLE_SUFFIXES) or first.lstrip().startswith(FASTTEXT_LABEL):
        return detect_format(Path(name), text)
    if name.lower().endswith(JSONL_SUFFIXES) or detect_format(Path(name), text) == "jsonl":
        return "jsonl"
    return None


def table_output(table: LabelledTexts, answers: list[dict[str, Any]], labels: list[str], separator: str | None) -> str:
    """The CSV or TSV `table` with each row's answer in the added columns (empty for an empty text)."""
    multi_label = any("labels" in answer for answer in answers)
    names = ["predicted_labels"] if multi_label else ["predicted_label", "probability"]
    names += [f"probability_{label}" for label in labels]
    cells = []
    for answer in answers:
        probabilities = answer.get("probabilities") or {}
        if multi_label:
            chosen = answer.get("labels")
            first = ["" if chosen is None else (separator or "|").join(chosen)]
        else:
            first = [_cell(answer.get("label")), _cell(answer.get("probability"))]
        cells.append(first + [_cell(probabilities.get(label)) for label in labels])
    return write_table(table, names, cells)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
