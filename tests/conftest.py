"""Shared fixtures: tiny datasets in the real file formats, written by the tests themselves (more writers in
tests/helpers/), and the helpers several test modules use (`composed`, `run_script`, `train`); a test module
never imports another test module.

The `slow` marker (real subprocess runs of the CLI, scripts, torchrun) is enforced here, not left to memory:
- a test that asks for the `env` fixture runs the CLI, so it is marked slow when collected
  (`pytest_collection_modifyitems`);
- `subprocess.Popen` is wrapped so that a test without the marker that starts Python (or torchrun) fails
  at once, naming the marker to add (`_only_in_slow_tests`);
- pyproject.toml's `addopts = "-m 'not slow'"` leaves slow tests out of a plain `pytest`; `pytest -m ""`
  (`make test`, CI) runs them too.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples on every run (a red CI must be reproducible); locally,
# property tests draw new examples each time and remember failures in .hypothesis/.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for `env` runs the CLI in a subprocess (each pays the torch and Hydra
    import, seconds before any work): such tests are `slow`, outside the default inner loop."""
    for item in items:
        if "env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


_current_test: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current_test[:] = [item]  # before its fixtures are set up: a module fixture that starts Python counts too


def _only_in_slow_tests(original_init):
    """The inner loop stays fast only if no test outside the `slow` marker starts Python (the CLI,
    a script, torchrun): such a start fails, naming the marker to add."""

    def init(self, args, *rest, **kwargs):
        program = str(args[0] if isinstance(args, (list, tuple)) else args)
        item = _current_test[0] if _current_test else None
        is_python = program == sys.executable or "python" in Path(program).name or "torchrun" in program
        if is_python and item is not None and item.get_closest_marker("slow") is None:
            raise AssertionError(f"{item.nodeid} starts {program}: mark it @pytest.mark.slow")
        original_init(self, args, *rest, **kwargs)

    return init


subprocess.Popen.__init__ = _only_in_slow_tests(subprocess.Popen.__init__)  # type: ignore[method-assign]

POSITIVE = ["wonderful", "moving", "brilliant", "superb", "great", "loved", "beautiful", "touching"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "worst", "hated", "waste", "stupid"]
FILLER = ["the", "film", "movie", "plot", "actor", "was", "and", "a", "story", "scene", "it", "of"]


def review(rng: random.Random, words: list[str], length: int) -> str:
    tokens = [rng.choice(FILLER) if rng.random() < 0.6 else rng.choice(words) for _ in range(length)]
    text = " ".join(tokens).capitalize() + "."
    return text.replace(" and ", " and<br /><br />", 1)  # IMDB reviews carry HTML line breaks


def write_aclimdb(root: Path, per_folder: int = 24, seed: int = 0) -> Path:
    """An aclImdb/ tree: {train,test}/{pos,neg}/<id>_<rating>.txt with separable sentiment words."""
    rng = random.Random(seed)
    for split in ("train", "test"):
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_folder):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                (folder / f"{i}_{rating}.txt").write_text(review(rng, words, rng.randint(3, 40)), encoding="utf-8")
    (root / "aclImdb" / "README").write_text("tiny fixture\n")
    return root / "aclImdb"


PEOPLE = [["Harry", "Potter"], ["Hermione", "Granger"], ["Ron", "Weasley"], ["Peter", "Blackburn"], ["Clinton"]]
PLACES = [["London"], ["Paris"], ["New", "York"], ["Germany"], ["Leicestershire"]]
ORGANISATIONS = [["European", "Commission"], ["Reuters"], ["Manchester", "United"], ["U.N."]]
OTHERS = [["German"], ["British"], ["World", "Cup"], ["Olympic"]]
ENTITIES = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGANISATIONS, "MISC": OTHERS}
TEMPLATES = [
    ["PER", "met", "PER", "in", "LOC", "."],
    ["PER", "said", "on", "Friday", "."],
    ["the", "ORG", "of", "LOC", "won", "the", "MISC", "."],
    ["PER", "PER", "and", "the", "ORG", "agreed", "."],
    ["LOC", "1996-08-30"],
    ["MISC", "fans", "visited", "LOC", "LOC", "'s", "capital", "."],
]


def conll_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """(word, IOB1 tag) pairs: I-X inside entities, B-X only where one follows another of its type."""
    pairs: list[tuple[str, str]] = []
    previous = "O"
    for part in rng.choice(TEMPLATES):
        if part not in ENTITIES:
            pairs.append((part, "O"))
            previous = "O"
            continue
        for i, word in enumerate(rng.choice(ENTITIES[part])):
            pairs.append((word, f"B-{part}" if i == 0 and previous == part else f"I-{part}"))
        previous = part
    return pairs


def write_conll(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """conll2003/eng.{train,testa,testb} in the CoNLL-2003 layout: word POS chunk NER,
    documents opened by -DOCSTART-, blank lines between sentences."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (sizes or {"eng.train": 80, "eng.testa": 24, "eng.testb": 24}).items():
        lines: list[str] = []
        for i in range(count):
            if i % 10 == 0:
                lines += ["-DOCSTART- -X- -X- O", ""]
            for word, tag in conll_sentence(rng):
                pos = "NNP" if tag != "O" else "NN"
                lines.append(f"{word} {pos} I-NP {tag}")
            lines.append("")
        (folder / name).write_text("\n".join(lines), encoding="utf-8")
    return folder


SUBJECTS = [["the", "cat"], ["a", "dog"], ["mr.", "<unk>"], ["the", "company"], ["investors"]]
VERBS = [["sat", "on"], ["ate"], ["bought"], ["said", "it", "sold"], ["watched"]]
OBJECTS = [["the", "mat"], ["N", "shares"], ["a", "bone"], ["the", "<unk>", "market"], ["bonds"]]


def lm_sentence(rng: random.Random) -> list[str]:
    return [*rng.choice(SUBJECTS), *rng.choice(VERBS), *rng.choice(OBJECTS)]


def write_ptb(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """ptb/ptb.{train,valid,test}.txt as in Mikolov's release: one lowercase sentence per line,
    a space before and after, <unk> and N already in the text."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (sizes or {"ptb.train.txt": 300, "ptb.valid.txt": 40, "ptb.test.txt": 40}).items():
        (folder / name).write_text("".join(f" {' '.join(lm_sentence(rng))} \n" for _ in range(count)), encoding="utf-8")
    return folder


def write_wikitext2(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """wikitext-2/wiki.{train,valid,test}.tokens as in the v1 release: " = Title = " headings,
    lines of a single space between paragraphs, capitals, @-@ for hyphens, <unk>."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (sizes or {"wiki.train.tokens": 30, "wiki.valid.tokens": 4, "wiki.test.tokens": 4}).items():
        lines = []
        for article in range(count):
            lines += [" ", f" = {'Valkyria' if article % 2 else 'Ice @-@ hockey'} = ", " "]
            words = [word for _ in range(rng.randint(3, 8)) for word in [*lm_sentence(rng), "."]]
            lines += [" " + " ".join(words).capitalize() + " ", " "]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def tar_directory(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    return archive


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data.root with imdb/aclImdb_v1.tar.gz (read in place, as the real archive is),
    conll2003/eng.{train,testa,testb}, ptb/ptb.{train,valid,test}.txt and
    wikitext-2/wiki.{train,valid,test}.tokens."""
    root = tmp_path_factory.mktemp("data")
    staging = tmp_path_factory.mktemp("staging")
    (root / "imdb").mkdir()
    tar_directory(write_aclimdb(staging), root / "imdb" / "aclImdb_v1.tar.gz")
    write_conll(root / "conll2003")
    write_ptb(root / "ptb")
    write_wikitext2(root / "wikitext-2")
    return root


@pytest.fixture()
def env(data_root, tmp_path) -> dict[str, str]:
    """Environment for running train.py: the fixture data, a private cache, one thread."""
    return cli_env(data_root, tmp_path / "cache")


def cli_env(data_root: Path, cache: Path) -> dict[str, str]:
    """Environment for running train.py and the scripts on the data under `data_root`, caching into `cache`."""
    return {
        **os.environ,
        "SEQMODELS_DATA_DIR": str(data_root),
        "SEQMODELS_CACHE_DIR": str(cache),
        "HYDRA_FULL_ERROR": "0",
        "PYTHONUNBUFFERED": "1",
    }


TINY = [
    "model.embedding_dim=8",
    "model.hidden_size=12",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.num_threads=1",
    "trainer.log_every_n_steps=1",
]


def composed(*overrides: str):
    """The config `train.py` would run with these overrides (Hydra's composition, not yet checked)."""
    from seqmodels.config import compose_config

    return compose_config(list(overrides))


def run_script(
    args: list[str], env: dict[str, str], cwd: Path = ROOT, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def train(run_dir: Path, overrides: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return run_script([str(ROOT / "train.py"), *TINY, *overrides, f"hydra.run.dir={run_dir}"], env, check=check)


def start_training(run_dir: Path, overrides: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`train` without waiting: the tiny run as a process to signal, race or read while it runs."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *TINY, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second thread only waits for the first (and for whatever else the machine runs).
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
