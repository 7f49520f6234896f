"""Pretrained word vectors from a file: GloVe text, word2vec/fastText text, word2vec binary.

    GloVe text          `word v1 ... vD` per line, no header (glove.6B.50d.txt)
    word2vec text       a first line `N D`, then lines as above (fastText's .vec files too)
    word2vec binary     `N D\\n`, then per word its UTF-8 bytes, a space, D little-endian float32

The format is detected from the first lines (a header of two integers; after it, text numbers or
binary), and a `.gz` file is read as it is. The file is streamed line by line (or word by word) into
`data.cache_dir`: a raw float32 matrix, the word list and a small JSON description, keyed on the
file's path, size and modification time. Later runs memory-map that matrix, so loading takes well
under a second and memory holds the vectors once at most, whatever the text's size. A damaged file is
refused with one line naming it and, where there is one, the line: wrong number of values, a value
that is no number, mixed dimensions, bytes that are not UTF-8, an empty file, a header whose count
is not the file's. A byte order mark before the first line is dropped; where a word2vec header's
dimension disagrees with the rows, the rows are read and the header is said to be wrong.
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import os
import re
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch

from seqmodels.atomic import save_json
from seqmodels.data.cache import cache_key
from seqmodels.errors import DataError

log = logging.getLogger("seqmodels")

GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY = "GloVe text", "word2vec text", "word2vec binary"
HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s*")
PROBE_BYTES = 1 << 20  # enough for a header and a first line of any common dimension
CHUNK_ROWS = 16384  # rows parsed before they are written to the cache
CACHE_VERSION = 1


@dataclass(frozen=True)
class Layout:
    """What the first lines of a vector file say about it."""

    format: str  # GLOVE, WORD2VEC_TEXT or WORD2VEC_BINARY
    dim: int
    count: int | None  # the header's number of words; None without a header


@dataclass(frozen=True)
class WordVectors:
    """A vector file's words, in file order, and their vectors (N, D) float32, memory-mapped."""

    path: Path
    format: str
    words: list[str]
    vectors: torch.Tensor
    scale: float  # standard deviation of all values: words missing from the file are drawn at it
    cased_share: float  # share of words with a capital letter (0 for GloVe 6B, which is lowercased)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def index(self) -> dict[str, int]:
        """word -> row; a word listed twice keeps its first row."""
        return dict(zip(reversed(self.words), range(len(self.words) - 1, -1, -1)))

    def describe(self) -> str:
        return f"{self.path.name} ({self.format}, {len(self.words):,} x {self.dim})"


# -- reading ------------------------------------------------------------------------------------
def _open(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip (by its magic bytes, whatever its name)."""
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        return cast(IO[bytes], gzip.open(path, "rb") if gzipped else open(path, "rb"))
    except FileNotFoundError:
        raise DataError(f"word vectors: {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"word vectors: {path} is a folder; give the vector file itself") from None
    except OSError as error:
        raise DataError(f"word vectors: cannot read {path} ({error.strerror or error})") from None


# decompression and I/O failures in the middle of a file (gzip.BadGzipFile is an OSError)
READ_ERRORS = (OSError, EOFError, zlib.error)


def _decode(raw: bytes, where: str) -> str:
    """`where`: `path:line` or `path (word N)`, for the error."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x}); word-vector files are UTF-8, "
            f"convert this one (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _numbers(rest: str) -> np.ndarray | None:
    """The whitespace-separated numbers of `rest`; None if one of them is not a number."""
    try:
        return np.fromstring(rest, dtype=np.float32, sep=" ")
    except ValueError:  # numpy >= 2.3; older versions warn and return the numbers before it
        return None


def _all_numbers(fields: list[str]) -> bool:
    try:
        for field in fields:
            float(field)
    except ValueError:
        return False
    return True


def probe(path: Path) -> Layout:
    """The format and dimension, from the first lines only (a dimension check costs no full read)."""
    try:
        with _open(path) as handle:
            head = handle.read(PROBE_BYTES)
    except DataError:
        raise
    except READ_ERRORS as error:
        raise DataError(f"word vectors: {path} is truncated or corrupt ({error})") from None
    head = head.removeprefix(codecs.BOM_UTF8)
    if not head.strip():
        raise DataError(f"word vectors: {path} is empty; expected lines 'word v1 v2 ...' (GloVe) or a word2vec file")
    first, _, after = head.partition(b"\n")
    header = HEADER.fullmatch(first)
    if header is None:
        fields = _decode(first, f"{path}:1").split()
        if len(fields) < 2 or not _all_numbers(fields[1:]):
            raise DataError(
                f"{path}:1: expected 'word v1 v2 ...' (a word, then its vector's numbers) or a word2vec "
                f"header 'COUNT DIM'; got {first[:60].decode('utf-8', 'replace')!r}"
            )
        return Layout(GLOVE, len(fields) - 1, None)
    count, dim = int(header.group(1)), int(header.group(2))
    if count == 0 or dim == 0:
        raise DataError(f"word vectors: {path} has the header '{first.decode().strip()}' and so holds no vectors")
    rows = _row_sizes(after, complete=len(head) < PROBE_BYTES)
    if not rows:  # binary floats are never a UTF-8 line of a word and numbers
        return Layout(WORD2VEC_BINARY, dim, count)
    if rows[0] != dim and all(size == rows[0] for size in rows):
        log.warning(
            "%s: the header says %d values per word but its rows hold %d: the header is wrong (fix its second "
            "number); reading %d-dimensional vectors",
            path,
            dim,
            rows[0],
            rows[0],
        )
        dim = rows[0]
    return Layout(WORD2VEC_TEXT, dim, count)


def _row_sizes(lines: bytes, complete: bool, most: int = 10) -> list[int]:
    """The number of values on each of the first text rows `word v1 v2 ...` of `lines` (at most `most`;
    the last line only if `complete`); empty if the first row is no such line."""
    rows = lines.split(b"\n")[: None if complete else -1]
    sizes: list[int] = []
    for raw in rows:
        if len(sizes) == most:
            break
        try:
            fields = raw.decode("utf-8").split()
        except UnicodeDecodeError:
            fields = []
        if not fields and raw.strip() == b"":
            continue
        if len(fields) < 2 or not _all_numbers(fields[1:]):
            break
        sizes.append(len(fields) - 1)
    return sizes


def read_rows(path: Path, layout: Layout) -> Iterator[tuple[list[str], np.ndarray]]:
    """The file's (words, vectors) in chunks of up to CHUNK_ROWS rows; DataError on anything malformed."""
    reader = _binary_rows if layout.format == WORD2VEC_BINARY else _text_rows
    try:
        with _open(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy < 2.3 on a value that is no number
            yield from reader(handle, path, layout)
    except DataError:
        raise
    except READ_ERRORS as error:
        raise DataError(f"word vectors: {path} is truncated or corrupt ({error})") from None


def _text_rows(handle: IO[bytes], path: Path, layout: Layout) -> Iterator[tuple[list[str], np.ndarray]]:
    words: list[str] = []
    dim, rows, seen = layout.dim, np.empty((CHUNK_ROWS, layout.dim), np.float32), 0
    lines = enumerate(handle, start=1)
    if layout.count is not None:
        next(lines)  # the header
    for number, raw in lines:
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        line = _decode(raw, f"{path}:{number}").rstrip("\r\n")
        if not line.strip():
            continue
        word, _, rest = line.partition(" ")  # a word may hold other whitespace (GloVe has non-breaking spaces)
        values = _numbers(rest)
        if values is None or len(values) != dim:
            _refuse_line(path, number, word, rest, layout, handle)
        rows[len(words)] = values
        words.append(word)
        seen += 1
        if len(words) == CHUNK_ROWS:
            yield words, rows
            words, rows = [], np.empty((CHUNK_ROWS, dim), np.float32)
    if words:
        yield words, rows[: len(words)]
    if layout.count is not None and seen != layout.count:
        raise DataError(
            f"word vectors: {path}'s header says {layout.count:,} words but the file holds {seen:,}; "
            f"fix the first line (or the file is truncated)"
        )


def _refuse_line(path: Path, number: int, word: str, rest: str, layout: Layout, handle: IO[bytes]) -> None:
    """The one line that says what is wrong with line `number` of a text vector file."""
    fields, dim = rest.split(), layout.dim
    for field in fields:
        if not _all_numbers([field]):
            raise DataError(f"{path}:{number}: {field[:30]!r} after the word {word[:30]!r} is not a number")
    following = next(handle, b"").decode("utf-8", "replace").split()
    if len(following) - 1 == len(fields):
        raise DataError(
            f"{path}: mixed dimensions: the lines before line {number} hold {dim} values, lines {number} "
            f"and {number + 1} hold {len(fields)}; a file holds vectors of one size"
        )
    values = f"{len(fields)} value{'' if len(fields) == 1 else 's'}"
    raise DataError(
        f"{path}:{number}: {values} after the word {word[:30]!r}, expected {dim} "
        f"(as every line before it); the line is damaged or truncated"
    )


class _Bytes:
    """Buffered reads of a byte stream: up to a delimiter, or a given number of bytes."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.buffer, self.position = handle, b"", 0

    def _more(self) -> bool:
        block = self.handle.read(PROBE_BYTES)
        self.buffer, self.position = self.buffer[self.position :] + block, 0
        return bool(block)

    def until(self, delimiter: bytes) -> bytes | None:
        while (end := self.buffer.find(delimiter, self.position)) < 0:
            if not self._more():
                return None
        taken, self.position = self.buffer[self.position : end], end + len(delimiter)
        return taken

    def take(self, size: int) -> bytes | None:
        while len(self.buffer) - self.position < size:
            if not self._more():
                return None
        taken, self.position = self.buffer[self.position : self.position + size], self.position + size
        return taken

    def rest_is_blank(self) -> bool:
        while True:
            if self.buffer[self.position :].strip():
                return False
            self.buffer, self.position = b"", 0
            if not self._more():
                return True


def _binary_rows(handle: IO[bytes], path: Path, layout: Layout) -> Iterator[tuple[list[str], np.ndarray]]:
    stream, dim, count = _Bytes(handle), layout.dim, layout.count or 0
    stream.until(b"\n")  # the header
    words: list[str] = []
    rows = np.empty((min(count, CHUNK_ROWS), dim), np.float32)
    for number in range(1, count + 1):
        raw = stream.until(b" ")
        values = None if raw is None else stream.take(4 * dim)
        if raw is None or values is None:
            raise DataError(
                f"word vectors: {path}'s header says {count:,} words but the file ends after "
                f"{number - 1:,}; fix the first line (or the file is truncated)"
            )
        rows[len(words)] = np.frombuffer(values, dtype="<f4")
        words.append(_decode(raw.lstrip(b"\n"), f"{path} (word {number:,})"))
        if len(words) == len(rows):
            yield words, rows
            words, rows = [], np.empty((min(count - number, CHUNK_ROWS) or 1, dim), np.float32)
    if words:
        yield words, rows[: len(words)]
    if not stream.rest_is_blank():
        raise DataError(
            f"word vectors: {path}'s header says {count:,} words but more data follows them; fix the first line"
        )


# -- the cache ----------------------------------------------------------------------------------
def _paths(cache_dir: Path, path: Path) -> dict[str, Path]:
    stem = f"vectors-{path.name.split('.')[0]}-{cache_key([path], {'vectors': CACHE_VERSION})}"
    return {part: cache_dir / f"{stem}.{part}" for part in ("json", "f32", "words")}


def load_vectors(path: Path, cache_dir: Path) -> WordVectors:
    """The vectors of `path`: converted into `cache_dir` the first time, memory-mapped from there later."""
    path = Path(path)
    if not path.is_file():
        _open(path)  # its one-line error: missing, a folder, unreadable
    files = _paths(Path(cache_dir), path.resolve())
    loaded = _load_converted(path, files)
    if loaded is not None:
        return loaded
    log.info("reading word vectors %s (once; later runs load them from %s)", path, files["json"].parent)
    _convert(path, files)
    loaded = _load_converted(path, files)
    assert loaded is not None, files
    return loaded


def _load_converted(path: Path, files: dict[str, Path]) -> WordVectors | None:
    try:
        meta = json.loads(files["json"].read_text())
        words = files["words"].read_text(encoding="utf-8").split("\n")
        shape = (meta["words"], meta["dim"])
        if len(words) != shape[0] or files["f32"].stat().st_size != 4 * shape[0] * shape[1]:
            return None
        matrix = np.memmap(files["f32"], dtype=np.float32, mode="c", shape=shape)  # copy-on-write: never written
    except (OSError, ValueError, KeyError):
        return None
    return WordVectors(path, meta["format"], words, torch.from_numpy(matrix), meta["scale"], meta["cased_share"])


def _convert(path: Path, files: dict[str, Path]) -> None:
    """Stream the file into the cache: rows appended to the matrix as they are parsed, the JSON last
    (its presence marks a complete entry)."""
    layout = probe(path)
    folder = files["json"].parent
    folder.mkdir(parents=True, exist_ok=True)
    total, total_sq, count, cased = 0.0, 0.0, 0, 0
    temporary = {}
    for part in ("f32", "words"):
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=f".{files[part].name}.", suffix=".tmp")
        os.close(descriptor)
        temporary[part] = Path(name)
    try:
        with open(temporary["f32"], "wb") as matrix, open(temporary["words"], "w", encoding="utf-8") as words:
            for chunk_words, rows in read_rows(path, layout):
                if any("\n" in word for word in chunk_words):
                    raise DataError(f"word vectors: {path} has a word with a line break in it; not a vector file")
                if not np.isfinite(rows).all():
                    bad = chunk_words[int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])]
                    raise DataError(f"word vectors: {path}: the vector of {bad[:30]!r} holds nan or inf values")
                matrix.write(rows.tobytes())
                words.write(("\n" if count else "") + "\n".join(chunk_words))
                count += len(chunk_words)
                cased += sum(word != word.lower() for word in chunk_words)
                total += float(rows.sum(dtype=np.float64))
                total_sq += float(np.square(rows, dtype=np.float64).sum())
        if count == 0:
            raise DataError(f"word vectors: {path} holds no vectors")
        values = count * layout.dim
        scale = max(total_sq / values - (total / values) ** 2, 0.0) ** 0.5
        for part in ("f32", "words"):
            os.replace(temporary[part], files[part])
    finally:
        for temp in temporary.values():
            temp.unlink(missing_ok=True)
    save_json(
        {
            "source": str(path),
            "format": layout.format,
            "words": count,
            "dim": layout.dim,
            "scale": scale,
            "cased_share": cased / count,
        },
        files["json"],
    )
