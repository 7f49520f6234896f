"""Training progress: a live bar on a terminal, periodic plain lines in a log file.

A tqdm bar redraws with carriage returns, which turns a log file into one endless line;
when stderr is not a terminal we log a short line every `interval` seconds instead.

The loss shown is the mean loss of the steps between the trainer's last two readings of it (at
logging steps and at the end of the epoch): reading it at every step would make every step wait
for the device.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("seqmodels")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self, total: int, description: str, *, interval: float = 30.0, live: bool | None = None, done: int = 0
    ) -> None:
        self.total = total
        self.description = description
        self.interval = interval
        self.live = sys.stderr.isatty() if live is None else live
        self.done = self.skipped = done  # batches already trained before a resume
        self.tokens = 0
        self.loss: float | None = None
        self.start = self.last_line = time.perf_counter()
        self.bar = (
            tqdm(total=total, initial=done, desc=description, dynamic_ncols=True, leave=False) if self.live else None
        )

    def update(self, tokens: int) -> None:
        """One more batch, of `tokens` tokens."""
        self.done += 1
        self.tokens += tokens
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {self._loss()} | {self.tokens_per_s / 1000:.1f}k tok/s", refresh=False)
            self.bar.update(1)
        elif now - self.last_line >= self.interval:
            self.last_line = now
            log.info("%s", self.line())

    def show_loss(self, loss: float | None) -> None:
        """The loss to show from now on (None: no new reading, the shown one stays)."""
        if loss is not None:
            self.loss = loss

    def _loss(self) -> str:
        return f"{self.loss:.4f}" if self.loss is not None else "-"

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.elapsed, 1e-9)

    def line(self) -> str:
        eta = self.elapsed / max(self.done - self.skipped, 1) * (self.total - self.done)
        return (
            f"{self.description} [{self.done}/{self.total}] loss {self._loss()} | "
            f"{self.tokens_per_s / 1000:.1f}k tok/s | elapsed {_clock(self.elapsed)} | eta {_clock(eta)}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
