"""TensorBoard logging for one run: scalars, figures, the resolved config as text, and hparams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary


class RunLogger:
    """`enabled=False` (ranks other than 0 of a data-parallel run) writes nothing."""

    def __init__(self, log_dir: Path, purge_step: int | None = None, enabled: bool = True) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step) if enabled else _Discard()

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def figure(self, tag: str, figure, step: int) -> None:
        """A matplotlib Figure as an image (IMAGES tab), drawn with Agg and without pyplot."""
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[..., :3]
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        self.writer.add_text(tag, markdown, step)

    def hparams(self, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """Record this run's hyper-parameters against its final metrics for the HPARAMS tab.

        Written into the run's own event file (SummaryWriter.add_hparams would start a
        separate run in a subfolder), so each run is one row in TensorBoard.
        """
        clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}
        for summary in hparams_summary(clean, metrics):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class _Discard:
    """Stands in for a SummaryWriter: accepts every call and writes nothing."""

    def __getattr__(self, name: str):
        return self

    def __call__(self, *args, **kwargs):
        return None
