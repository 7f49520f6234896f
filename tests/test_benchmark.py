"""scripts/benchmark_throughput.py and the section clock it reads from `Trainer.train_epoch`, on tiny data.

Nothing here asserts a speed: only that every task is timed through the real trainer, that each task
kind gets its plain-loop baseline, and that the language-model baseline is the same model."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time

import pytest
import torch
from omegaconf import open_dict

from conftest import ROOT
from seqmodels.config import compose_config
from seqmodels.data.corpus import IGNORE
from seqmodels.tasks import get_task
from seqmodels.training import timing
from seqmodels.training.timing import SectionClock, section

SPEC = importlib.util.spec_from_file_location("benchmark_throughput", ROOT / "scripts" / "benchmark_throughput.py")
benchmark = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = benchmark  # its dataclasses look their module up
SPEC.loader.exec_module(benchmark)

TINY = ["model.embedding_dim=8", "model.hidden_size=8", "data.batch_size=4", "data.download=false"]
SEQMODELS_ROW = re.compile(
    r"^\| seqmodels `Trainer\.train_epoch\(\)`, [a-z ]+ \| 3 \| [\d,]+ \| [\d.]+ \| (\S+) \| [\d.]+ \| (\S+) \|$",
    re.MULTILINE,
)


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()  # --threads sets the process' count
    yield
    torch.set_num_threads(threads)


def run_benchmark(capsys, data_root, tmp_path, *overrides: str) -> tuple[str, str]:
    argv = [
        f"data.root={data_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *TINY,
        *overrides,
        "--batches",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
    ]
    assert benchmark.main(argv) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def ratio(out: str) -> str:
    """seqmodels' "vs plain loop", after checking that its CPU-time ratio is of the same kind."""
    match = SEQMODELS_ROW.search(out)
    assert match, out
    assert match.group(2).endswith("x") == match.group(1).endswith("x"), match.group(0)
    return match.group(1)


def breakdown_rows(out: str) -> list[str]:
    names = (*benchmark.SECTIONS, "total (sum of sections)")
    firsts = [line.split(" | ")[0].removeprefix("| ") for line in out.splitlines()]
    return [first for first in firsts if first in names]


def test_sentiment_is_timed_against_the_plain_and_the_packed_loop(capsys, data_root, tmp_path):
    out, _ = run_benchmark(capsys, data_root, tmp_path, "task=imdb")
    assert re.search(
        r"^\| plain PyTorch loop, same model and batches \| 3 \| .* \| 1\.00x \| [\d.]+ \| 1\.00x \|$", out, re.M
    )
    assert "| `pack_padded_sequence` + nn.LSTM, random batches | 3 |" in out
    assert "| seqmodels `Trainer.train_epoch()`, bucketed batches | 3 |" in out
    assert ratio(out).endswith("x")
    assert breakdown_rows(out) == [*benchmark.SECTIONS, "total (sum of sections)"]
    assert "| padding, bucketed batches (epoch 1) |" in out and "max abs logit difference" in out


@pytest.mark.parametrize("task", ["imdb", "ptb"])
def test_seqmodels_and_the_plain_loop_train_the_same_batches(task, capsys, data_root, tmp_path):
    """After its warm-up epoch the trainer trains the timed epoch from its first batch, as the plain loop does."""
    report = tmp_path / "bench.json"
    run_benchmark(capsys, data_root, tmp_path, f"task={task}", "--repeats", "2", "--json", str(report))
    seqmodels, plain = json.loads(report.read_text())["variants"][:2]
    assert seqmodels["batches"] == plain["batches"] == 3 and seqmodels["tokens"] == plain["tokens"] > 0
    assert seqmodels["cpu_seconds"] > 0 and plain["cpu_seconds"] > 0 and plain["vs_plain_cpu"] == 1


def test_on_a_gpu_the_timed_epoch_runs_without_the_section_clock(capsys, data_root, tmp_path, monkeypatch):
    """Where the clock would wait for the device at every mark (`breakdown_apart`, CUDA), the timed epoch
    runs without it and a second pass over the same batches gives the breakdown: here on the CPU."""
    installed = []
    real_run_epoch = benchmark.run_epoch

    def run_epoch(trainer, limit):
        installed.append(timing.installed_clock() is not None)
        return real_run_epoch(trainer, limit)

    monkeypatch.setattr(benchmark, "breakdown_apart", lambda device: True)
    monkeypatch.setattr(benchmark, "run_epoch", run_epoch)
    report = tmp_path / "bench.json"
    out, _ = run_benchmark(capsys, data_root, tmp_path, "task=imdb", "--json", str(report))
    assert installed == [False, False, True]  # warm-up, the timed epoch, the breakdown's pass
    assert breakdown_rows(out) == [*benchmark.SECTIONS, "total (sum of sections)"]
    seqmodels, plain = json.loads(report.read_text())["variants"][:2]
    assert seqmodels["batches"] == plain["batches"] == 3 and seqmodels["tokens"] == plain["tokens"] > 0
    assert seqmodels["seconds"] > 0 and json.loads(report.read_text())["peak_cuda_memory_bytes"] is None


def test_ner_is_timed_against_its_plain_loop(capsys, data_root, tmp_path):
    out, err = run_benchmark(capsys, data_root, tmp_path, "task=conll2003", "model.char_dim=4", "model.char_filters=4")
    assert "| plain PyTorch loop, same model and batches | 3 |" in out and ratio(out).endswith("x")
    assert breakdown_rows(out) == [*benchmark.SECTIONS, "total (sum of sections)"]
    assert "packed" not in out and "no plain-loop baseline" not in err


@pytest.mark.parametrize("tie", ["false", "true"])
def test_a_language_model_is_timed_against_the_word_language_model_loop(tie, capsys, data_root, tmp_path):
    out, _ = run_benchmark(
        capsys,
        data_root,
        tmp_path,
        "task=ptb",
        "model.num_layers=2",
        f"model.tie_weights={tie}",
        "optim=sgd",
        "trainer.grad_clip=0.25",
    )
    assert "| pytorch/examples word_language_model loop, same weights and windows | 3 |" in out
    assert "| seqmodels `Trainer.train_epoch()`, windows in text order | 3 |" in out
    assert ratio(out).endswith("x")
    assert breakdown_rows(out) == [*benchmark.SECTIONS, "total (sum of sections)"]
    assert "| train layout | 4 streams x" in out and "padding" not in out
    difference = re.search(r"loss difference on one window \(eval\) \| (\S+) \|", out)
    assert difference and float(difference.group(1)) < 1e-5


def test_an_adaptive_softmax_has_no_baseline_and_says_so(capsys, data_root, tmp_path):
    out, err = run_benchmark(
        capsys, data_root, tmp_path, "task=ptb", "model.hidden_size=16", "model.adaptive_cutoffs=[4,10]"
    )
    assert ratio(out) == "—" and "word_language_model" not in out
    assert "model.adaptive_cutoffs" in err


@pytest.mark.parametrize(
    "cell,layers,tie", [("lstm", 2, False), ("lstm", 2, True), ("gru", 2, False), ("rnn", 3, False), ("lstm", 1, False)]
)
def test_the_plain_lm_baseline_is_the_same_model(cell, layers, tie, data_root, tmp_path):
    """Eval mode, two windows with the state carried: the pytorch/examples model holding the copied
    weights gives the loss of seqmodels' model, through the task's own step."""
    cfg = compose_config(
        [
            "task=ptb",
            f"data.root={data_root}",
            f"data.cache_dir={tmp_path}",
            *TINY,
            "data.bptt=5",
            f"model.cell={cell}",
            f"model.num_layers={layers}",
            f"model.tie_weights={tie}",
            "model.dropout=0.3",
        ]
    )
    task = get_task(cfg)
    data = task.prepare()
    torch.manual_seed(0)
    model = task.build_model(data.artifacts).eval()
    plain = benchmark.RNNModel.like(model).eval()
    assert (plain.decoder.weight is plain.encoder.weight) == tie
    task.start_pass(model, "val")
    hidden = plain.init_hidden(4)
    with torch.no_grad():
        for window in list(data.train)[:2]:
            mine = task.step(model, window).loss
            output, hidden = plain(window.inputs.t(), hidden)
            theirs = torch.nn.functional.cross_entropy(output, window.targets.t().reshape(-1), ignore_index=IGNORE)
            assert float(theirs) == pytest.approx(float(mine), rel=1e-5)


def test_the_section_clock_adds_up_the_time_of_each_section():
    clock = SectionClock("cpu")
    with clock.installed():
        for _ in range(3):
            with section("a"):
                time.sleep(0.001)
            with section("b"):
                pass
    assert set(clock.seconds) == {"a", "b"} and clock.seconds["a"] >= 0.003 and clock.seconds["b"] >= 0
    assert clock.total == pytest.approx(sum(clock.seconds.values()))
    assert timing.installed_clock() is None
    with section("a"):  # no clock installed: a profiler range only
        pass
    assert clock.seconds["a"] >= 0.003 and set(clock.seconds) == {"a", "b"}


def test_a_section_is_a_profiler_range():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile, section("forward"):
        torch.ones(3).sum()
    assert "forward" in {event.name for event in profile.events()}


def test_train_epoch_marks_every_section_of_every_step(data_root, tmp_path):
    cfg = compose_config(
        ["task=ptb", f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}", *TINY, "trainer.ema_decay=0.9"]
    )
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 2
    task = get_task(cfg)
    data = task.prepare()
    trainer = benchmark.make_trainer(cfg, task, data, tmp_path, "run")
    clock = SectionClock(trainer.device)
    try:
        with clock.installed():
            trainer.train_epoch()
    finally:
        trainer.logger.close()
    assert list(clock.seconds) == list(benchmark.SECTIONS)
