"""Optimizers and learning-rate schedules from the `optim` config group."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig

from seqmodels.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "plateau")


def build_optimizer(cfg: DictConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    name = cfg.name
    if cfg.lr is None or cfg.lr <= 0:
        raise ConfigError(f"optim.lr={cfg.lr} is impossible; it must be > 0")
    if name == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name={name!r} is unknown; use one of {list(OPTIMIZERS)} (e.g. optim=adamw)")


class LRSchedule:
    """Warm-up then constant, cosine or linear decay per step; or decay on a validation plateau."""

    def __init__(self, cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
        if cfg.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={cfg.schedule!r} is unknown; use one of {list(SCHEDULES)}")
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
