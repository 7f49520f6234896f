"""Where a training step's time goes: a clock that `Trainer.train_epoch` marks at the boundaries
of its sections (batch assembly, forward, backward, optimizer step, logging).

The trainer holds `NO_CLOCK`, whose marks do nothing, so training pays one empty method call per
section. A measurement (scripts/benchmark_throughput.py) installs a `SectionClock` on the trainer
and reads its `seconds` after the epoch: each mark adds the time since the previous mark to its
section, so the sections add up to the time from `start()` to the last mark.
"""

from __future__ import annotations

import time

import torch


class SectionClock:
    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}
        self.last: float | None = None

    def _now(self) -> float:
        # CUDA kernels run asynchronously: without a sync their time would land in whichever later
        # section happens to wait for them.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        """The time from here on belongs to the next mark's section."""
        self.last = self._now()

    def mark(self, name: str) -> None:
        """Add the time since the previous mark (or `start`) to section `name`."""
        now = self._now()
        if self.last is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self.last
        self.last = now

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


class _NoClock(SectionClock):
    """Measures nothing."""

    def start(self) -> None:
        pass

    def mark(self, name: str) -> None:
        pass


NO_CLOCK: SectionClock = _NoClock()
