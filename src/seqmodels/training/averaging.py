"""Polyak averaging of the weights during training (`trainer.ema_decay`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class MovingAverage(AveragedModel):
    """An exponential moving average of a model's weights over about 1 / (1 - decay) updates: the first update
    copies the weights, each later one moves the average (1 - decay) of the way towards them; buffers are
    copied as they are. Its count of updates, `n_averaged`, stays on the CPU, where the update reads it:
    `AveragedModel.update_parameters` copies the count to the weights' device at every update, a copy that
    waits for the device."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model)
        self.ema_update = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged = [p.detach() for p in self.module.parameters()]
        current = [p.detach() for p in model.parameters()]
        if int(self.n_averaged) == 0:
            for kept, weight in zip(averaged, current, strict=True):
                kept.copy_(weight)
        else:
            self.ema_update(averaged, current, self.n_averaged)
        for kept, buffer in zip(self.module.buffers(), model.buffers(), strict=True):
            kept.copy_(buffer)
        self.n_averaged += 1
