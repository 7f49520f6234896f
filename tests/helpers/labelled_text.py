"""Tiny labelled texts in the formats users keep them in (CSV, TSV, JSON Lines, fastText, a folder per label),
support tickets whose label follows from their words, and SST-style sentiment trees."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

TOPICS = {
    "billing": ["invoice", "refund", "charged", "payment", "price", "bill"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "arrived", "shipped"],
    "account": ["password", "login", "email", "username", "locked", "profile"],
}
FILLER = ["my", "the", "is", "was", "please", "help", "with", "today", "again", "order"]


def ticket(rng: random.Random, label: str, length: int = 8) -> str:
    words = [rng.choice(FILLER) if rng.random() < 0.5 else rng.choice(TOPICS[label]) for _ in range(length)]
    return " ".join(words).capitalize()


def tickets(count: int, seed: int = 0, labels: tuple[str, ...] = tuple(TOPICS)) -> list[tuple[str, str]]:
    """(text, label) pairs, the labels taking turns."""
    rng = random.Random(seed)
    return [(ticket(rng, labels[i % len(labels)], rng.randint(4, 12)), labels[i % len(labels)]) for i in range(count)]


def write_csv(path: Path, rows: list[tuple[str, str]], *, header: bool = True, delimiter: str = ",") -> Path:
    """`id,title,text,label` rows (the title is the text's first word), quoted where a field needs it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        if header:
            writer.writerow(["id", "title", "text", "label"])
        for i, (text, label) in enumerate(rows):
            writer.writerow([i, text.split()[0], text, label])
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_fasttext(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"__label__{label} {text}\n" for text, label in rows), encoding="utf-8")
    return path


def write_folders(root: Path, rows: list[tuple[str, str]], unlabelled: int = 0) -> Path:
    """`root/<label>/<i>.txt`, and `root/unsup/` with `unlabelled` texts (the aclImdb layout)."""
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    for i in range(unlabelled):
        (root / "unsup").mkdir(parents=True, exist_ok=True)
        (root / "unsup" / f"{i}.txt").write_text("no label here", encoding="utf-8")
    return root


SENTIMENT_WORDS = {
    0: ["dreadful", "worst"],
    1: ["dull", "weak"],
    2: ["film", "plot"],
    3: ["good", "nice"],
    4: ["superb", "brilliant"],
}


def sst_tree(rng: random.Random, label: int) -> str:
    """A binary tree over 3 to 6 words in SST's format, `(label (label word) ...)`: a word of the label's own
    is labelled with it, any other word neutral (2), an inner node with its left child's label, the root
    with `label`."""
    words = [rng.choice(SENTIMENT_WORDS[label])]
    words += [rng.choice([*SENTIMENT_WORDS[label], "the", "movie"]) for _ in range(rng.randint(2, 5))]
    nodes = []
    for word in words:
        own = label if word in SENTIMENT_WORDS[label] else 2
        nodes.append((own, f"({own} {word})"))
    while len(nodes) > 1:
        (left_label, left), (_, right) = nodes[0], nodes[1]
        nodes = [(left_label, f"({left_label} {left} {right})"), *nodes[2:]]
    inner = nodes[0][1]
    return f"({label}{inner[inner.index(' ') :]}"


def write_sst(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """sst/{train,dev,test}.txt: one tree per line, the root labels taking turns over 0..4."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (sizes or {"train.txt": 60, "dev.txt": 15, "test.txt": 15}).items():
        (folder / name).write_text("".join(sst_tree(rng, i % 5) + "\n" for i in range(count)), encoding="utf-8")
    return folder
