"""Optimizers and learning-rate schedules from the `optim` config group."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from seqmodels.checks import is_number, require_choice, require_int, require_number
from seqmodels.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "plateau")


def check_optim_config(cfg: DictConfig) -> None:
    """Every `optim.*` value a run will use, checked before any data is read."""
    require_choice("optim.name", cfg.name, OPTIMIZERS, " (e.g. optim=adamw)")
    require_number("optim.lr", cfg.lr, 0.0, low_open=True)
    require_number("optim.weight_decay", cfg.weight_decay, 0.0)
    require_number("optim.momentum", cfg.momentum, 0.0, 1.0)
    betas = cfg.betas
    if not isinstance(betas, ListConfig) or len(betas) != 2 or not all(is_number(b) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optim.betas={betas!r} is impossible; use two numbers in [0, 1), e.g. [0.9,0.999]")
    require_choice("optim.schedule", cfg.schedule, SCHEDULES)
    require_int("optim.warmup_steps", cfg.warmup_steps, minimum=0)
    require_number("optim.plateau_factor", cfg.plateau_factor, 0.0, 1.0, low_open=True)
    require_int("optim.plateau_patience", cfg.plateau_patience, minimum=0)


def build_optimizer(cfg: DictConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    check_optim_config(cfg)
    name = cfg.name
    # The fused kernel updates every tensor in one pass: on a CPU it is 2-3x faster than the default
    # (foreach) Adam, which was a quarter of a CoNLL-2003 step (its 1.1M-weight embedding table).
    if name in ("adam", "adamw"):
        adam = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise AssertionError(name)  # unreachable: check_optim_config knows the same names


class LRSchedule:
    """Warm-up, then a constant, cosine or linear learning rate set every step; or, with
    "plateau", the rate multiplied by `plateau_factor` when validation has not improved for
    more than `plateau_patience` epochs (torch's ReduceLROnPlateau rule, relative threshold 1e-4).

    One LambdaLR sets every step's rate as base x warm-up/decay x plateau scale. (The plateau
    decay cannot be a second scheduler that edits the rate: the per-step one would set it back
    to the base rate at the next step.)"""

    THRESHOLD = 1e-4

    def __init__(self, cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
        self.name, self.mode = cfg.schedule, mode
        self.plateau_factor, self.plateau_patience = cfg.get("plateau_factor", 0.25), cfg.get("plateau_patience", 0)
        self.scale = 1.0  # the plateau decay so far
        self.best: float | None = None  # the best validation metric so far, for "plateau"
        self.bad_epochs = 0
        warmup = int(cfg.get("warmup_steps") or 0)
        total = max(total_steps, 1)

        def factor(step: int) -> float:
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
        if self.mode == "min":
            return metric < self.best * (1 - self.THRESHOLD)
        return metric > self.best * (1 + self.THRESHOLD)

    def state_dict(self) -> dict[str, Any]:
        return {"per_step": self.per_step.state_dict(),
                "plateau": {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_step.load_state_dict(state["per_step"])
        plateau = state.get("plateau")
        if plateau is not None and "scale" not in plateau:
            # a checkpoint written when the plateau was a ReduceLROnPlateau: the same facts
            best = plateau["best"]
            plateau = {"scale": plateau["_last_lr"][0] / self.per_step.base_lrs[0],
                       "best": None if math.isinf(best) else best, "bad_epochs": plateau["num_bad_epochs"]}
        if plateau is not None:
            self.scale, self.best, self.bad_epochs = plateau["scale"], plateau["best"], plateau["bad_epochs"]
        self._set_rate()

    def _set_rate(self) -> None:
        """The rate of the next step, as the LambdaLR would set it."""
        for group, base in zip(self.optimizer.param_groups, self.per_step.base_lrs):
            group["lr"] = base * self.factor(self.per_step.last_epoch)
