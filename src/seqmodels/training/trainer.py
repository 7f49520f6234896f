"""The trainer loop. It knows tasks only through `Task` (prepare/step/evaluate) and nothing
of concrete models, datasets or metrics.

One epoch: train on (at most `limit_train_batches`) shuffled, bucketed batches with
gradient clipping (with `ema_decay`, keeping a moving average of the weights, which is then
what is evaluated and saved as the model), evaluate on the validation split (and measure how
far back in time the gradient reaches on one validation batch, `training.gradient_flow`),
write `last.pt` (and `best.pt` when the monitored metric improves), stop early when it has not improved for `patience`
epochs. At the end the best checkpoint is evaluated on validation and test (and the task's extra
test sets), as the task configures its final evaluation (`Task.configure_evaluation`), and the
results go to TensorBoard (hparams) and `metrics.json`.

TensorBoard (`training.tensorboard`): the run's events lie in its run directory; every point is
logged at the global step it belongs to (validation at the step that ended its epoch, test at the
best epoch's), so training and validation curves share one x axis.

A training step never waits for the device: on CUDA the host queues the next batch's copy and
kernels while the GPU still runs the previous ones. The loss is summed on the device and the gradient
norm stays a tensor; the host reads them only at logging steps (`log_every_n_steps`) and at the end
of an epoch (`host_values`), and that reading is also when a diverged (non-finite) loss is found, so
it stops training up to `log_every_n_steps` steps after it happened. Under fp16 the GradScaler's step
reads whether the gradients overflowed, a sync of its own.

Under torchrun each rank runs this same loop on its shard of the data (the loaders were
sharded before) with a DistributedDataParallel replica of the model; evaluation gathers the
ranks' outputs so metrics are those of the whole split, and only rank 0 writes files.
"""

from __future__ import annotations

import itertools
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from seqmodels.atomic import save_json
from seqmodels.errors import ConfigError, TrainingError
from seqmodels.hparams import NUMBER, TEXT, Column, columns_of
from seqmodels.schema import Section, setting, validate
from seqmodels.tasks.base import Task, TaskData
from seqmodels.training import distributed
from seqmodels.training.averaging import MovingAverage
from seqmodels.training.checkpoint import (
    Best,
    LoopState,
    Position,
    Trained,
    carry_best,
    evaluated_weights,
    resume_training,
    save_checkpoint,
    training_state,
)
from seqmodels.training.evaluation import Evaluation, final_evaluation, limited, num_batches
from seqmodels.training.gradient_flow import choose_batch, record_gradient_flow
from seqmodels.training.optim import OPTIMIZERS, LRSchedule, OptimConfig, Unfreezing, build_optimizer, parameter_groups
from seqmodels.training.precision import PRECISIONS, autocast, autocast_dtype
from seqmodels.training.progress import Progress
from seqmodels.training.runtime import DEVICES, resolve_device
from seqmodels.training.tensorboard import BEST, DIAGNOSTICS, EXAMPLES, RunLogger, shared_experiment
from seqmodels.training.timing import section, sectioned

log = logging.getLogger("seqmodels")


@dataclass
class TrainerConfig(Section):
    """`trainer.*`: how the loop runs."""

    max_epochs: int = setting(5, "epochs to train", minimum=1)
    device: str = setting("auto", "auto | cpu | cuda (auto picks CUDA when present)", choices=DEVICES)
    precision: str = setting("32", '"32" | "bf16" | "16": mixed precision, CUDA only', choices=tuple(PRECISIONS))
    grad_clip: float | None = setting(1.0, "max global gradient norm; null: no clipping", minimum=0.0, low_open=True)
    ema_decay: float | None = setting(
        None,
        "e.g. 0.999: evaluate and save a moving average of the weights (over "
        "~1/(1-decay) steps); null: the weights as trained",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    early_stopping_patience: int | None = setting(
        3, "epochs without a better val metric; null: never stop early", minimum=1
    )
    limit_train_batches: int | None = setting(None, "batches per epoch; null: all", minimum=1)
    limit_val_batches: int | None = setting(
        None,
        "batches per evaluation (val and the final test), spread evenly over the split "
        "(its batches are sorted by length: the shortest, the longest and those between; a "
        "language model's first windows); null: all",
        minimum=1,
    )
    log_every_n_steps: int = setting(
        10,
        "training steps between TensorBoard points, which read the loss from the device: a loss that "
        "became nan stops training at the next one (or at the end of the epoch)",
        minimum=1,
    )
    progress_interval_s: float = setting(30.0, "seconds between progress lines when not on a terminal", minimum=0.0)
    num_threads: int | None = setting(
        None, "torch intra-op threads; null: torch's default (all cores, or a parallel job's share)", minimum=1
    )
    gradient_flow: bool = setting(
        True, "after each validation: ||dL/dh_t|| against steps before the end (gradient_flow.json, TensorBoard)"
    )
    gradient_flow_steps: int = setting(
        100,
        "the longest distance measured, on the shortest validation batch whose sequences are this long "
        "(else the longest batch), picked once",
        minimum=1,
    )
    resume: str | None = setting(None, "a run directory or last.pt to continue from")
    monitor: str | None = setting(
        None,
        "the validation metric that picks the best checkpoint and early stopping (e.g. macro_f1 for imbalanced "
        "labels); null: the task's own (accuracy, F1, perplexity, BLEU)",
    )
    unfreeze: float | None = setting(
        None,
        "ULMFiT's gradual unfreezing: only the top layer group (the head) learns at first, and one more group "
        "below it every this many epochs (e.g. 1; 0.25: every quarter epoch); null: every weight learns from "
        "the start",
        minimum=0.0,
        low_open=True,
    )

    def check(self) -> None:
        resolve_device(self.device)  # cuda without a GPU is refused here, before any data is read


def monitored(task: Task, name: str | None) -> tuple[str, str]:
    """The validation metric that picks the best checkpoint (`trainer.monitor`, else the task's) and whether a
    larger value is better ("max") or a smaller one ("min"); a metric the task does not report is refused."""
    if name is None:
        return task.monitor, task.mode
    reported = (*task.metrics, *task.optional_metrics)
    if name not in reported:
        raise ConfigError(
            f"trainer.monitor={name} is not a metric of {task.cfg.task.name} runs; use one of {', '.join(reported)}"
        )
    return name, task.mode_of(name)


# the trainer's and optimizer's keys shown in HPARAMS and compare tables, beside the task's (Task.hparams)
RUN_HPARAMS = {
    "optim": ("weight_decay", "schedule", "warmup_steps", "momentum"),
    "trainer": ("max_epochs", "grad_clip", "ema_decay", "limit_train_batches", "limit_val_batches"),
}


def run_columns() -> list[Column]:
    """The run's own HPARAMS columns, after the task's (`Task.hparam_columns`)."""
    return [
        Column("optimizer", TEXT, "optim.name", OPTIMIZERS),
        Column("lr", NUMBER, "optim.lr"),
        Column("seed", TEXT, "seed"),
        *columns_of(OptimConfig, RUN_HPARAMS["optim"]),
        *columns_of(TrainerConfig, RUN_HPARAMS["trainer"]),
    ]


def host_values(*tensors: torch.Tensor) -> list[float]:
    """A few device scalars on the host, in one copy: where the training loop waits for the device."""
    return torch.stack([t.detach().double() for t in tensors]).tolist()


class EpochLoss:
    """The training loss of an epoch's steps, summed (times each batch's examples) on the device where they
    run, so that no step waits for it; the host reads the sum at logging steps and at the end of the epoch. A
    non-finite loss leaves the sum non-finite, so the reading also tells whether training diverged."""

    def __init__(self, device: torch.device, step: int) -> None:
        self.sum = torch.zeros((), dtype=torch.float64, device=device)
        self.examples = 0
        self.read_step, self.read_sum, self.read_examples = step, 0.0, 0  # at the last reading

    def add(self, loss: torch.Tensor, examples: int) -> None:
        self.sum.add_(loss.detach(), alpha=examples)
        self.examples += examples

    def mark_read(self, value: float, step: int) -> float | None:
        """Remember the sum read at global step `step`; the mean loss of the steps since the previous reading
        (None if there were none)."""
        examples = self.examples - self.read_examples
        recent = (value - self.read_sum) / examples if examples else None
        self.read_step, self.read_sum, self.read_examples = step, value, self.examples
        return recent


class Trainer:
    def __init__(self, cfg: DictConfig, task: Task, data: TaskData, model: nn.Module, run_dir: Path) -> None:
        self.cfg = cfg
        self.tcfg = validate(TrainerConfig, cfg.trainer, "trainer")
        self.ocfg = validate(OptimConfig, cfg.optim, "optim")
        self.task = task
        self.monitor, self.mode = monitored(task, self.tcfg.monitor)
        self.data = data
        self.run_dir = Path(run_dir)
        self.checkpoints = self.run_dir / "checkpoints"
        self.device = resolve_device(self.tcfg.device)
        self.world = distributed.world()
        self.model = model.to(self.device)
        self.train_model = distributed.replicate(self.model, self.device)  # the model itself in one process
        # An exponential moving average of the weights over about 1 / (1 - decay) steps (Polyak
        # averaging): steadier than the last step's weights, and often a little better on unseen
        # data. It is what validation, test, best.pt and predict use; training never sees it.
        decay = self.tcfg.ema_decay
        self.average = None if decay is None else MovingAverage(self.model, decay)
        # every pass over a split, validation's and the final evaluation's (`training.evaluation`)
        dtype = autocast_dtype(self.tcfg.precision, self.device)
        self.evaluation = Evaluation(self.device, dtype, self.tcfg.limit_val_batches)
        self.scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
        self.optimizer = build_optimizer(self.ocfg, parameter_groups(self.ocfg, self.model))
        steps_per_epoch = num_batches(data.train, self.tcfg.limit_train_batches)
        self.unfreezing = Unfreezing(self.model, self.tcfg.unfreeze, steps_per_epoch) if self.tcfg.unfreeze else None
        if self.unfreezing is not None and self.world.enabled:
            raise ConfigError("trainer.unfreeze cannot change which weights learn under torchrun; train in one process")
        self.schedule = LRSchedule(self.ocfg, self.optimizer, steps_per_epoch * self.tcfg.max_epochs, self.mode)
        self.epoch = 0  # completed epochs
        self.position = Position()  # within epoch `self.epoch + 1`
        self.global_step = 0
        self.best = Best()
        self.history: list[dict[str, Any]] = []
        self.stop_requested = False
        self.stop_announced = False  # the stop request has been logged (`_announce_stop`)
        self.stop_signal = signal.SIGINT  # the signal that asked to stop
        self.logger: RunLogger | None = None
        self.flow_batch: Any = None  # the validation batch of the gradient-flow measurement, picked once

    # -- one pass ---------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """Train the epoch `self.epoch + 1`, starting after `self.position.batches` batches when a
        run resumes mid-epoch. Returns early (with `self.stop_requested`) on Ctrl-C. Raises TrainingError
        when the loss has become non-finite, found at the next logging step or at the end of the epoch (see
        the module docstring), before anything is saved."""
        self.model.train()
        loader = self.data.train
        epoch = self.epoch + 1
        loader.set_epoch(epoch)  # a new, reproducible batch order each epoch (tasks.base.Loader)
        self.task.start_pass(self.train_model, "train")
        limit = self.tcfg.limit_train_batches
        position = self.position
        losses = EpochLoss(self.device, self.global_step)
        progress = Progress(
            num_batches(loader, limit),
            f"epoch {epoch}/{self.tcfg.max_epochs}",
            interval=self.tcfg.progress_interval_s,
            done=position.batches,
            live=None if self.world.is_main else False,
        )  # one bar on a terminal, rank 0's
        # each part of a step is a `timing.section`: a profiler range, timed by a measurement's clock
        for index, batch in enumerate(sectioned(limited(loader, limit), "batch assembly")):
            if index < position.batches:
                continue  # done before the interruption; the order is the same (seeded by epoch)
            with section("batch assembly"):
                batch = batch.to(self.device)
            if self.unfreezing is not None:
                self.unfreezing.before_step(self.global_step)
            with section("forward"), autocast(self.evaluation.dtype):
                out = self.task.step(self.train_model, batch)
            with section("backward"):
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(out.loss).backward()
            with section("optimizer step"):
                grad_norm = self._optimizer_step()
            with section("logging"):
                self.global_step += 1
                position.batches += 1
                position.examples += out.num_examples
                losses.add(out.loss, out.num_examples)
                log_step = self.global_step % self.tcfg.log_every_n_steps == 0
                if log_step:
                    recent, (loss, norm) = self._read(losses, epoch, out.loss, grad_norm)
                    progress.show_loss(recent)
                    self.tb.scalar("train/loss", loss, self.global_step)
                    self.tb.scalar(f"{DIAGNOSTICS}/lr", self.optimizer.param_groups[0]["lr"], self.global_step)
                    self.tb.scalar(f"{DIAGNOSTICS}/grad_norm", norm, self.global_step)
                progress.update(out.num_tokens)
            if self._stopping(ranks_meet=log_step):
                break
        with section("logging"):
            recent, _ = self._read(losses, epoch)  # the steps since the last logging step
            self._stopping(ranks_meet=True)  # the ranks leave the epoch agreeing whether to stop
            position.loss_sum += losses.read_sum
            progress.show_loss(recent)
            progress.close()
            log.info("%s", progress.line())
            loss_sum, examples, tokens = distributed.total(
                [position.loss_sum, position.examples, progress.tokens], self.device
            )  # all ranks' share of the epoch
        return {
            "loss": loss_sum / max(examples, 1),
            "tokens_per_s": tokens / max(progress.elapsed, 1e-9),
            "seconds": progress.elapsed,
        }

    def _optimizer_step(self) -> torch.Tensor:
        """Clip the gradients and update the weights (and their average); returns the gradient norm before
        clipping, as a tensor on the device."""
        self.scaler.unscale_(self.optimizer)
        clip = self.tcfg.grad_clip if self.tcfg.grad_clip else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        # fp16 only: the scaler reads whether the gradients overflowed (to skip the step), a sync; bf16 and
        # float32 runs pass through it without one
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.after_step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        return grad_norm

    def _read(self, losses: EpochLoss, epoch: int, *more: torch.Tensor) -> tuple[float | None, list[float]]:
        """Read the epoch's loss sum and `more` device scalars on the host: the mean loss of the steps since the
        previous reading (None if none) and the values of `more`. Raises TrainingError if the loss became
        non-finite since then, on every rank if it did on any (a rank that stopped alone would leave the others
        waiting for its gradients)."""
        loss_sum, *values = host_values(losses.sum, *more)
        diverged = not math.isfinite(loss_sum)
        if distributed.any_rank(diverged, self.device):
            first, last = losses.read_step + 1, self.global_step
            steps = f"step {last}" if first == last else f"between steps {first} and {last}"
            raise TrainingError(
                f"training loss became {loss_sum if diverged else 'non-finite in another process'} at epoch "
                f"{epoch}, {steps}; lower optim.lr or set trainer.grad_clip (now {self.tcfg.grad_clip}). "
                f"checkpoints/last.pt holds the last good epoch"
            )
        return losses.mark_read(loss_sum, self.global_step), values

    def _stopping(self, ranks_meet: bool) -> bool:
        """Whether to stop after this step because of Ctrl-C. One process stops at once. Ranks must stop at
        the same step, and agreeing on it waits for the device, so under torchrun they agree where they
        meet anyway: at logging steps and at the end of the epoch (a signal reaches them at different steps)."""
        if self.stop_requested:
            self._announce_stop()
        if not self.world.enabled:
            return self.stop_requested
        if ranks_meet and distributed.any_rank(self.stop_requested, self.device):
            self.stop_requested = True
        return ranks_meet and self.stop_requested

    def _validate(self) -> dict[str, float]:
        """Validation; the first one also picks the gradient-flow batch (`gradient_flow.choose_batch`)
        among the batches it evaluated."""
        pick = self.tcfg.gradient_flow and self.world.is_main and self.flow_batch is None
        sizes: list[tuple[int, int]] | None = [] if pick else None
        val = self.evaluation.run(self.task, self.evaluated, self.data.val, self.data.artifacts, "val", sizes)
        if sizes:
            chosen = choose_batch(sizes, self.tcfg.gradient_flow_steps)
            batches = limited(self.data.val, self.evaluation.limit)
            self.flow_batch = next(itertools.islice(batches, chosen, None)).to(self.device)
        return val

    def hparams(self) -> dict[str, Any]:
        """The task's hyper-parameters, then the run's (the columns of `run_columns`)."""
        run = {"optimizer": self.cfg.optim.name, "lr": self.cfg.optim.lr, "seed": self.cfg.seed}
        run |= {name: getattr(self.ocfg, name) for name in RUN_HPARAMS["optim"]}
        run |= {name: getattr(self.tcfg, name) for name in RUN_HPARAMS["trainer"]}
        return {**self.task.hparams(), **run}

    def _step_of_epoch(self, epoch: int) -> int:
        """The global step at the end of `epoch` (the x of its validation and of the test of its checkpoint)."""
        return next((h["step"] for h in self.history if h["epoch"] == epoch and "step" in h), self.global_step)

    # -- checkpoints (their layout and the resume rules: `training.checkpoint`) -------------------
    @property
    def trained(self) -> Trained:
        return Trained(self.model, self.average, self.optimizer, self.schedule, self.scaler)

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation, test, best.pt and predict use: the moving average where there is one."""
        return self.trained.evaluated

    def state(self, metrics: dict[str, float]) -> dict[str, Any]:
        """This moment of training as a checkpoint; `metrics`: the validation of the epoch just ended."""
        loop = LoopState(self.epoch, self.position, self.global_step, self.best, self.history)
        config = OmegaConf.to_container(self.cfg, resolve=True)
        return training_state(
            self.trained, loop, ranks=self.world.size, metrics=metrics, config=config, artifacts=self.data.artifacts
        )

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint of the same task, model and data, exactly where it stopped."""
        loop = resume_training(path, self.trained, self.data.artifacts, self.world.size, self.device)
        self.epoch, self.position, self.global_step = loop.epoch, loop.position, loop.global_step
        self.best, self.history = loop.best, loop.history
        if self.world.is_main:
            carry_best(path, self.checkpoints)
        so_far = (
            "no epoch validated yet"
            if self.best.value is None
            else f"best {self.monitor} {self.best.value:.4f} at epoch {self.best.epoch}"
        )
        log.info("resumed from %s at epoch %d, batch %d (%s)", path, self.epoch + 1, self.position.batches, so_far)

    # -- the loop ---------------------------------------------------------------------------
    # Ctrl-C, and SIGTERM: what torchrun sends its processes when it is interrupted, and SLURM a
    # job it preempts or that runs out of time
    STOP_SIGNALS: dict[signal.Signals, Any] = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
    }

    @property
    def tb(self) -> RunLogger:
        """The run's TensorBoard logger, which `fit` opens (a no-op one on ranks other than 0)."""
        assert self.logger is not None, "TensorBoard is open only inside fit()"
        return self.logger

    def _request_stop(self, signum, frame) -> None:
        # The first signal finishes the current step and saves; a second one aborts at once. A handler runs
        # between any two bytecodes, also inside a logging call that is writing train.log, so it only
        # records the request: the loop says so (`_announce_stop`) when it next checks.
        self.stop_requested, self.stop_signal = True, signal.Signals(signum)
        for stop_signal, default in self.STOP_SIGNALS.items():
            signal.signal(stop_signal, default)

    def _announce_stop(self) -> None:
        if self.stop_announced:
            return
        self.stop_announced = True
        again = "Ctrl-C again" if self.stop_signal == signal.SIGINT else f"a second {self.stop_signal.name}"
        log.warning(
            "interrupted (%s): saving checkpoints/last.pt after this step (%s aborts)", self.stop_signal.name, again
        )

    def fit(self) -> dict[str, Any]:
        started = time.perf_counter()
        # purge_step: a resumed run drops any events logged after its checkpoint
        self.logger = RunLogger(
            self.run_dir,
            purge_step=self.global_step + 1 if self.global_step else None,
            enabled=self.world.is_main,
        )
        self.logger.start_session(shared_experiment(run_columns()), self.hparams())
        self.logger.text("config", "```yaml\n" + OmegaConf.to_yaml(self.cfg, resolve=True) + "```")
        previous_handlers = {stop_signal: signal.getsignal(stop_signal) for stop_signal in self.STOP_SIGNALS}
        for stop_signal in self.STOP_SIGNALS:
            signal.signal(stop_signal, self._request_stop)
        try:
            self._epochs()
        except TrainingError:
            self._write_metrics("failed", time.perf_counter() - started)
            self.logger.end_session(succeeded=False)
            self.logger.close()
            raise
        finally:
            for stop_signal, handler in previous_handlers.items():
                signal.signal(stop_signal, handler)
        if self.stop_requested:
            self._announce_stop()  # a signal during validation or saving reaches no step's check
            self._write_metrics("interrupted", time.perf_counter() - started)
            self.logger.close()
            raise KeyboardInterrupt(self.stop_signal.name)  # the CLI exits 128 + the signal's number
        return self.finish(time.perf_counter() - started)

    def _epochs(self) -> None:
        monitor, mode = self.monitor, self.mode
        patience = self.tcfg.early_stopping_patience
        while self.epoch < self.tcfg.max_epochs:
            train = self.train_epoch()
            if self.stop_requested:  # mid-epoch: remember the position, the epoch is not done
                self._save(self.state({}), "last.pt")
                return
            self.epoch += 1
            self.position = Position()
            val = self._validate()
            step = self.global_step
            if self.world.is_main:  # samples and the gradient-flow plot are for the logs rank 0 writes
                for tag, markdown in self.task.examples(self.evaluated, self.data.artifacts).items():
                    self.tb.text(f"{EXAMPLES}/{tag}", markdown, step)
                for tag, figure in self.task.figures(self.evaluated, self.data.artifacts).items():
                    self.tb.figure(f"{EXAMPLES}/{tag}", figure, step)
            if self.tcfg.gradient_flow and self.world.is_main:  # ||dL/dh_t|| against distance, on a val batch
                record_gradient_flow(
                    self.task,
                    self.model,
                    self.flow_batch,
                    self.epoch,
                    self.tcfg.gradient_flow_steps,
                    self.run_dir,
                    self.logger,
                    global_step=step,
                )
            self.schedule.after_validation(val[monitor])
            self.tb.scalars("val", val, step)
            self.tb.scalar("train/epoch_loss", train["loss"], step)
            self.tb.scalar(f"{DIAGNOSTICS}/tokens_per_s", train["tokens_per_s"], step)
            self.tb.scalar(f"{DIAGNOSTICS}/epoch_seconds", train["seconds"], step)
            self.history.append(
                {
                    "epoch": self.epoch,
                    "step": step,
                    "train_loss": train["loss"],
                    **{f"val_{k}": v for k, v in val.items()},
                    "seconds": train["seconds"],
                    "tokens_per_s": train["tokens_per_s"],
                }
            )
            improved = self.best.improved_by(val[monitor], mode)
            if improved:
                self.best = Best(self.epoch, val[monitor])
            best = val[monitor] if improved or self.best.value is None else self.best.value
            self.tb.scalar(BEST, best, step)  # the best so far: HPARAMS' shared metric column
            log.info(
                "epoch %d: train loss %.4f | val %s%s",
                self.epoch,
                train["loss"],
                " ".join(f"{k} {v:.4f}" for k, v in val.items()),
                " (best)" if improved else "",
            )
            state = self.state(val)
            self._save(state, "last.pt")
            if improved:
                self._save(state, "best.pt")
            if self.stop_requested:
                return
            if patience is not None and self.epoch - self.best.epoch >= patience:
                log.info("early stopping: val %s has not improved for %d epochs", monitor, patience)
                return

    def _save(self, state: dict[str, Any], name: str) -> None:
        if self.world.is_main:  # the ranks' weights are the same; one copy is written
            save_checkpoint(state, self.checkpoints / name)

    def _write_metrics(self, status: str, train_seconds: float, **final: Any) -> dict[str, Any]:
        results = {
            "status": status,
            "task": self.cfg.task.name,
            "model": self.task.describe(),
            "hparams": self.hparams(),
            "monitor": f"val/{self.monitor}",
            "mode": self.mode,
            "best_epoch": self.best.epoch,
            "epochs_run": self.epoch,
            **final,
            "train_seconds": round(train_seconds, 2),
            "train_tokens_per_s": round(sum(h["tokens_per_s"] for h in self.history) / max(len(self.history), 1), 1),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": str(self.device),
            "processes": self.world.size,
            "history": self.history,
        }
        if self.world.is_main:
            save_json(results, self.run_dir / "metrics.json")
        return results

    def finish(self, train_seconds: float) -> dict[str, Any]:
        """Evaluate the best checkpoint on validation and test; write hparams and metrics.json."""
        # rank 0 reads best.pt and hands the weights on: other machines need not see its disk
        best = evaluated_weights(self.checkpoints / "best.pt") if self.world.is_main else None
        self.evaluated.load_state_dict(distributed.broadcast(best))
        report = final_evaluation(self.task, self.evaluated, self.data, self.evaluation)
        val, test = report["val"], report.get("test")  # None: the task has no test set
        extra = {name: report[name] for name in self.data.extra_tests}
        best_step = self._step_of_epoch(self.best.epoch)
        if test is not None:
            self.tb.scalars("test", test, best_step)
        for name, metrics in extra.items():  # test/bleu_2017_flickr: beside test/bleu, in the test group
            suffix = name.removeprefix("test_")
            self.tb.scalars("test", {f"{k}_{suffix}": v for k, v in metrics.items()}, best_step)
        self.tb.end_session(succeeded=True)
        self.tb.close()
        results = self._write_metrics("completed", train_seconds, **report)
        log.info(
            "best epoch %d | val %s | test %s",
            self.best.epoch,
            " ".join(f"{k} {v:.4f}" for k, v in val.items()),
            " ".join(f"{k} {v:.4f}" for k, v in test.items()) if test is not None else "none (no test set)",
        )
        for name, metrics in extra.items():
            log.info("%s: %s", name, " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return results
