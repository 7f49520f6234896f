"""Data-parallel training: sharding that keeps buckets and covers an epoch once, and torchrun with
two CPU processes (gloo) end to end on the tiny fixtures."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, run_script
from seqmodels.data.batching import BucketBatchSampler
from seqmodels.data.corpus import IGNORE, StreamWindows, lay_out

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


# -- sharding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("examples,batch_size", [(103, 8), (96, 8), (17, 8), (9, 4)])
@pytest.mark.parametrize("ranks", [2, 3])
def test_training_shards_are_disjoint_equal_in_steps_and_cover_the_epoch(examples, batch_size, ranks):
    lengths = torch.randint(1, 60, (examples,), generator=torch.Generator().manual_seed(examples))
    everyone = BucketBatchSampler(lengths, batch_size, shuffle=True, seed=3, pool_batches=4)
    shards = []
    for rank in range(ranks):
        sampler = BucketBatchSampler(lengths, batch_size, shuffle=True, seed=3, pool_batches=4)
        sampler.shard(rank, ranks)
        sampler.set_epoch(2)
        shards.append(sampler.batches())
        assert len(sampler) == len(shards[-1])
    everyone.set_epoch(2)
    assert len({len(shard) for shard in shards}) == 1  # every rank takes the same number of steps
    seen = [index for shard in shards for batch in shard for index in batch]
    assert len(seen) == len(set(seen))  # disjoint
    leftover = sum(map(len, everyone.batches())) - sum(map(len, everyone.batches()[: len(shards[0]) * ranks]))
    assert len(seen) == examples or (len(seen) == examples - leftover and leftover < ranks)
    # whole batches are the single-process batches of this epoch: buckets stay buckets
    whole = {tuple(batch) for batch in everyone.batches()}
    assert sum(tuple(batch) not in whole for shard in shards for batch in shard) <= ranks


@pytest.mark.parametrize("ranks", [2, 3])
def test_evaluation_shards_cover_the_split_exactly_once(ranks):
    lengths = torch.randint(1, 60, (41,), generator=torch.Generator().manual_seed(0))
    seen = []
    for rank in range(ranks):
        sampler = BucketBatchSampler(lengths, 4, shuffle=False)
        sampler.shard(rank, ranks)
        seen += [index for batch in sampler for index in batch]
    assert sorted(seen) == list(range(41))


def test_language_model_streams_are_split_so_every_token_is_predicted_once():
    streams = lay_out(torch.arange(1000, dtype=torch.int32), num_streams=5)
    targets = []
    for rank in range(2):
        windows = StreamWindows(streams, bptt=7, make_batch=lambda inputs, targets: targets)
        windows.shard(rank, 2)
        assert len(windows) == len(StreamWindows(streams, 7, None))  # the same steps on every rank
        targets += [t for window in windows for t in window.flatten().tolist() if t != IGNORE]
    assert sorted(targets) == list(range(1, 1000))
    with pytest.raises(ValueError, match="5 streams cannot be shared by 6 processes"):
        StreamWindows(streams, 7, None).shard(5, 6)


# -- torchrun end to end ------------------------------------------------------------------------
def torchrun(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([*TORCHRUN, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"torchrun exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_root):
    """torchrun --nproc_per_node=2 train.py on the IMDB fixture, 2 epochs, with a probe on each rank."""
    tmp = tmp_path_factory.mktemp("ddp")
    scratch = tmp / "tmp"
    scratch.mkdir()
    env = {
        **os.environ,
        "SEQMODELS_DATA_DIR": str(data_root),
        "SEQMODELS_CACHE_DIR": str(tmp / "cache"),
        "TMPDIR": str(scratch),
        "PYTHONUNBUFFERED": "1",
    }
    overrides = [o for o in TINY if not o.startswith("trainer.num_threads")]
    torchrun(
        str(ROOT / "tests" / "helpers" / "ddp_probe.py"),
        [str(tmp), *overrides, "trainer.max_epochs=2", "data.batch_size=4", f"hydra.run.dir={tmp / 'run'}"],
        env,
    )
    return tmp, env


@pytest.mark.slow
def test_each_rank_reads_its_own_part_of_every_epoch(ddp_run):
    tmp, _ = ddp_run
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]
    examples = int(re.search(r"train examples\s+(\d+)", (tmp / "run" / "train.log").read_text()).group(1))
    for epoch in (1, 2):
        shards = [[i for b in rank["batches"] if b["epoch"] == epoch for i in b["indices"]] for rank in ranks]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(examples))
    assert all(rank["threads"] == 1 for rank in ranks)  # 2 ranks share the 2 cores: one thread each


@pytest.mark.slow
def test_rank_0_holds_the_run_directory_lock_for_every_rank(ddp_run):
    tmp, _ = ddp_run
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["pid"] != ranks[1]["pid"]
    # while they train, both ranks see one lock on the run directory, and it names rank 0's process
    assert ranks[0]["lock"]["pid"] == ranks[1]["lock"]["pid"] == ranks[0]["pid"]


@pytest.mark.slow
def test_weights_are_identical_on_both_ranks_after_every_step(ddp_run):
    tmp, _ = ddp_run
    digests = [json.loads((tmp / f"rank{r}.json").read_text())["digests"] for r in range(2)]
    assert len(digests[0]) == len(digests[1]) > 4
    assert digests[0] == digests[1]
    assert len(set(digests[0])) == len(digests[0])  # and they did change at every step


@pytest.mark.slow
def test_one_set_of_run_files_written_by_rank_0(ddp_run):
    tmp, _ = ddp_run
    run = tmp / "run"
    names = sorted(p.name for p in run.iterdir())
    events = [name for name in names if name.startswith("events.out.tfevents.")]
    assert len(events) == 1  # TensorBoard's events, from rank 0 only
    assert [name for name in names if name not in events] == [
        ".hydra",
        ".run.lock",
        "checkpoints",
        "gradient_flow.json",
        "metrics.json",
        "train.log",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert (run / ".run.lock").read_text() == ""  # rank 0 released the run's lock when it ended
    assert not list((tmp / "tmp").glob("seqmodels-rank*"))  # rank 1's scratch directory for Hydra is gone
    log = (run / "train.log").read_text()
    assert "data-parallel: 2 processes (gloo)" in log and log.count("best epoch") == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["processes"] == 2 and metrics["epochs_run"] == 2


@pytest.mark.slow
def test_reduced_metrics_equal_a_single_process_evaluation_of_the_checkpoint(ddp_run):
    tmp, env = ddp_run
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    single = json.loads(run_script([str(ROOT / "scripts" / "evaluate.py"), str(tmp / "run")], env).stdout)
    for split in ("val", "test"):
        assert single[split]["accuracy"] == metrics[split]["accuracy"]
        assert single[split]["loss"] == pytest.approx(metrics[split]["loss"], rel=1e-6)


@pytest.mark.slow
def test_resume_from_a_two_process_checkpoint_in_one_process(ddp_run, tmp_path):
    tmp, env = ddp_run
    shutil.copytree(tmp / "run", tmp_path / "run")
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    run_script(
        [
            str(ROOT / "train.py"),
            *overrides,
            "trainer.max_epochs=3",
            "data.batch_size=4",
            f"trainer.resume={tmp_path / 'run'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        env,
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["processes"] == 1 and len(metrics["history"]) == 3


def test_language_model_under_torchrun_evaluates_every_token_once(tmp_path, env):
    overrides = [o for o in TINY if not o.startswith("trainer.num_threads")]
    torchrun(
        str(ROOT / "train.py"),
        [*overrides, "task=ptb", "data.bptt=5", "data.eval_batch_size=3", f"hydra.run.dir={tmp_path / 'run'}"],
        env,
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    single = json.loads(run_script([str(ROOT / "scripts" / "evaluate.py"), str(tmp_path / "run")], env).stdout)
    for split in ("val", "test"):
        assert single[split]["perplexity"] == pytest.approx(metrics[split]["perplexity"], rel=1e-6)


# -- Hydra's submitit launcher --------------------------------------------------------------------
def test_a_multirun_through_submitit_local_completes_every_job(tmp_path, env):
    overrides = [o for o in TINY if not o.startswith("trainer.num_threads")]
    run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "hydra/launcher=submitit_local",
            *overrides,
            "model=rnn,gru",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env,
    )
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
        assert (job / "checkpoints" / "best.pt").is_file() and any(job.glob("events.out.tfevents.*"))
        # submitit_local starts both jobs at once: each takes one of the cores
        assert "threads: 1 (" in (job / "train.log").read_text()


def test_a_submitit_job_of_two_tasks_trains_data_parallel(tmp_path, env):
    run_script(
        [
            str(ROOT / "train.py"),
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.cpus_per_task=1",
            *TINY,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env,
    )
    (job,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and not p.name.startswith(".")]
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["processes"] == 2
    assert "data-parallel: 2 processes (gloo)" in (job / "train.log").read_text()
