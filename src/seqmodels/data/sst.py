"""The Stanford Sentiment Treebank, fine-grained (SST-5; Socher et al. 2013): movie-review sentences as binary
parse trees, every phrase (node) labelled 0 very negative .. 4 very positive, the root with the sentence's label.

`data.root/sst` holds the tree files `train.txt`, `dev.txt` and `test.txt` (one tree per line), or Stanford's
`trainDevTestTrees_PTB.zip` (read in place; its members are `trees/{train,dev,test}.txt`), which is downloaded
when neither is there. A tree is `(label left right)` inside, `(label word)` at a leaf; words are separated by
one ASCII space only (a word may hold a no-break space) and are PTB-escaped (`-LRB-`, `\\/`).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from seqmodels.data.download import download
from seqmodels.data.encoding import UTF8, TextEncoding, split_lines
from seqmodels.errors import DataError

FOLDER = "sst"
FILES = {"train": "train.txt", "val": "dev.txt", "test": "test.txt"}
ARCHIVE = "trainDevTestTrees_PTB.zip"
URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
SHA256 = "5c613a4f673fc74097d523a2c83f38e0cc462984d847b82c7aaf36b01cbbbfcc"
LABELS = ("very negative", "negative", "neutral", "positive", "very positive")


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    label: int  # index into LABELS


@dataclass(frozen=True)
class Tree:
    sentence: Phrase  # the root: the whole sentence
    phrases: list[Phrase]  # every node, the root included, in the order their spans close


def locate(root: Path, allow_download: bool) -> Path:
    """The folder of the three tree files, or the archive, under `root/sst`; the archive is downloaded if allowed."""
    folder = Path(root) / FOLDER
    if all((folder / name).is_file() for name in FILES.values()):
        return folder
    if (folder / ARCHIVE).is_file():
        return folder / ARCHIVE
    hint = (
        f"put {ARCHIVE} (from {URL}) or the tree files {', '.join(FILES.values())} in {folder}, or point "
        f"data.root (or SEQMODELS_DATA_DIR) at a folder that holds {FOLDER}/"
    )
    if not allow_download:
        raise DataError(f"SST not found in {folder}: {hint}")
    return download(URL, folder / ARCHIVE, sha256=SHA256, manual_hint=hint)


def read(source: Path, encoding: TextEncoding = UTF8) -> dict[str, list[Tree]]:
    """{'train', 'val', 'test'} -> the trees of each file, in order (decoded by `data.encoding`'s rule)."""
    raw: dict[str, bytes] = {}
    try:
        if source.is_dir():
            for split, name in FILES.items():
                raw[split] = (source / name).read_bytes()
        else:
            with zipfile.ZipFile(source) as archive:
                for split, name in FILES.items():
                    raw[split] = archive.read(f"trees/{name}")
    except KeyError as error:
        raise DataError(f"{source} lacks {error.args[0]}; expected Stanford's {ARCHIVE} (trees/*.txt)") from None
    except (zipfile.BadZipFile, zlib.error, OSError) as error:
        raise DataError(f"{source} is corrupt or unreadable ({error}); delete it and download {URL} again") from None
    return {split: read_trees(data, f"{source}/{FILES[split]}", encoding) for split, data in raw.items()}


def read_trees(raw: bytes, name: str, encoding: TextEncoding = UTF8) -> list[Tree]:
    """The trees of one file (`name` for messages), each line one tree."""
    trees = []
    for number, line in enumerate(split_lines(encoding.decode(raw, name)), start=1):
        if line.strip():
            trees.append(parse_tree(line, f"{name}:{number}"))
    if not trees:
        raise DataError(f"{name} holds no trees")
    return trees


def parse_tree(line: str, place: str) -> Tree:
    """One `(label ...)` tree; a malformed one is a DataError naming `place`."""
    phrases: list[Phrase] = []
    position = 0

    def fail(what: str) -> DataError:
        return DataError(f"{place}: not an SST tree ({what} at character {position + 1}); expected (3 (2 a) (4 b))")

    def node() -> tuple[str, ...]:
        nonlocal position
        if line[position : position + 1] != "(":
            raise fail("no opening parenthesis")
        end = line.find(" ", position)
        label = line[position + 1 : end]
        if end < 0 or not label.isdigit() or int(label) >= len(LABELS):
            raise fail(f"a label that is not 0 to {len(LABELS) - 1}")
        position = end + 1
        if line[position : position + 1] == "(":
            words: tuple[str, ...] = ()
            while line[position : position + 1] == "(":
                words += node()
                if line[position : position + 1] == " ":
                    position += 1
        else:
            close = line.find(")", position)
            if close <= position:
                raise fail("an empty word")
            words = (line[position:close],)
            position = close
        if line[position : position + 1] != ")":
            raise fail("no closing parenthesis")
        position += 1
        phrases.append(Phrase(words, int(label)))
        return words

    node()
    if line[position:].strip():
        raise fail("text after the tree")
    return Tree(phrases[-1], phrases)


def phrases_of(trees: list[Tree]) -> list[Phrase]:
    """Every distinct phrase of `trees` (the sentences and all their parts), each once, in first-seen order."""
    seen: dict[tuple[str, ...], Phrase] = {}
    for tree in trees:
        for phrase in tree.phrases:
            seen.setdefault(phrase.words, phrase)
    return list(seen.values())
