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
    if name == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise AssertionError(name)  # unreachable: check_optim_config knows the same names


class LRSchedule:
    """Warm-up then constant, cosine or linear decay per step; or decay on a validation plateau."""

    def __init__(self, cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
        self.name = cfg.schedule
        warmup = int(cfg.get("warmup_steps") or 0)
        total = max(total_steps, 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            if self.name == "cosine":
                return 0.5 * (1.0 + math.cos(math.pi * progress))
            if self.name == "linear":
                return 1.0 - progress
            return 1.0

        self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.plateau = None
        if self.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience)

    def after_step(self) -> None:
        self.per_step.step()

    def after_validation(self, metric: float) -> None:
        if self.plateau is not None:
            self.plateau.step(metric)

    def state_dict(self) -> dict[str, Any]:
        return {"per_step": self.per_step.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
