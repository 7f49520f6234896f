"""A confusion matrix as a matplotlib Figure: gold labels down, predicted labels across, each cell's count."""

from __future__ import annotations

from collections.abc import Sequence

import torch

MAX_LABELS_DRAWN = 40  # beyond this many labels the cells are too small to read: the most frequent are drawn


def confusion_figure(confusion: torch.Tensor, names: Sequence[str], title: str = ""):
    """`confusion[g, p]`: examples of gold label g predicted as p. Rows are shaded by their share of the gold
    label's examples (a row's recall on the diagonal), and with up to 20 labels every cell shows its count."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    shown = list(range(len(names)))
    if len(shown) > MAX_LABELS_DRAWN:
        shown = sorted(confusion.sum(1).topk(MAX_LABELS_DRAWN).indices.tolist())
        title = f"{title} ({MAX_LABELS_DRAWN} most frequent of {len(names)} labels)".strip()
    counts = confusion[shown][:, shown]
    shares = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
    size = max(3.5, 0.45 * len(shown) + 2.0)
    figure = Figure(figsize=(size + 1.0, size), dpi=100)
    ax = figure.add_subplot()
    image = ax.imshow(shares.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    labels = [names[i] for i in shown]
    ax.set_xticks(range(len(shown)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(shown) <= 20:
        for g in range(len(shown)):
            for p in range(len(shown)):
                color = "white" if shares[g, p] > 0.5 else "black"
                ax.text(p, g, f"{int(counts[g, p])}", ha="center", va="center", fontsize=7, color=color)
    if title:
        ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.04, label="share of the gold label's examples")
    figure.tight_layout()
    return figure
