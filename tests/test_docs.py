"""The docs are true to the code: every config key and every repository file that README.md and docs/*.md
name exists, and the README's quick start runs as written on the tiny fixtures."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, TINY, run_script
from seqmodels.train import declared_keys

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GROUPS = ("model", "data", "trainer", "optim", "decode", "task")
KEY = re.compile(rf"(?<![\w/.$-])({'|'.join(GROUPS)})\.([a-z_][a-z0-9_]*)")
FILE = re.compile(r"(?<![\w.$/{-])((?:[\w-]+/)*[\w-]+\.(?:py|md|yaml|sh|toml|png|cfg|ini))(?![\w/])")

# Names that look like keys or repository files but are not, each with the reason.
NOT_KEYS = {
    "model.hiden_size": "the misspelt key whose refusal docs/training.md shows",
    "model.loss": "the tagger's method, which the benchmark's plain loop calls",
    "task.prepare": "the Task method, timed at startup",
}
NOT_FILES = {
    "COMPARE.md": "what scripts/compare.py writes into the folder it compares",
    "OUT_DIR/results.md": "what scripts/gpu_check.sh writes into its output folder",
    "attention.png": "the file name a user gives scripts/plot_attention.py",
    "gradient_flow.png": "what each run writes into its run directory",
    "optimization_results.yaml": "what a Hydra sweep writes into its sweep folder",
}


def named(pattern: re.Pattern[str], value) -> dict[str, set[str]]:
    """Each name the docs hold, and the documents that hold it."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        for match in pattern.finditer(doc.read_text(encoding="utf-8")):
            found.setdefault(value(match), set()).add(str(doc.relative_to(ROOT)))
    return found


def test_every_config_key_the_docs_name_is_declared():
    declared = declared_keys()
    keys = named(KEY, lambda match: match.group(0))
    unknown = {
        key: sorted(docs)
        for key, docs in keys.items()
        if key.partition(".")[2] not in declared.get(key.partition(".")[0], set()) and key not in NOT_KEYS
    }
    assert not unknown, f"keys no task declares: {unknown}"
    assert {"model.hidden_size", "data.batch_size", "trainer.limit_val_batches", "decode.beam_size"} <= set(keys)
    assert set(NOT_KEYS) <= set(keys), "an exception no document needs any more"


def test_every_repository_file_the_docs_name_exists():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    names = {Path(path).name for path in tracked}

    def exists(path: str, docs: set[str]) -> bool:
        if "/" not in path:  # a file named alone, as in the README's layout under its folder
            return path in names
        folders = [
            ROOT,
            ROOT / "src" / "seqmodels",
            ROOT / "src",
            ROOT / "configs",
            *(ROOT / Path(doc).parent for doc in docs),
        ]
        return any((folder / path).exists() for folder in folders)

    files = named(FILE, lambda match: match.group(1))
    missing = {path: sorted(docs) for path, docs in files.items() if not exists(path, docs) and path not in NOT_FILES}
    assert not missing, f"files the repository lacks: {missing}"
    assert {"tasks/base.py", "docs/data.md", "scripts/gpu_check.sh"} <= set(files)
    assert set(NOT_FILES) <= set(files), "an exception no document needs any more"


def quick_start() -> list[str]:
    """The commands of the README's quick start, in order."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quick start")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_quick_start_runs_on_the_fixtures(env, tmp_path):
    """Each command as the README writes it, in a fresh working directory, with the tiny model's overrides added
    to train.py; DATE_TIME and RUN_DIR stand for the folders the commands before them made."""
    commands = quick_start()
    assert [c.split()[:2] for c in commands] == [
        ["python", "train.py"],
        ["python", "train.py"],
        ["python", "scripts/compare.py"],
        ["tensorboard", "--logdir"],
        ["python", "scripts/predict.py"],
        ["python", "scripts/predict.py"],
    ], "the quick start changed: update this test"
    (tmp_path / "reviews.txt").write_text("a wonderful, moving film\nawful and boring\n", encoding="utf-8")
    outputs = tmp_path / "outputs"
    run_dir: Path | None = None
    for command in commands:
        words = shlex.split(command)
        if words[0] == "tensorboard":  # what it reads: every run's events under outputs/
            assert len(list(outputs.rglob("events.out.tfevents.*"))) == 1 + 6
            continue
        if run_dir is not None:
            words = [word.replace("RUN_DIR", str(run_dir)) for word in words]
        multirun = next(iter(outputs.glob("multirun/*")), None)
        words = [str(multirun) if word == "outputs/multirun/DATE_TIME" else word for word in words]
        script = [str(ROOT / words[1]), *words[2:], *(TINY if words[1] == "train.py" else [])]
        result = run_script(script, env, cwd=tmp_path)
        if words[1] == "train.py" and "-m" not in words:
            (run_dir,) = outputs.glob("imdb/lstm-1x*/*")  # outputs/imdb/lstm-1x128/DATE_TIME with the default size
            assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run_dir.name)
            assert {"metrics.json", "train.log", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
        elif words[1] == "train.py":
            assert multirun is None and len(list(outputs.glob("multirun/*/*/metrics.json"))) == 6
        elif words[1] == "scripts/compare.py":
            assert multirun is not None and (multirun / "COMPARE.md").is_file() and (multirun / "compare.csv").is_file()
        elif "--input" in words:
            answers = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
            assert len(answers) == 2 and all(answer["label"] in ("negative", "positive") for answer in answers)
        else:
            answer = json.loads(result.stdout)
            assert set(answer) == {"label", "probability", "probabilities"}  # as the README's example line
            assert set(answer["probabilities"]) == {"negative", "positive"}
    # From Python, as the README's last line
    from seqmodels import load_run

    assert len(load_run(run_dir).predict(["a wonderful film", "dull"])) == 2


SOURCES = [*DOCS, *sorted((ROOT / "scripts").glob("*.py")), *sorted((ROOT / "src" / "seqmodels").rglob("*.py"))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_document_or_help_text_shows_the_old_run_layout(path):
    """Runs are outputs/TASK/MODEL/DATE_TIME (multirun: outputs/multirun/DATE_TIME/<n>_<overrides>)."""
    old = re.search(r"outputs/(multirun/)?(DATE/TIME|\d{4}-\d\d-\d\d/)", path.read_text(encoding="utf-8"))
    assert not old, old.group(0)


def test_every_document_the_code_and_configs_point_at_exists():
    code = [*sorted((ROOT / "scripts").glob("*.py")), *sorted((ROOT / "src" / "seqmodels").rglob("*.py"))]
    code += sorted((ROOT / "src" / "seqmodels" / "configs").rglob("*.yaml"))
    named_docs = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in code
        for name in re.findall(r"docs/[\w-]+\.md", path.read_text(encoding="utf-8"))
        if not (ROOT / name).is_file()
    }
    assert not named_docs, sorted(named_docs)
