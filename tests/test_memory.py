"""Training that cannot fit in memory is refused before its first step, and an allocator failure in the first
steps is one line naming the keys that size a step, with the unstarted run directory removed. (Memory is never
really exhausted here: the available memory and the allocator's failure are stood in for.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import TINY, composed, run_script
from seqmodels.errors import ConfigError
from seqmodels.train import run
from seqmodels.training.runtime import GiB, available_memory, batch_tokens, estimate_training_memory, is_out_of_memory

CPU_FAILURE = "DefaultCPUAllocator: not enough memory: you tried to allocate 8053063680 bytes."


def test_the_estimate_counts_weights_six_times_and_each_tokens_activations_twice():
    model = nn.Sequential(nn.Embedding(10, 8), nn.LSTM(8, 16, num_layers=2, bidirectional=True), nn.Linear(32, 2))
    estimate = estimate_training_memory(model, tokens=100)
    parameters = sum(p.numel() for p in model.parameters())
    per_token = 4 * 16 * 2 * 2 + 2 + 8  # the LSTM's gates (2 layers x 2 directions), the logits, the embedding
    assert estimate.parameters == parameters and estimate.parameter_bytes == 6 * 4 * parameters
    assert estimate.activation_bytes == 2 * 100 * per_token * 4


def test_a_batch_counts_its_token_ids_and_the_machine_has_memory():
    class Batch:
        def __init__(self) -> None:
            self.inputs = torch.zeros(8, 50, dtype=torch.long)
            self.lengths = torch.full((8,), 50)
            self.weights = torch.zeros(8, 500)  # floats are not positions

    assert batch_tokens(Batch()) == 400
    assert 0 < available_memory(torch.device("cpu")) < 2**63


def test_allocator_failures_are_told_from_other_errors():
    assert is_out_of_memory(RuntimeError(CPU_FAILURE)) and is_out_of_memory(
        torch.OutOfMemoryError("CUDA out of memory")
    )
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def config(data_root, tmp_path, *overrides: str):
    return composed(*TINY, f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}", *overrides)


def test_what_cannot_fit_is_refused_before_the_first_step(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr("seqmodels.train.available_memory", lambda device: 2**10)  # a 1 KiB machine

    def no_step(*args, **kwargs):
        raise AssertionError("a step ran")

    monkeypatch.setattr("seqmodels.tasks.classification.ClassificationTask.step", no_step)
    with pytest.raises(ConfigError) as refused:
        run(config(data_root, tmp_path), tmp_path / "run")
    message = str(refused.value)
    assert message.startswith(
        "training needs about "
    ) and " GiB on cpu but 0.0 GiB are available (1,330 parameters" in (message)
    assert (
        message.endswith("; lower data.batch_size (now 8), model.hidden_size (now 12) or data.max_length (now 400)")
        and "\n" not in message
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_allocator_failure_in_the_first_steps_is_one_line(data_root, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError(CPU_FAILURE)

    monkeypatch.setattr("seqmodels.tasks.classification.ClassificationTask.step", out_of_memory)
    with pytest.raises(ConfigError) as refused:
        run(config(data_root, tmp_path), tmp_path / "run")
    assert str(refused.value) == (
        f"out of memory on cpu at epoch 1, step 1 (tried to allocate {8053063680 / GiB:.2f} GiB); lower "
        f"data.batch_size (now 8), model.hidden_size (now 12) or data.max_length (now 400)"
    )


# The command line with the machine's memory stood in for: `refuse` (1 KiB available) or `fail` (the allocator
# fails at the first step).
HARNESS = """
import sys
import seqmodels.train
from seqmodels.cli import main
from seqmodels.tasks.classification import ClassificationTask

def out_of_memory(*args, **kwargs):
    raise RuntimeError({failure!r})

if sys.argv[1] == "refuse":
    seqmodels.train.available_memory = lambda device: 2**10
else:
    ClassificationTask.step = out_of_memory
sys.argv = ["train.py", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("how", ["refuse", "fail"])
def test_the_command_line_says_it_in_one_line_and_leaves_no_run_directory(how, tmp_path, env):
    run_dir = tmp_path / "outputs" / "run"
    result = run_script(
        ["-c", HARNESS.format(failure=CPU_FAILURE), how, *TINY, f"hydra.run.dir={run_dir}"], env, check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    start = "error: training needs about" if how == "refuse" else "error: out of memory on cpu at epoch 1, step 1"
    assert line.startswith(start) and line.endswith("or data.max_length (now 400)"), line
    assert not run_dir.exists() and (tmp_path / "outputs").exists()  # the run's own folder only
