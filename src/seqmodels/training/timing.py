"""Where a training step's time goes. `Trainer.train_epoch` runs each part of a step in a `section`
(batch assembly, forward, backward, optimizer step, logging): a `torch.profiler.record_function` range, so
a torch.profiler trace shows the parts by name.

A measurement (scripts/benchmark_throughput.py) also times them: while a `SectionClock` is installed
(`with clock.installed(): trainer.train_epoch()`), every section adds its time to `clock.seconds`. Without
one, a section costs only its profiler range.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch.profiler import record_function

T = TypeVar("T")


class SectionClock:
    """The seconds spent in each section while the clock is installed."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def _now(self) -> float:
        # CUDA kernels run asynchronously: without a sync their time would land in whichever later
        # section happens to wait for them.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def begin(self, name: str) -> None:
        self._started[name] = self._now()

    def end(self, name: str) -> None:
        """Add the time since `begin(name)` to section `name`."""
        self.seconds[name] = self.seconds.get(name, 0.0) + self._now() - self._started.pop(name)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    @contextmanager
    def installed(self) -> Iterator[SectionClock]:
        """Time every section run inside this block."""
        global _installed
        previous, _installed = _installed, self
        try:
            yield self
        finally:
            _installed = previous


_installed: SectionClock | None = None


def installed_clock() -> SectionClock | None:
    """The clock that times sections now, if any."""
    return _installed


@contextmanager
def section(name: str) -> Iterator[None]:
    """Run the block as the part `name` of a step: a profiler range, timed by the installed clock."""
    with record_function(name):
        clock = _installed
        if clock is None:
            yield
            return
        clock.begin(name)
        try:
            yield
        finally:
            clock.end(name)


def sectioned(items: Iterable[T], name: str) -> Iterator[T]:
    """The items of `items`, each one produced (e.g. a batch assembled by its loader) in `section(name)`."""
    iterator = iter(items)
    while True:
        with section(name):
            item = next(iterator, _END)
        if item is _END:
            return
        yield item  # type: ignore[misc]


_END = object()
