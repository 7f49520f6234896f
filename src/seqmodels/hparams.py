"""Hyper-parameter columns: a run's settings as TensorBoard's HPARAMS and `compare.py` show them, typed
from the config declarations (`seqmodels.schema`).

A column is a boolean (true/false), a number (real-valued settings such as `lr` or `dropout`) or text:
strings, integers (printed as integers), lists and anything optional but a number. `text` writes a value
as a user would type it in an override (`null`, `true`, `0.001`, `[2000, 10000]`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seqmodels.schema import Section

BOOL, NUMBER, TEXT = "bool", "number", "text"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # BOOL | NUMBER | TEXT
    help: str = ""
    choices: tuple[str, ...] | None = None  # the allowed values of a text column, where declared


def columns_of(schema: type[Section], names: Iterable[str] | None = None) -> list[Column]:
    """The columns of a config section's keys (all of them, or `names`), typed from their declarations."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    columns = []
    for name in fields if names is None else names:
        meta = fields[name].metadata
        columns.append(Column(name, _kind(hints[name]), meta.get("help", ""), _choices(hints[name], meta)))
    return columns


def _kind(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    plain = args[0] if union and len(args) == 1 else annotation
    if plain is bool:
        return BOOL
    if plain is float:
        return NUMBER
    return TEXT


def _choices(annotation: Any, meta: typing.Mapping[str, Any]) -> tuple[str, ...] | None:
    choices = meta.get("choices")
    if not choices or annotation is not str:  # an optional setting may also be null, outside its choices
        return None
    return tuple(str(choice) for choice in choices)


def merge_columns(groups: Iterable[Iterable[Column]]) -> tuple[Column, ...]:
    """Columns in order of first appearance. A name declared again (e.g. `dataset` by every task) allows
    the values of every declaration (a filter of TensorBoard hides a value outside them); declared with
    two types, or once without a fixed set of values, it is free text."""
    seen: dict[str, Column] = {}
    for group in groups:
        for column in group:
            first = seen.setdefault(column.name, column)
            if first is column:
                continue
            if first.kind != column.kind:
                seen[column.name] = Column(column.name, TEXT, first.help)
            elif first.choices and column.choices:
                merged = tuple(dict.fromkeys([*first.choices, *column.choices]))
                seen[column.name] = dataclasses.replace(first, choices=merged)
            elif first.choices:
                seen[column.name] = dataclasses.replace(first, choices=None)
    return tuple(seen.values())


def text(value: Any) -> str:
    """A value as a text cell, as a user would type it in an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(text(v) for v in value) + "]"
    return str(value)
