"""CUDA: one training step on the GPU equals the CPU's, the two encoder implementations agree there, and
a training step never waits for the device.

Every test here is marked `cuda` and skipped where `torch.cuda.is_available()` is False (this machine,
CI). `scripts/gpu_check.sh` runs them on a GPU machine: `pytest -m cuda tests/test_cuda.py`.

`SEQMODELS_TEST_DEVICE=cpu` runs them with the CPU standing in for the GPU, which checks the tests'
own code (fixtures, configs, the comparisons) where no GPU is: the comparisons then hold trivially and
the sync check has nothing to watch. gpu_check.sh's dry mode runs them so.

- One step: the same tiny model of each task kind, from the same weights, trains one batch through
  `Trainer.train_epoch` on the CPU and on the device; the loss, the gradients and the updated weights
  agree in float32 (TF32 off: it rounds matrix products to 10-bit mantissas), and under bf16 autocast
  the loss agrees within 2% and the gradient points the same way. The step uses plain SGD, whose update
  is the gradient times the rate: Adam's first update is about lr * sign(gradient), which turns
  last-bit differences of near-zero gradients into whole steps.
- Encoder: `RecurrentEncoder(impl="dense")` and `impl="packed"` with the same weights give the same
  outputs at real positions, final states and gradients.
- No sync: `torch.cuda.set_sync_debug_mode` from the end of the first step to the end of the last but
  one (no logging step among them), with either implementation, in its "warn" mode, so that every call
  that waits for the device is listed with the line that made it (the "error" mode stops at the first).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from helpers.parallel_text import write_multi30k
from seqmodels.config import compose_config
from seqmodels.models.encoder import RecurrentEncoder, length_mask
from seqmodels.tasks import get_task
from seqmodels.tasks.base import Task, TaskData
from seqmodels.training.runtime import seed_everything
from seqmodels.training.tensorboard import RunLogger
from seqmodels.training.timing import SectionClock
from seqmodels.training.trainer import Trainer

DEVICE = os.environ.get("SEQMODELS_TEST_DEVICE", "cuda")
ON_GPU = DEVICE == "cuda"
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        ON_GPU and not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
    ),
]

# A tiny model of each task kind, with the parts that differ between kinds switched on: bidirectional
# and stacked layers, pooling, a CRF and a character CNN, a carried language-model state, attention.
KINDS = {
    "sentiment": ["task=imdb", "model=bilstm", "model.num_layers=2", "model.pooling=meanmax"],
    "ner": ["task=conll2003", "model=bilstm", "model.crf=true", "model.char_dim=8", "model.char_filters=8"],
    "language_model": ["task=ptb", "model.num_layers=2", "data.bptt=10"],
    "translation": [
        "task=multi30k",
        "model=gru",
        "model.bidirectional=true",
        "model.attention=luong",
        "data.vocab_size=60",
    ],
}
TINY = [
    "model.embedding_dim=8",
    "model.hidden_size=12",
    "model.dropout=0",  # dropout masks come from each device's own generator
    "data.batch_size=4",
    "data.download=false",
    "trainer.gradient_flow=false",
    "trainer.log_every_n_steps=1000",  # no TensorBoard point (a sync by design) in the steps checked
    "trainer.progress_interval_s=1000000",
    "trainer.num_threads=1",
]


@pytest.fixture(scope="module")
def roots(data_root, tmp_path_factory) -> dict[str, Path]:
    return {"default": data_root, "translation": write_multi30k(tmp_path_factory.mktemp("mt_data"))}


@pytest.fixture()
def exact_float32() -> Iterator[None]:
    """float32 products in float32: TF32 (cuDNN's default on Ampere and later) rounds them to 10 bits."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def config(kind: str, roots: dict[str, Path], cache: Path, *overrides: str) -> DictConfig:
    root = roots.get(kind, roots["default"])
    return compose_config([*KINDS[kind], *TINY, f"data.root={root}", f"data.cache_dir={cache}", *overrides])


def make_trainer(cfg: DictConfig, task: Task, data: TaskData, weights: dict, run_dir: Path) -> Trainer:
    model = task.build_model(data.artifacts)
    model.load_state_dict(weights)
    trainer = Trainer(cfg, task, data, model, run_dir)
    trainer.logger = RunLogger(run_dir, enabled=False)  # what fit() opens; train_epoch logs nothing here
    return trainer


def trained_pair(
    kind: str, roots: dict[str, Path], tmp_path: Path, impl: str, precision: str, batches: int = 1
) -> tuple[Trainer, Trainer, dict[str, float], dict[str, float]]:
    """The same model trained `batches` batches on the CPU (dense) and on DEVICE (`impl`, `precision`)."""
    cache = tmp_path / "cache"
    limit = f"trainer.limit_train_batches={batches}"
    sgd = ["optim=sgd", "optim.lr=1.0"]  # an update that is the gradient times the rate (module docstring)
    cpu_cfg = config(kind, roots, cache, limit, *sgd, "trainer.device=cpu", "model.rnn_impl=dense")
    dev_cfg = config(
        kind,
        roots,
        cache,
        limit,
        *sgd,
        f"trainer.device={DEVICE}",
        f"model.rnn_impl={impl}",
        f"trainer.precision={precision}",
    )
    cpu_task, dev_task = get_task(cpu_cfg), get_task(dev_cfg)
    data = cpu_task.prepare()
    seed_everything(0)
    weights = cpu_task.build_model(data.artifacts).state_dict()
    cpu = make_trainer(cpu_cfg, cpu_task, data, weights, tmp_path / "cpu")
    dev = make_trainer(dev_cfg, dev_task, data, weights, tmp_path / "dev")
    return cpu, dev, cpu.train_epoch(), dev.train_epoch()


def gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    # After train_epoch the gradients of its last step are still there (clipped, as the step used them).
    return {name: p.grad.float().cpu() for name, p in trainer.model.named_parameters() if p.grad is not None}


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for _, t in sorted(tensors.items())])


@pytest.mark.parametrize("impl", ["dense", "packed"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_one_float32_step_on_the_device_equals_the_cpu(kind, impl, roots, tmp_path, exact_float32):
    cpu, dev, cpu_result, dev_result = trained_pair(kind, roots, tmp_path, impl, "32")
    assert dev.device.type == DEVICE
    assert dev_result["loss"] == pytest.approx(cpu_result["loss"], rel=1e-4)
    cpu_grads, dev_grads = gradients(cpu), gradients(dev)
    assert cpu_grads.keys() == dev_grads.keys() and cpu_grads
    for name, grad in cpu_grads.items():
        torch.testing.assert_close(dev_grads[name], grad, rtol=1e-3, atol=1e-5, msg=f"gradient of {name}")
    assert float(flat(cpu_grads).abs().max()) > 1e-4  # the step moves the weights: a real update is compared
    dev_weights = {name: p.detach().cpu() for name, p in dev.model.named_parameters()}
    for name, weight in cpu.model.named_parameters():
        torch.testing.assert_close(dev_weights[name], weight.detach(), rtol=1e-4, atol=1e-4, msg=f"{name} after step")


@pytest.mark.parametrize("kind", list(KINDS))
def test_one_bf16_step_on_the_device_is_close_to_the_float32_cpu_step(kind, roots, tmp_path):
    cpu, dev, cpu_result, dev_result = trained_pair(kind, roots, tmp_path, "auto", "bf16")
    assert dev_result["loss"] == pytest.approx(cpu_result["loss"], rel=2e-2)
    cpu_grad, dev_grad = flat(gradients(cpu)), flat(gradients(dev))
    assert torch.isfinite(dev_grad).all()
    # bf16 keeps 8 bits of mantissa: the gradient is not equal, but it points the same way
    assert float(F.cosine_similarity(dev_grad, cpu_grad, dim=0)) > 0.98


# -- the two encoder implementations -------------------------------------------------------------
ENCODERS = [(cell, bi, layers) for cell in ("rnn", "gru", "lstm") for bi in (False, True) for layers in (1, 2)]


def encoder_pair(cell: str, bidirectional: bool, layers: int) -> tuple[RecurrentEncoder, RecurrentEncoder]:
    """A dense and a packed encoder on DEVICE with the same weights, copied through the state dict on the
    CPU and then moved (which re-flattens the packed stack's weights)."""
    torch.manual_seed(0)
    kwargs = {"num_layers": layers, "bidirectional": bidirectional, "dropout": 0.0}
    dense = RecurrentEncoder(cell, 6, 8, impl="dense", **kwargs)
    packed = RecurrentEncoder(cell, 6, 8, impl="packed", **kwargs)
    packed.load_state_dict(dense.state_dict())
    return dense.to(DEVICE), packed.to(DEVICE)


def run_encoder(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor, probe: torch.Tensor, state=None):
    """Outputs at the real positions, final states, last states, and the gradients of a loss over them
    with respect to the input and every weight (the last states count only where a state was carried in:
    a padded batch's differ by design)."""
    x = x.clone().requires_grad_(True)
    out = encoder(x, lengths, state)
    mask = length_mask(lengths, x.shape[1]).to(x.device)
    real = out.outputs[mask]
    loss = (real * probe[: real.shape[0]]).sum() + out.final.pow(2).sum()
    if state is not None:
        loss = loss + sum(part.sum() for layer in out.state for part in layer)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
    encoder.zero_grad(set_to_none=True)
    return real.detach(), out.final.detach(), out.state, x.grad, grads


def assert_same(packed_run, dense_run, compare_state: bool) -> None:
    real_p, final_p, state_p, x_grad_p, grads_p = packed_run
    real_d, final_d, state_d, x_grad_d, grads_d = dense_run
    tolerance = {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(real_p, real_d, **tolerance, msg="outputs at real positions")
    torch.testing.assert_close(final_p, final_d, **tolerance, msg="final states")
    torch.testing.assert_close(x_grad_p, x_grad_d, **tolerance, msg="gradient of the input")
    assert grads_p.keys() == grads_d.keys()
    for name, grad in grads_d.items():
        torch.testing.assert_close(grads_p[name], grad, **tolerance, msg=f"gradient of {name}")
    if compare_state:
        for layer_p, layer_d in zip(state_p, state_d, strict=True):
            for part_p, part_d in zip(layer_p, layer_d, strict=True):
                torch.testing.assert_close(part_p.detach(), part_d.detach(), **tolerance, msg="last states")


@pytest.mark.parametrize("cell,bidirectional,layers", ENCODERS)
def test_dense_and_packed_encoders_agree_on_the_device(cell, bidirectional, layers, exact_float32):
    dense, packed = encoder_pair(cell, bidirectional, layers)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 9, 6, generator=generator).to(DEVICE)
    lengths = torch.tensor([9, 4, 1, 7, 9])  # on the host, as batches keep them
    probe = torch.randn(int(lengths.sum()), 8 * (2 if bidirectional else 1), generator=generator).to(DEVICE)
    # Padded: the last states differ by design (dense runs on through the padding), the rest agrees.
    assert_same(run_encoder(packed, x, lengths, probe), run_encoder(dense, x, lengths, probe), compare_state=False)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_dense_and_packed_encoders_continue_a_state_alike(cell, exact_float32):
    """A language model's windows: no padding, a state carried in; both return the same states."""
    dense, packed = encoder_pair(cell, False, 2)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 7, 6, generator=generator).to(DEVICE)
    lengths = torch.full((3,), 7)
    probe = torch.randn(21, 8, generator=generator).to(DEVICE)
    parts = 2 if cell == "lstm" else 1
    state = tuple(tuple(torch.randn(1, 3, 8, generator=generator).to(DEVICE) for _ in range(parts)) for _ in range(2))
    assert_same(
        run_encoder(packed, x, lengths, probe, state), run_encoder(dense, x, lengths, probe, state), compare_state=True
    )


# -- no host sync in a training step -------------------------------------------------------------
def set_sync_debug_mode(mode: str) -> None:
    if ON_GPU:
        torch.cuda.set_sync_debug_mode(mode)


SYNC_MESSAGE = "called a synchronizing CUDA operation"


class SyncGuard(SectionClock):
    """A clock for `Trainer.train_epoch` (whose "logging" section ends every step and the epoch) that has
    CUDA report every sync from the end of step `first` to the end of step `last`."""

    def __init__(self, first: int, last: int) -> None:
        super().__init__()
        self.first, self.last = first, last
        self.steps = 0
        self.guarded = False

    def begin(self, name: str) -> None:
        pass

    def end(self, name: str) -> None:
        if name != "logging":
            return
        self.steps += 1
        if self.steps == self.first:
            # "warn" rather than "error": every sync of the steps is reported with its place, not only the first
            set_sync_debug_mode("warn")
            self.guarded = True
        elif self.steps == self.last:
            set_sync_debug_mode("default")


def place(record: warnings.WarningMessage) -> str:
    """Where a sync was asked for: the innermost Python frame, as `package/module.py:line`."""
    parts = Path(record.filename).parts
    start = max((i for i, part in enumerate(parts) if part in ("seqmodels", "torch", "tests")), default=0)
    return f"{'/'.join(parts[start:])}:{record.lineno}"


@pytest.mark.parametrize("impl", ["dense", "packed"])
@pytest.mark.parametrize("precision", ["32", "bf16"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_training_step_never_waits_for_the_device(kind, precision, impl, roots, tmp_path):
    """Steps 2 to 4 of 5 (the first one sets up the optimizer's state) run with CUDA's sync debug mode on:
    the loader's next batch, the copy to the device, forward, backward, clipping, the optimizer (Adam, the
    default) and the step's bookkeeping all queue work without waiting for it. Every sync is listed with
    the line that asked for it."""
    steps = 5
    cfg = config(
        kind,
        roots,
        tmp_path / "cache",
        f"trainer.device={DEVICE}",
        f"trainer.precision={precision}",
        f"trainer.limit_train_batches={steps}",
        f"model.rnn_impl={impl}",
    )
    task = get_task(cfg)
    data = task.prepare()
    assert len(data.train) >= steps
    seed_everything(0)
    trainer = make_trainer(cfg, task, data, task.build_model(data.artifacts).state_dict(), tmp_path / "run")
    guard = SyncGuard(first=1, last=steps - 1)
    try:
        with warnings.catch_warnings(record=True) as caught, guard.installed():
            warnings.simplefilter("always")
            result = trainer.train_epoch()
    finally:
        set_sync_debug_mode("default")
    assert guard.guarded and guard.steps == steps + 1, "train_epoch no longer ends a 'logging' section once per step"
    assert result["loss"] > 0
    syncs = sorted({place(record) for record in caught if SYNC_MESSAGE in str(record.message)})
    assert not syncs, f"a training step waits for the device at {syncs}"
