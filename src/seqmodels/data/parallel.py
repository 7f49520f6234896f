"""Aligned parallel text: two plain-text files (gzip or not), line i of one translating line i of the other.

Refused, each in one line: files of different line counts (both files and both counts named) and
bytes that do not decode (`data.encoding`'s rule, `seqmodels.data.encoding`: file, line and byte
named). A pair with an empty side is skipped and counted: neither "translate nothing" nor "nothing
translates to this" is worth learning.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

from seqmodels.data.encoding import UTF8, TextEncoding, split_lines
from seqmodels.errors import DataError


@dataclass(frozen=True)
class ParallelText:
    sources: list[str]
    targets: list[str]
    skipped_empty: int  # pairs left out because one side (or both) was empty


def read_lines(path: Path, encoding: TextEncoding = UTF8) -> list[str]:
    """The file's lines without their line endings; `.gz` files are decompressed as they are read."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path} is unreadable or not a complete gzip file ({error}); replace it") from None
    return split_lines(encoding.decode(raw, str(path)))


def read_parallel(source: Path, target: Path, encoding: TextEncoding = UTF8) -> ParallelText:
    """The aligned pairs of two files, whitespace around each line removed, empty pairs skipped."""
    sources, targets = read_lines(source, encoding), read_lines(target, encoding)
    if len(sources) != len(targets):
        raise DataError(
            f"{source} has {len(sources):,} lines but {target} has {len(targets):,}; the two sides of a "
            f"parallel corpus must be aligned line by line"
        )
    kept_sources, kept_targets = [], []
    for source_line, target_line in zip(sources, targets):
        source_line, target_line = source_line.strip(), target_line.strip()
        if source_line and target_line:
            kept_sources.append(source_line)
            kept_targets.append(target_line)
    if not kept_sources:
        raise DataError(f"{source} and {target} hold no pair of non-empty lines")
    return ParallelText(kept_sources, kept_targets, len(sources) - len(kept_sources))
