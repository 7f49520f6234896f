"""Tiny parallel corpora in Multi30k's published format (gzipped, one sentence per line), German sentences
whose English translations follow word by word from a small lexicon."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from seqmodels.config import compose_config
from seqmodels.train import check_config

LEXICON = {
    "ein": "a",
    "Mann": "man",
    "eine": "a",
    "Frau": "woman",
    "Hund": "dog",
    "Kind": "child",
    "fährt": "rides",
    "sieht": "sees",
    "hält": "holds",
    "Fahrrad": "bicycle",
    "Ball": "ball",
    "rot": "red",
    "groß": "big",
    "im": "in the",
    "Park": "park",
    "Straße": "street",
}
SUBJECTS = [["Ein", "Mann"], ["Eine", "Frau"], ["Ein", "Hund"], ["Ein", "Kind"]]
VERBS = ["fährt", "sieht", "hält"]
OBJECTS = [["ein", "Fahrrad"], ["ein", "Ball"], ["eine", "Straße"]]
PLACES = [[], ["im", "Park"]]


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    german = [*rng.choice(SUBJECTS), rng.choice(VERBS), *rng.choice(OBJECTS), *rng.choice(PLACES)]
    english = " ".join(LEXICON.get(word, LEXICON.get(word.lower(), word)) for word in german)
    return " ".join(german) + ".", english[0].upper() + english[1:] + "."


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def write_multi30k(root: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """root/multi30k/<split>.{de,en,fr}.gz for every split Multi30k publishes (fr: the English again)."""
    rng = random.Random(seed)
    sizes = sizes or {
        "train": 160,
        "val": 16,
        "test_2016_flickr": 16,
        "test_2017_flickr": 8,
        "test_2017_mscoco": 8,
        "test_2018_flickr": 8,
    }
    for split, count in sizes.items():
        pairs = [sentence_pair(rng) for _ in range(count)]
        write_gz(root / "multi30k" / f"{split}.de.gz", [de for de, _ in pairs])
        write_gz(root / "multi30k" / f"{split}.en.gz", [en for _, en in pairs])
        write_gz(root / "multi30k" / f"{split}.fr.gz", [en for _, en in pairs])
    return root


def translation_task(root: Path, cache: Path, *overrides: str):
    """A Multi30k task of a tiny GRU on the corpus under `root` (`write_multi30k`)."""
    cfg = compose_config(
        [
            "task=multi30k",
            "model=gru",
            "model.embedding_dim=8",
            "model.hidden_size=6",
            f"data.root={root}",
            f"data.cache_dir={cache}",
            "data.vocab_size=40",
            *overrides,
        ]
    )
    return check_config(cfg)
