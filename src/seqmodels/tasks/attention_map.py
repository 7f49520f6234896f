"""An attention map as a matplotlib Figure: source pieces across, generated pieces down."""

from __future__ import annotations

from collections.abc import Sequence


def attention_figure(source: Sequence[str], target: Sequence[str], weights: Sequence[Sequence[float]], title: str = ""):
    """weights[i][j]: how much generated piece i attended to source piece j (rows sum to 1)."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    width = max(4.0, 0.35 * len(source) + 1.5)
    height = max(3.0, 0.3 * len(target) + 1.5)
    figure = Figure(figsize=(width, height), dpi=100)
    ax = figure.add_subplot()
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), list(source), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(target)), list(target), fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.04)
    figure.tight_layout()
    return figure
