"""Classification metrics from counts: accuracy, precision, recall and F1 per label, their macro average and,
for multi-label data, the micro average.

Single-label: a confusion matrix of gold labels (rows) against predicted ones (columns), plus the predictions
for examples whose gold label training never saw (wrong whatever they are: they add to the predicted label's
false positives and count against accuracy). Multi-label: per label the true positives, false positives and
false negatives at the threshold, with each text's labels training never saw as false negatives of the micro
average; accuracy is the share of texts whose predicted label set is exactly the gold one.

A label's precision, recall or F1 whose denominator is 0 is 0. The macro average is the mean F1 over the
labels that occur in the gold labels or the predictions of the split (as scikit-learn's `f1_score` averages
by default), so a label absent from a small validation set neither helps nor hurts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch


def f1(correct: float, predicted: float, gold: float) -> tuple[float, float, float]:
    """(precision, recall, F1), each 0 where its denominator is."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, score


@dataclass
class LabelCounts:
    """Per label: true positives, predicted (true + false positives) and gold (true positives + false negatives)."""

    correct: torch.Tensor  # (C,)
    predicted: torch.Tensor  # (C,)
    gold: torch.Tensor  # (C,)

    def macro_f1(self) -> float:
        occurring = ((self.gold + self.predicted) > 0).nonzero().flatten().tolist()
        if not occurring:
            return 0.0
        return sum(f1(*self.of(i))[2] for i in occurring) / len(occurring)

    def of(self, label: int) -> tuple[float, float, float]:
        return float(self.correct[label]), float(self.predicted[label]), float(self.gold[label])


def single_label_counts(confusion: torch.Tensor, unseen_predicted: torch.Tensor) -> LabelCounts:
    """`confusion[g, p]`: examples of gold label g predicted as p; `unseen_predicted[p]`: examples of a label
    training never saw predicted as p."""
    return LabelCounts(confusion.diagonal(), confusion.sum(0) + unseen_predicted, confusion.sum(1))


def metric_key(metric: str, label: str) -> str:
    """`f1_very_negative`: a label's metric under a name TensorBoard keeps as it is."""
    return f"{metric}_{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"


def per_label(counts: LabelCounts, names: Sequence[str]) -> dict[str, float]:
    """`precision_<label>`, `recall_<label>` and `f1_<label>` for every label (a name made unique by its position
    where two labels read the same)."""
    keys = [metric_key("", name)[1:] for name in names]
    keys = [key if keys.count(key) == 1 else f"{i}_{key}" for i, key in enumerate(keys)]
    scores: dict[str, float] = {}
    for i, key in enumerate(keys):
        precision, recall, score = f1(*counts.of(i))
        scores |= {f"precision_{key}": precision, f"recall_{key}": recall, f"f1_{key}": score}
    return scores


def per_label_table(counts: LabelCounts, names: Sequence[str]) -> str:
    """A fixed-width table for the log: label, precision, recall, F1 and support (gold examples)."""
    width = max([len("label"), *(len(name) for name in names)])
    lines = [f"  {'label'.ljust(width)}  precision  recall      f1  support"]
    for i, name in enumerate(names):
        precision, recall, score = f1(*counts.of(i))
        lines.append(f"  {name.ljust(width)}  {precision:9.4f}  {recall:6.4f}  {score:6.4f}  {int(counts.gold[i]):7,}")
    return "\n".join(lines)
