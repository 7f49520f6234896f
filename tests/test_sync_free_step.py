"""A training step never waits for the device (no host sync), proved on the CPU.

On CUDA the host queues a step's copies and kernels while the GPU still runs the previous ones; a step
that reads a value of a device tensor (`.item()`, `float()`, `bool()`, `.tolist()`, a Python branch on
a tensor, selecting by a boolean mask, whose size only the device knows) waits for all of them. Here the
model and the batches lie on PyTorch's meta device, whose tensors have shapes and dtypes but no values:
any such read raises, in our code or in torch's (the optimizer, clipping, the moving average). The
lengths of a batch stay real CPU tensors (`Batch.host_fields`), which cost nothing to read.

The one place `Trainer.train_epoch` reads the device is `trainer.host_values`; the tests replace it with
a recorder (on meta there is nothing to read) and check that it is called at logging steps and at the
end of the epoch only. On the CPU, with real values, they check what those readings give: the epoch's
loss, the TensorBoard points, the progress line, and a diverged loss stopping training with its steps.
"""

from __future__ import annotations

import logging
import math
import traceback
from pathlib import Path

import pytest
import torch
import torch.optim.optimizer as optimizer_module
from omegaconf import DictConfig
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.overrides import TorchFunctionMode

from helpers.parallel_text import write_multi30k
from seqmodels.config import compose_config
from seqmodels.data.corpus import IGNORE
from seqmodels.errors import TrainingError
from seqmodels.models.embedding import WordEmbedding
from seqmodels.tasks import get_task
from seqmodels.tasks.base import StepOutput, Task, TaskData
from seqmodels.training import distributed
from seqmodels.training import trainer as trainer_module
from seqmodels.training.averaging import MovingAverage
from seqmodels.training.trainer import Trainer

META = torch.device("meta")

# Every kind of task, with the parts of its model that run in a step switched on: bidirectional and
# stacked layers, each pooling, a CRF and the per-token loss, characters, shapes, attention and word
# dropout, a carried language-model state, both attentions of translation and scheduled sampling, the
# moving average of the weights.
CASES = {
    "sentiment": ["task=imdb", "model=bilstm", "model.num_layers=2", "model.pooling=meanmax"],
    "sentiment_last_ema": ["task=imdb", "model=gru", "model.pooling=last", "trainer.ema_decay=0.9"],
    "ner_crf": [
        "task=conll2003",
        "model=bilstm",
        "model.crf=true",
        "model.char_dim=8",
        "model.char_filters=8",
        "model.shape_dim=4",
        "model.word_dropout=0.1",
    ],
    "ner_softmax": ["task=conll2003", "model=lstm", "model.valid_tags=true", "model.attention_dim=8"],
    "language_model": ["task=ptb", "model.num_layers=2", "data.bptt=10"],
    "translation_luong": [
        "task=multi30k",
        "model=gru",
        "model.bidirectional=true",
        "model.attention=luong",
        "data.vocab_size=60",
    ],
    "translation_bahdanau": [
        "task=multi30k",
        "model=lstm",
        "model.attention=bahdanau",
        "model.reverse_source=true",
        "model.teacher_forcing=0.5",
        "data.vocab_size=60",
    ],
}
TINY = [
    "model.embedding_dim=8",
    "model.hidden_size=12",
    "data.batch_size=4",
    "data.download=false",
    "trainer.gradient_flow=false",
    "trainer.progress_interval_s=1000000",
    "trainer.num_threads=1",
]
STEPS = 5
NEVER = "trainer.log_every_n_steps=1000"  # no logging step in an epoch of STEPS steps


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prepare(data_root, tmp_path_factory):
    """`prepare(case, *overrides)`: the config, task and data of a case (data cached across the module)."""
    roots = {"multi30k": write_multi30k(tmp_path_factory.mktemp("mt_data"))}
    cache = tmp_path_factory.mktemp("cache")

    def prepared(case: str, *overrides: str) -> tuple[DictConfig, Task, TaskData]:
        root = roots.get(CASES[case][0].removeprefix("task="), data_root)
        cfg = compose_config(
            [
                *CASES[case],
                *TINY,
                f"data.root={root}",
                f"data.cache_dir={cache}",
                f"trainer.limit_train_batches={STEPS}",
                *overrides,
            ]
        )
        task = get_task(cfg)
        return cfg, task, task.prepare()

    return prepared


class Points:
    """A stand-in for the run's TensorBoard logger (which `fit` opens): the scalars logged, by tag."""

    def __init__(self) -> None:
        self.logged: dict[str, list[tuple[int, float]]] = {}

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.logged.setdefault(tag, []).append((step, value))


def make_trainer(cfg: DictConfig, task: Task, data: TaskData, run_dir: Path) -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(cfg, task, data, task.build_model(data.artifacts), run_dir)
    trainer.logger = Points()  # in place of what fit() opens
    return trainer


class HostReads:
    """`trainer.host_values` on the meta device: records the global step of each reading and gives zeros."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.steps: list[int] = []

    def __call__(self, *tensors: torch.Tensor) -> list[float]:
        assert all(t.device == META for t in tensors)
        self.steps.append(self.trainer.global_step)
        return [0.0] * len(tensors)


def meta_trainer(prepare, monkeypatch, tmp_path: Path, case: str, *overrides: str) -> tuple[Trainer, HostReads]:
    """A trainer of `case` whose model and batches lie on the meta device, its host readings recorded."""
    cfg, task, data = prepare(case, *overrides)
    monkeypatch.setattr(trainer_module, "resolve_device", lambda name: META)
    # autocast knows no meta device and raises when asked about it: nothing runs under autocast there
    is_autocast_enabled = torch.is_autocast_enabled
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *kind: kind != ("meta",) and is_autocast_enabled(*kind))
    # the fused Adam that training uses has meta kernels, but its check of the parameters' device omits meta
    fused_devices = optimizer_module._get_fused_kernels_supported_devices
    monkeypatch.setattr(optimizer_module, "_get_fused_kernels_supported_devices", lambda: [*fused_devices(), "meta"])
    trainer = make_trainer(cfg, task, data, tmp_path)
    assert next(trainer.model.parameters()).device == META
    reads = HostReads(trainer)
    monkeypatch.setattr(trainer_module, "host_values", reads)
    return trainer, reads


@pytest.mark.parametrize("case", list(CASES))
def test_no_training_step_reads_a_value_from_the_device(case, prepare, monkeypatch, tmp_path):
    trainer, reads = meta_trainer(prepare, monkeypatch, tmp_path, case, NEVER)
    trainer.train_epoch()  # any read of a meta tensor's value would raise here
    assert trainer.global_step == STEPS
    assert reads.steps == [STEPS]  # once, at the end of the epoch
    assert trainer.logger.logged == {}


def test_the_device_is_read_at_logging_steps_and_at_the_end_of_the_epoch(prepare, monkeypatch, tmp_path):
    trainer, reads = meta_trainer(prepare, monkeypatch, tmp_path, "sentiment", "trainer.log_every_n_steps=2")
    trainer.train_epoch()
    assert reads.steps == [2, 4, 5]
    assert [step for step, _ in trainer.logger.logged["train/loss"]] == [2, 4]


def test_a_batch_keeps_its_lengths_on_the_host_and_moves_the_rest(prepare):
    for case, host in (("sentiment", "lengths"), ("ner_crf", "lengths"), ("translation_luong", "source_lengths")):
        _, _, data = prepare(case)
        batch = next(iter(data.train))
        moved = batch.to(META)
        assert type(batch).host_fields == (host,)
        for name, value in vars(moved).items():
            if isinstance(value, torch.Tensor):
                assert value.device == (torch.device("cpu") if name == host else META), name
        assert torch.equal(getattr(moved, host), getattr(batch, host))


class CopiesToCuda(TorchFunctionMode):
    """Stands in for CUDA where there is none: records pinning and copies to "cuda", and does neither."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, torch.Size, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.pin_memory:
            self.calls.append(("pin", args[0].shape, False))
            return args[0]
        if func is torch.Tensor.to and torch.device(args[1]).type == "cuda":
            self.calls.append(("to", args[0].shape, kwargs.get("non_blocking", False)))
            return args[0]
        return func(*args, **kwargs)


def test_on_cuda_a_batch_is_copied_from_pinned_memory_without_waiting(prepare):
    _, _, data = prepare("ner_crf")
    batch = next(iter(data.train))
    with CopiesToCuda() as copies:
        batch.to(torch.device("cuda"))
    moved = [value for name, value in vars(batch).items() if isinstance(value, torch.Tensor) and name != "lengths"]
    assert len(moved) == 4  # tokens, tags, characters, shapes; not the lengths
    assert copies.calls == [call for t in moved for call in (("pin", t.shape, False), ("to", t.shape, True))]
    with CopiesToCuda() as copies:
        batch.to(torch.device("cpu"))
    assert copies.calls == []  # nothing pinned (nor copied to CUDA) for the CPU


def test_a_step_counts_its_tokens_and_examples_on_the_host(prepare, monkeypatch, tmp_path):
    trainer, _ = meta_trainer(prepare, monkeypatch, tmp_path, "language_model", NEVER)
    window = next(iter(trainer.data.train))
    trainer.task.start_pass(trainer.model, "train")
    out = trainer.task.step(trainer.model, window.to(META))
    assert out.num_tokens == out.num_examples == int((window.targets != IGNORE).sum()) and out.details is None


def test_frozen_pretrained_words_are_looked_up_without_asking_the_device_where_they_are():
    embedding = WordEmbedding(10, 4, frozen_words=3).to(META)
    assert embedding(torch.zeros(2, 5, dtype=torch.long, device=META)).shape == (2, 5, 4)
    real = WordEmbedding(10, 4, frozen_words=3)
    real.frozen.copy_(torch.randn(3, 4))
    ids = torch.tensor([[0, 6, 7, 9]])  # padding, a trained word, the first and the last frozen word
    expected = torch.stack([real.weight[0], real.weight[6], real.frozen[0], real.frozen[2]])
    assert torch.equal(real(ids)[0], expected)


def test_the_moving_average_is_torchs_exponential_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))  # weights and buffers
    mine, torchs = MovingAverage(model, 0.8), AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8))
    for _ in range(3):
        with torch.no_grad():
            for weight in model.parameters():
                weight.add_(torch.randn_like(weight))
        model(torch.randn(5, 3))  # the batch norm's running statistics move
        mine.update_parameters(model)
        torchs.update_parameters(model)
    assert mine.n_averaged.device.type == "cpu" and int(mine.n_averaged) == 3
    for (name, value), expected in zip(mine.module.state_dict().items(), torchs.module.state_dict().values()):
        torch.testing.assert_close(value, expected, msg=name)


# -- copies to the device that wait ---------------------------------------------------------------------
class BlockingCopies(TorchFunctionMode):
    """Records host-to-device copies that wait for the device, as "function (file:line)" of their caller:
    `Tensor.to` or `copy_` without `non_blocking` (CUDA runs them after every kernel queued before) and
    `torch.tensor(..., device=...)` from Python data."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is torch.Tensor.to and isinstance(result, torch.Tensor):
            if args[0].device.type == "cpu" and result.device.type != "cpu" and not kwargs.get("non_blocking"):
                self._record()
        elif func is torch.Tensor.copy_:
            target, source = args[0], args[1]
            blocking = not (kwargs.get("non_blocking") or (len(args) > 2 and args[2]))
            if source.device.type == "cpu" and target.device.type != "cpu" and blocking:
                self._record()
        elif func is torch.tensor and isinstance(result, torch.Tensor) and result.device.type != "cpu":
            self._record()
        return result

    def _record(self) -> None:
        caller = traceback.extract_stack()[-3]  # above this method and __torch_function__
        self.found.append(f"{caller.name} ({Path(caller.filename).name}:{caller.lineno})")


def copies_of_an_epoch(trainer: Trainer) -> list[str]:
    with BlockingCopies() as copies:
        trainer.train_epoch()
    return copies.found


@pytest.mark.parametrize("case", list(CASES))
def test_no_training_step_copies_to_the_device_with_a_copy_that_waits(case, prepare, monkeypatch, tmp_path):
    trainer, _ = meta_trainer(prepare, monkeypatch, tmp_path, case, NEVER)
    assert copies_of_an_epoch(trainer) == []


def test_the_packed_encoder_neither_reads_the_device_nor_waits_for_it(prepare, monkeypatch, tmp_path):
    """torch's own sorting (pack_padded_sequence with enforce_sorted=False) would copy the order to the
    device with a copy that waits, and pad_packed_sequence would read it back."""
    trainer, reads = meta_trainer(prepare, monkeypatch, tmp_path, "sentiment", NEVER, "model.rnn_impl=packed")
    assert copies_of_an_epoch(trainer) == [] and reads.steps == [STEPS]


# -- the values read, on the CPU -----------------------------------------------------------------------
def recording_losses(task: Task, monkeypatch) -> list[tuple[float, int]]:
    """Each training step's (loss, examples), read in the step itself (on the CPU, at no cost)."""
    losses: list[tuple[float, int]] = []
    real_step = task.step

    def step(model, batch) -> StepOutput:
        out = real_step(model, batch)
        losses.append((float(out.loss.detach()), out.num_examples))
        return out

    monkeypatch.setattr(task, "step", step)
    return losses


def mean(losses: list[tuple[float, int]]) -> float:
    return sum(loss * n for loss, n in losses) / sum(n for _, n in losses)


@pytest.mark.parametrize("case", list(CASES))
def test_the_values_read_are_the_epoch_loss_the_logged_points_and_the_shown_loss(
    case, prepare, tmp_path, monkeypatch, caplog
):
    cfg, task, data = prepare(case, "trainer.device=cpu", "trainer.log_every_n_steps=2")
    trainer = make_trainer(cfg, task, data, tmp_path)
    losses = recording_losses(task, monkeypatch)
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        result = trainer.train_epoch()
    assert len(losses) == STEPS
    assert result["loss"] == pytest.approx(mean(losses), abs=1e-6)
    assert trainer.position.loss_sum == pytest.approx(mean(losses) * trainer.position.examples, abs=1e-5)
    logged = trainer.logger.logged
    assert logged["train/loss"] == [(2, pytest.approx(losses[1][0], abs=1e-6)), (4, pytest.approx(losses[3][0]))]
    assert [step for step, _ in logged["vitals/grad_norm"]] == [2, 4]
    assert all(math.isfinite(norm) and norm > 0 for _, norm in logged["vitals/grad_norm"])
    # the progress line of the epoch's end shows the mean loss of the steps after the last logging step
    assert f"[{STEPS}/{STEPS}] loss {losses[4][0]:.4f} |" in caplog.text


# -- a diverged loss ------------------------------------------------------------------------------------
def diverging(task: Task, monkeypatch, at: int, value: float) -> None:
    """Training step `at` (from 1) of `task` returns a loss of `value` (its weights then go bad too)."""
    calls = []
    real_step = task.step

    def step(model, batch) -> StepOutput:
        out = real_step(model, batch)
        calls.append(1)
        if len(calls) == at:
            out.loss = out.loss * value
        return out

    monkeypatch.setattr(task, "step", step)


@pytest.mark.parametrize(
    "every,at,value,found",
    [
        (3, 2, math.nan, "nan at epoch 1, between steps 1 and 3"),  # found at the next logging step
        (3, 5, math.inf, "inf at epoch 1, between steps 4 and 5"),  # found at the end of the epoch
        (1, 3, math.nan, "nan at epoch 1, step 3"),  # every step logs: found at once
    ],
)
def test_a_diverged_loss_stops_training_naming_the_steps_and_the_remedy(
    every, at, value, found, prepare, tmp_path, monkeypatch
):
    cfg, task, data = prepare("sentiment", "trainer.device=cpu", f"trainer.log_every_n_steps={every}")
    trainer = make_trainer(cfg, task, data, tmp_path)
    diverging(task, monkeypatch, at, value)
    with pytest.raises(TrainingError) as raised:
        trainer.train_epoch()
    assert str(raised.value) == (
        f"training loss became {found}; lower optim.lr or set trainer.grad_clip (now 1.0). "
        "checkpoints/last.pt holds the last good epoch"
    )
    assert trainer.position.loss_sum == 0.0  # nothing of the epoch is kept, to be saved


def test_ctrl_c_after_a_diverged_step_raises_instead_of_saving_the_bad_weights(prepare, tmp_path, monkeypatch):
    cfg, task, data = prepare("sentiment", "trainer.device=cpu", NEVER)
    trainer = make_trainer(cfg, task, data, tmp_path)
    diverging(task, monkeypatch, 1, math.nan)
    real_step = task.step

    def interrupted_step(model, batch) -> StepOutput:
        trainer.stop_requested = True  # Ctrl-C during step 1: one process stops after it
        return real_step(model, batch)

    monkeypatch.setattr(task, "step", interrupted_step)
    with pytest.raises(TrainingError, match=r"training loss became nan at epoch 1, step 1;"):
        trainer.train_epoch()
    assert trainer.global_step == 1


# -- under torchrun --------------------------------------------------------------------------------------
def torchrun_trainer(prepare, tmp_path: Path, monkeypatch, answer) -> tuple[Trainer, list[tuple[int, bool]]]:
    """A trainer that believes it is rank 0 of 2; `answer(step, flag)` plays the ranks' `any_rank`, and what
    this rank asked, at which global step, is recorded."""
    cfg, task, data = prepare("sentiment", "trainer.device=cpu", "trainer.log_every_n_steps=2")
    trainer = make_trainer(cfg, task, data, tmp_path)
    trainer.world = distributed.World(rank=0, size=2)
    asked: list[tuple[int, bool]] = []

    def any_rank(flag: bool, device: torch.device) -> bool:
        asked.append((trainer.global_step, flag))
        return answer(trainer.global_step, flag)

    monkeypatch.setattr(distributed, "any_rank", any_rank)
    return trainer, asked


def test_under_torchrun_the_ranks_agree_to_stop_at_the_next_logging_step(prepare, tmp_path, monkeypatch):
    trainer, asked = torchrun_trainer(prepare, tmp_path, monkeypatch, lambda step, flag: flag)
    real_step = trainer.task.step

    def step(model, batch) -> StepOutput:
        trainer.stop_requested = trainer.stop_requested or trainer.global_step == 2  # Ctrl-C during step 3
        return real_step(model, batch)

    monkeypatch.setattr(trainer.task, "step", step)
    trainer.train_epoch()
    assert trainer.global_step == 4 and trainer.stop_requested  # step 4 logs: the ranks agree, all stop there
    # each meeting asks whether the loss diverged anywhere, then whether any rank must stop
    assert asked == [(2, False), (2, False), (4, False), (4, True), (4, False), (4, True)]


def test_under_torchrun_a_loss_that_diverged_on_another_rank_stops_this_one_too(prepare, tmp_path, monkeypatch):
    trainer, asked = torchrun_trainer(prepare, tmp_path, monkeypatch, lambda step, flag: flag or step == 2)
    with pytest.raises(TrainingError, match=r"^training loss became non-finite in another process at epoch 1, "):
        trainer.train_epoch()
    assert asked == [(2, False)]
