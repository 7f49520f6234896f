"""Optimizers and learning-rate schedules from the `optim` config group.

For fine-tuning a pretrained model as ULMFiT does (Howard & Ruder 2018; docs/transfer.md): discriminative
learning rates (`layer_lr_decay`: each layer group below the top learns that many times slower, the
groups as the model describes them, `models.transfer.layer_groups`) and slanted triangular learning
rates (`schedule=slanted_triangular`: a short linear rise, then a long linear fall); gradual unfreezing
(`Unfreezing`, `trainer.unfreeze`) over the same layer groups.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from seqmodels.errors import ConfigError
from seqmodels.models.transfer import layer_groups
from seqmodels.schema import Section, setting

log = logging.getLogger("seqmodels")

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "plateau", "slanted_triangular")


@dataclass
class OptimConfig(Section):
    """`optim.*`: the optimizer and the learning-rate schedule."""

    name: str = setting("adam", "adam | adamw | sgd", choices=OPTIMIZERS, hint=" (e.g. optim=adamw)")
    lr: float = setting(1.0e-3, "the base learning rate", minimum=0.0, low_open=True)
    betas: list[float] = setting(
        [0.9, 0.999],
        "Adam's moment decays",
        minimum=0.0,
        maximum=1.0,
        length=2,
        hint="use two numbers in [0, 1), e.g. [0.9,0.999]",
    )
    weight_decay: float = setting(0.0, "L2 penalty (adam, sgd) or decoupled decay (adamw)", minimum=0.0)
    momentum: float = setting(0.0, "SGD momentum", minimum=0.0, maximum=1.0)
    schedule: str = setting(
        "constant",
        "constant | cosine | linear (per step, after warm-up) | plateau (per epoch) | slanted_triangular "
        "(ULMFiT's: a linear rise over optim.cut_frac of the steps, then a linear fall)",
        choices=SCHEDULES,
    )
    cut_frac: float = setting(
        0.1,
        "slanted_triangular: the share of all steps over which the rate rises",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    stlr_ratio: float = setting(
        32.0, "slanted_triangular: how many times smaller the lowest rate is than lr", minimum=1.0
    )
    layer_lr_decay: float | None = setting(
        None,
        "discriminative rates (ULMFiT: 2.6): the top layer group (the head) learns at lr, each group below "
        "it this many times slower, the word vectors slowest; null: every weight at lr",
        minimum=1.0,
    )
    warmup_steps: int = setting(0, "steps of linear warm-up from 0 to lr", minimum=0)
    plateau_factor: float = setting(
        0.25, "plateau: the rate is multiplied by this when validation stalls", minimum=0.0, maximum=1.0, low_open=True
    )
    plateau_patience: int = setting(0, "plateau: epochs without improvement tolerated before decaying", minimum=0)

    def check(self) -> None:
        if self.schedule == "slanted_triangular" and self.warmup_steps:
            raise ConfigError(
                f"optim.schedule=slanted_triangular rises by itself (over optim.cut_frac={self.cut_frac} of the "
                f"steps): set optim.warmup_steps=0 (now {self.warmup_steps})"
            )


def parameter_groups(cfg: OptimConfig, model: torch.nn.Module) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: one, or with `layer_lr_decay` one per layer group of the model,
    the top first (so the first group's rate is optim.lr, as logs and TensorBoard show it)."""
    if cfg.layer_lr_decay is None:
        return [{"params": list(model.parameters())}]
    groups = list(reversed(layer_groups(model)))
    return [
        {"params": group.parameters, "lr": cfg.lr / cfg.layer_lr_decay**depth, "name": group.name}
        for depth, group in enumerate(groups)
    ]


class Unfreezing:
    """Gradual unfreezing (Howard & Ruder 2018; `trainer.unfreeze`): at first only the top of the model's layer
    groups (`models.transfer.layer_groups`) learns; every `every` epochs one more group below it does. Set from
    the global step before each step, so a resumed run freezes exactly what it would have; weights frozen
    for another reason (model.freeze_vectors) stay frozen."""

    def __init__(self, model: torch.nn.Module, every: float, steps_per_epoch: int) -> None:
        self.groups = list(reversed(layer_groups(model)))  # the top first
        self.learns = {id(p): p.requires_grad for p in model.parameters()}
        self.every_steps = every * steps_per_epoch
        self.count = 0  # groups learning now

    def groups_at(self, step: int) -> int:
        return min(len(self.groups), 1 + int(step / self.every_steps + 1e-9))

    def before_step(self, step: int) -> None:
        count = self.groups_at(step)
        if count == self.count:
            return
        for depth, group in enumerate(self.groups):
            for parameter in group.parameters:
                parameter.requires_grad_(self.learns[id(parameter)] and depth < count)
        self.count = count
        log.info(
            "unfreezing (step %d): %s learn%s",
            step,
            ", ".join(group.name for group in self.groups[:count]),
            "; " + ", ".join(group.name for group in self.groups[count:]) + " frozen"
            if count < len(self.groups)
            else "",
        )


def build_optimizer(
    cfg: OptimConfig, parameters: Iterable[torch.nn.Parameter] | list[dict[str, Any]]
) -> torch.optim.Optimizer:
    # The fused kernel updates every tensor in one pass, faster than the default (foreach) Adam on a CPU,
    # where the update of a large embedding table is a sizeable share of a step (docs/performance.md).
    if cfg.name in ("adam", "adamw"):
        adam = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
        return adam(
            parameters, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay, fused=True
        )
    return torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class LRSchedule:
    """Warm-up, then a constant, cosine or linear learning rate set every step; or, with
    "plateau", the rate multiplied by `plateau_factor` when validation has not improved for
    more than `plateau_patience` epochs (torch's ReduceLROnPlateau rule, relative threshold 1e-4).

    One LambdaLR sets every step's rate as base x warm-up/decay x plateau scale. (The plateau
    decay cannot be a second scheduler that edits the rate: the per-step one would set it back
    to the base rate at the next step.)"""

    THRESHOLD = 1e-4

    def __init__(self, cfg: OptimConfig, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
        self.name, self.mode = cfg.schedule, mode
        self.plateau_factor, self.plateau_patience = cfg.plateau_factor, cfg.plateau_patience
        self.scale = 1.0  # the plateau decay so far
        self.best: float | None = None  # the best validation metric so far, for "plateau"
        self.bad_epochs = 0
        warmup = cfg.warmup_steps
        total = max(total_steps, 1)
        if self.name == "slanted_triangular":
            cut, ratio = max(1, math.floor(total * cfg.cut_frac)), cfg.stlr_ratio

        def factor(step: int) -> float:
            if self.name == "slanted_triangular":  # Howard & Ruder 2018, eq. 3
                rise = step / cut if step < cut else 1.0 - (step - cut) / max(total - cut, 1)
                return (1.0 + max(rise, 0.0) * (ratio - 1.0)) / ratio
            if step < warmup:
                return (step + 1) / warmup * self.scale
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            if self.name == "cosine":
                return 0.5 * (1.0 + math.cos(math.pi * progress))
            if self.name == "linear":
                return 1.0 - progress
            return self.scale

        self.factor = factor
        self.optimizer = optimizer
        self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def after_step(self) -> None:
        self.per_step.step()

    def after_validation(self, metric: float) -> None:
        if self.name != "plateau":
            return
        if self.best is None or self._improves(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.plateau_patience:
            self.scale *= self.plateau_factor
            self.bad_epochs = 0
            self._set_rate()  # from the next step on

    def _improves(self, metric: float) -> bool:
        assert self.best is not None
        if self.mode == "min":
            return metric < self.best * (1 - self.THRESHOLD)
        return metric > self.best * (1 + self.THRESHOLD)

    def state_dict(self) -> dict[str, Any]:
        return {
            "per_step": self.per_step.state_dict(),
            "plateau": {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_step.load_state_dict(state["per_step"])
        plateau = state.get("plateau")
        if plateau is not None and "scale" not in plateau:
            # a checkpoint written when the plateau was a ReduceLROnPlateau: the same facts
            best = plateau["best"]
            plateau = {
                "scale": plateau["_last_lr"][0] / self.per_step.base_lrs[0],
                "best": None if math.isinf(best) else best,
                "bad_epochs": plateau["num_bad_epochs"],
            }
        if plateau is not None:
            self.scale, self.best, self.bad_epochs = plateau["scale"], plateau["best"], plateau["bad_epochs"]
        self._set_rate()

    def _set_rate(self) -> None:
        """The rate of the next step, as the LambdaLR would set it."""
        for group, base in zip(self.optimizer.param_groups, self.per_step.base_lrs):
            group["lr"] = base * self.factor(self.per_step.last_epoch)
