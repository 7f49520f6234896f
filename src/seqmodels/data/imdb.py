"""The IMDB Large Movie Review Dataset (Maas et al. 2011): 25k train / 25k test reviews, and in
Stanford's archive 50k unlabelled ones (`train/unsup`).

`data.root/imdb` may hold an extracted `aclImdb/` tree, `aclImdb_v1.tar.gz` (the Stanford
archive) or `aclImdb.tar.gz` (a repack); archives are read in place, never unpacked.
"""

from __future__ import annotations

import logging
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from seqmodels.data.download import download
from seqmodels.data.encoding import UTF8, TextEncoding
from seqmodels.errors import DataError

log = logging.getLogger("seqmodels")

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
ARCHIVES = ("aclImdb_v1.tar.gz", "aclImdb.tar.gz")
LABELS = ("neg", "pos")
REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
# What a language model may read: the training reviews, labelled or not; never a test review.
UNLABELLED = re.compile(r"(?:^|/)aclImdb/train/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")


@dataclass(frozen=True)
class Reviews:
    texts: list[str]
    labels: list[int]  # index into LABELS


def locate(root: Path, allow_download: bool) -> Path:
    """The extracted tree or archive under `root/imdb`, downloading the archive if allowed."""
    folder = Path(root) / "imdb"
    candidates = [folder / "aclImdb", *(folder / name for name in ARCHIVES)]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    hint = (
        f"put {ARCHIVES[0]} (from {URL}) or an extracted aclImdb/ folder in {folder}, "
        f"or point data.root (or SEQMODELS_DATA_DIR) at a folder that holds imdb/"
    )
    if not allow_download:
        raise DataError(f"IMDB not found in {folder}: {hint}")
    return download(URL, folder / ARCHIVES[0], md5=MD5, manual_hint=hint)


def read(source: Path, encoding: TextEncoding = UTF8) -> dict[str, Reviews]:
    """{'train': Reviews, 'test': Reviews}, each ordered by (label, review id).

    Reviews are decoded by the one rule (`encoding`: a byte that does not decode is refused with its
    review, line and byte, unless `data.encoding_errors=replace`). Empty reviews are kept (they
    tokenize to <unk>), counted in a warning. A missing split or an unreadable archive is refused.
    """
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}

    def add(match: re.Match, text: str) -> None:
        split, label, review_id, _rating = match.groups()
        found[split].append((LABELS.index(label), int(review_id), text))

    _read_members(source, REVIEW, add, encoding)
    result = {}
    for split, items in found.items():
        if not items or len({label for label, _, _ in items}) < 2:
            raise DataError(
                f"{source} has no {split}/pos and {split}/neg reviews; expected the aclImdb layout "
                f"(aclImdb/{split}/pos/<id>_<rating>.txt)"
            )
        items.sort(key=lambda item: (item[0], item[1]))
        result[split] = Reviews([text for _, _, text in items], [label for label, _, _ in items])
    return result


def read_unlabelled(source: Path, encoding: TextEncoding = UTF8) -> tuple[list[str], dict[str, int]]:
    """Every training review, labelled (`train/pos`, `train/neg`) or not (`train/unsup`), for a language
    model: never a test review. Ordered by (folder, review id); also returns how many each folder gave."""
    found: list[tuple[str, int, str]] = []

    def add(match: re.Match, text: str) -> None:
        folder, review_id, _rating = match.groups()
        found.append((folder, int(review_id), text))

    _read_members(source, UNLABELLED, add, encoding)
    if not found:
        raise DataError(
            f"{source} has no training reviews; expected the aclImdb layout (aclImdb/train/pos/<id>_<rating>.txt)"
        )
    found.sort(key=lambda item: (item[0], item[1]))
    counts = {folder: sum(1 for item in found if item[0] == folder) for folder in ("pos", "neg", "unsup")}
    return [text for _, _, text in found], counts


def _read_members(source: Path, pattern: re.Pattern, add, encoding: TextEncoding) -> None:
    """Call `add(match, text)` for every review file of `source` (a tree or an archive) whose path
    matches `pattern`; only those are read, each decoded by `encoding`. Empty reviews are kept,
    counted in a warning."""
    empty: list[str] = []
    tree = source.is_dir()  # a review is named by its path, or by the archive and its member

    def take(name: str, read_bytes) -> None:
        match = pattern.search(name)
        if not match:
            return
        text = encoding.decode(read_bytes(), str(source.parent / name) if tree else f"{source}:{name}")
        if not text.strip():
            empty.append(name)
        add(match, text)

    try:
        if tree:
            for path in source.glob("*/*/*.txt"):
                take(path.relative_to(source.parent).as_posix(), path.read_bytes)
        else:
            with tarfile.open(source, "r:*") as archive:
                for member in archive:
                    if member.isfile() and pattern.search(member.name):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            take(member.name, handle.read)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(f"{source} is corrupt or unreadable ({error}); delete it and download {URL} again") from None
    if empty:
        log.warning("%d IMDB reviews are empty (e.g. %s); kept as a single <unk> token", len(empty), empty[0])
