"""Random and hostile overrides and file contents: a run either works or fails with one clean
line (a SeqmodelsError, or Hydra's own override message) — never a raw traceback, never a hang."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import composed, write_aclimdb, write_conll
from seqmodels.cli import check_group_overrides
from seqmodels.errors import ConfigError, DataError, SeqmodelsError
from seqmodels.tasks import get_task
from seqmodels.train import run

KEYS = [
    "model.hidden_size",
    "model.num_layers",
    "model.dropout",
    "model.embedding_dim",
    "model.cell",
    "model.bidirectional",
    "model.pooling",
    "data.batch_size",
    "data.max_length",
    "data.vocab_size",
    "data.min_freq",
    "data.keep",
    "data.val_fraction",
    "trainer.max_epochs",
    "trainer.grad_clip",
    "trainer.device",
    "trainer.precision",
    "trainer.limit_train_batches",
    "trainer.early_stopping_patience",
    "trainer.ema_decay",
    "optim.lr",
    "optim.name",
    "optim.schedule",
    "optim.weight_decay",
    "optim.momentum",
    "optim.warmup_steps",
    "optim.betas",
    "seed",
    "task",
    "model",
    "optim",
]
HOSTILE = st.one_of(
    st.integers(-3, 3).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "abc",
            "",
            "null",
            "true",
            "[1,2]",
            "{a: 1}",
            "1e309",
            "-0",
            "'",
            "${oc.env:NOPE_NOT_SET}",
            "${data.root}",
            "lstm",
            "gru",
            "sgd",
            "imdb",
            "cuda",
            "nan",
            "[0.9]",
            "1.5",
        ]
    ),
    st.text(max_size=6),
)
SMALL = [
    "model.embedding_dim=4",
    "model.hidden_size=4",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.num_threads=1",
    "data.batch_size=8",
]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    write_aclimdb(root / "imdb", per_folder=6)
    return root


@pytest.mark.slow  # 40 whole runs
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS), HOSTILE), min_size=1, max_size=3))
def test_hostile_overrides_run_or_fail_cleanly(overrides, small_root):
    rendered = [f"{key}={value}" for key, value in overrides]
    try:
        check_group_overrides(rendered)  # what train.py does before Hydra sees the overrides
    except ConfigError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg = composed(
                *SMALL, f"data.root={small_root}", f"data.cache_dir={tmp}/cache", "data.download=false", *rendered
            )
        except HydraException:
            return  # Hydra's own message for a bad override (printed without traceback by the CLI)
        try:
            results = run(cfg, Path(tmp) / "run")
        except SeqmodelsError as error:
            assert "\n" not in str(error) and str(error), rendered
            return
        # a run that took the overrides finished as a run does: its report, its metrics and its checkpoints
        run_dir = Path(tmp) / "run"
        assert results["status"] == "completed", rendered
        written = json.loads((run_dir / "metrics.json").read_text())
        assert json.dumps(written, sort_keys=True) == json.dumps(results, sort_keys=True), rendered
        promised = get_task(cfg).metrics
        assert set(promised) <= set(results["val"]) and set(promised) <= set(results["test"]), rendered
        assert (run_dir / "checkpoints" / "best.pt").is_file() and (run_dir / "checkpoints" / "last.pt").is_file()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200), which=st.sampled_from(["review", "conll"]))
def test_hostile_file_contents_are_read_or_refused_cleanly(content, which, tmp_path_factory):
    root = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        if which == "review":
            tree = write_aclimdb(root / "imdb", per_folder=3)
            (tree / "train" / "pos" / "0_9.txt").write_bytes(content)
            overrides = ["task=imdb"]
        else:
            folder = write_conll(root / "conll2003", sizes={"eng.train": 6, "eng.testa": 3, "eng.testb": 3})
            with open(folder / "eng.train", "ab") as handle:
                handle.write(b"\n" + content + b"\n")
            overrides = ["task=conll2003"]
        cfg = composed(
            *overrides,
            f"data.root={root}",
            f"data.cache_dir={root / 'cache'}",
            "data.download=false",
            "data.batch_size=2",
        )
        try:
            get_task(cfg).prepare()
        except DataError as error:
            assert "\n" not in str(error) and str(error)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_unresolvable_interpolation_is_one_line_naming_the_variable(small_root, tmp_path):
    cfg = composed(*SMALL, f"data.root={small_root}", "data.cache_dir=${oc.env:NOPE_NOT_SET}")
    with pytest.raises(ConfigError) as caught:
        run(cfg, tmp_path / "run")
    message = str(caught.value)
    assert "NOPE_NOT_SET" in message and "does not resolve" in message and "\n" not in message
    assert not (tmp_path / "run" / "best.pt").exists()
