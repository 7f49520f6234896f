"""Tag schemes: which tag sets mark spans (entities, chunks), how spans are read from tags, and which
tag sequences a scheme forbids.

Span tags are `O` and `PREFIX-TYPE`:

- IOB1 (CoNLL-2003's own): `I-X` inside a span, `B-X` only where a span directly follows another of
  the same type;
- IOB2: `B-X` at every span's first token, `I-X` after it;
- IOBES: also `E-X` at a span's last token and `S-X` for a span of one token; BILOU is the same
  with `L-X` and `U-X`.

Spans follow conlleval's rules (`entity_spans`); IOBES and BILOU tags are read as the IOB2 tags they
stand for (`E-X`, `L-X` as `I-X`; `S-X`, `U-X` as `B-X`), as taggers that train on IOBES score with
conlleval. Any other tag set (parts of speech, ...) is plain: a tag per token and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

OUTSIDE = "O"
SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU")
# what each prefix means once IOBES and BILOU are read as IOB2
AS_IOB2 = {"B": "B", "I": "I", "E": "I", "S": "B", "L": "I", "U": "B"}
PREFIXES = {"IOBES": {"E", "S"}, "BILOU": {"L", "U"}}


@dataclass(frozen=True)
class Span:
    type: str
    start: int  # first token
    end: int  # one past the last token


def split_tag(tag: str) -> tuple[str, str] | None:
    """(prefix, type) of a span tag such as `B-PER`; None for `O` and for a tag that is not a span tag."""
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if prefix in AS_IOB2 and dash and kind else None


def is_span_tag(tag: str) -> bool:
    """`O`, or a prefix of IOB1/IOB2/IOBES/BILOU, a dash and a type."""
    return tag == OUTSIDE or split_tag(tag) is not None


def entity_spans(tags: Sequence[str]) -> list[Span]:
    """The spans of a tag sequence in any of the schemes, with conlleval's rules.

    A span starts at every `B-X`, and at an `I-X` that follows `O` or a tag of another type; it
    ends before `O`, `B-*` or a change of type. So `I-PER I-PER B-PER` is two people, `I-ORG I-LOC`
    an organisation then a location, and an ill-formed prediction such as `O I-LOC` still counts as
    a location (as conlleval counts it).
    """
    spans: list[Span] = []
    current: str | None = None
    start = 0
    for position, tag in enumerate([*tags, OUTSIDE]):
        parts = split_tag(tag)
        prefix, kind = (AS_IOB2[parts[0]], parts[1]) if parts else ("O", "")
        if current is not None and (prefix != "I" or kind != current):
            spans.append(Span(current, start, position))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current, start = kind, position
    return spans


def to_iob2(tags: Sequence[str]) -> list[str]:
    """The same spans written in IOB2: `B-X` at each span's first token, `I-X` after."""
    converted = [OUTSIDE] * len(tags)
    for span in entity_spans(tags):
        converted[span.start] = f"B-{span.type}"
        converted[span.start + 1 : span.end] = [f"I-{span.type}"] * (span.end - span.start - 1)
    return converted


def to_iob1(tags: Sequence[str]) -> list[str]:
    """The same spans in IOB1 (CoNLL-2003's own scheme): `I-X` throughout, `B-X` only at a span that
    directly follows another of the same type."""
    converted = [OUTSIDE] * len(tags)
    previous_end, previous_type = -1, ""
    for span in entity_spans(tags):
        converted[span.start : span.end] = [f"I-{span.type}"] * (span.end - span.start)
        if span.start == previous_end and span.type == previous_type:
            converted[span.start] = f"B-{span.type}"
        previous_end, previous_type = span.end, span.type
    return converted


def tag_set_scheme(tags: Iterable[str]) -> str | None:
    """The scheme a set of tag names is written in, as a tagger trains on it: IOBES or BILOU where their
    own prefixes occur, IOB2 for `B-`/`I-` tags (IOB1 data is converted to IOB2 when read), None for
    plain tags (or a set of `O` alone)."""
    parts = [split_tag(tag) for tag in tags if tag != OUTSIDE]
    if not parts or any(part is None for part in parts):
        return None
    prefixes = {part[0] for part in parts if part is not None}
    for scheme, own in PREFIXES.items():
        if prefixes & own:
            return scheme
    return "IOB2"


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str | None:
    """The scheme of tagged data (the tags of each sentence): IOB1 where an `I-X` opens a span (after `O`,
    another type or the sentence start), else that of `tag_set_scheme`. Call it on span tags only."""
    names: set[str] = set()
    opens_with_inside = False
    for tags in sequences:
        names.update(tags)
        previous = ""
        for tag in tags:
            if tag.startswith("I-") and previous not in (f"B-{tag[2:]}", tag):
                opens_with_inside = True
            previous = tag
    scheme = tag_set_scheme(names)
    return "IOB1" if scheme == "IOB2" and opens_with_inside else scheme


class Forbidden(NamedTuple):
    """What a scheme forbids, for decoding valid sequences only: `transitions[before][after]` (may
    `after` not follow `before`), `start[tag]` (may `tag` not open a sentence), `end[tag]` (close one)."""

    transitions: list[list[bool]]
    start: list[bool]
    end: list[bool]


def forbidden_moves(tags: Sequence[str]) -> Forbidden | None:
    """The moves the scheme of `tags` (a tagger's tag names, `tag_set_scheme`) forbids; None for plain tags.

    IOB2: `I-X` only continues an X span (after `B-X` or `I-X`). IOBES/BILOU: `I-X` and `E-X` only
    after `B-X` or `I-X`; after those nothing else; a sentence neither opens with `I-X`/`E-X` nor
    closes on `B-X`/`I-X`."""
    scheme = tag_set_scheme(tags)
    if scheme is None:
        return None
    parts = [split_tag(tag) for tag in tags]
    if scheme == "IOB2":

        def allowed(before: int | None, after: int) -> bool:
            prefix, kind = parts[after] or ("O", "")
            return prefix != "I" or (before is not None and parts[before] in (("B", kind), ("I", kind)))

        closes = [True] * len(tags)
    else:
        inside, last = ("I", "E") if scheme == "IOBES" else ("I", "L")

        def opened(index: int | None) -> str | None:  # the type of the span still open after `index`
            part = parts[index] if index is not None else None
            return part[1] if part is not None and part[0] in ("B", inside) else None

        def allowed(before: int | None, after: int) -> bool:
            prefix, kind = parts[after] or ("O", "")
            open_type = opened(before)
            return open_type == kind if prefix in (inside, last) else open_type is None

        closes = [opened(index) is None for index in range(len(tags))]
    size = range(len(tags))
    return Forbidden(
        [[not allowed(before, after) for after in size] for before in size],
        [not allowed(None, after) for after in size],
        [not close for close in closes],
    )
