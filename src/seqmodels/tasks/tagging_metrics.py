"""A tagger's scores: entity-level (span) scores for span tags, token scores for any other tag set.

Span tags (`entity_scores`) are counted as conlleval (the CoNLL shared-task script) does. An entity is a
span of tokens with a type (`tag_schemes.entity_spans`); a predicted entity is correct only if a gold
entity has exactly the same first token, last token and type. Precision = correct / predicted, recall =
correct / gold, F1 their harmonic mean; all micro-averaged over the whole split, and 0 (not undefined)
when a denominator is 0, as in conlleval. We report fractions in [0, 1]; conlleval prints percentages.

Other tags (`token_scores`, e.g. parts of speech): the share of tokens tagged right, and each tag's F1
over tokens (precision: of the tokens predicted with it, recall: of those that have it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from seqmodels.data.tag_schemes import entity_spans


def _f1(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_scores(
    gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]], types: Iterable[str] = ()
) -> dict[str, float]:
    """Scores over sentences of gold and predicted tags (IOB1 or IOB2): `precision`,
    `recall`, `f1`, and `f1_<TYPE>` for each type in `types` or in the data."""
    counts: dict[str, Counter[str]] = {"gold": Counter(), "predicted": Counter(), "correct": Counter()}
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"a sentence has {len(gold_tags)} gold tags but {len(predicted_tags)} predicted ones")
        gold_spans, predicted_spans = set(entity_spans(list(gold_tags))), set(entity_spans(list(predicted_tags)))
        counts["gold"].update(span.type for span in gold_spans)
        counts["predicted"].update(span.type for span in predicted_spans)
        counts["correct"].update(span.type for span in gold_spans & predicted_spans)
    precision, recall, f1 = _f1(*(sum(counts[k].values()) for k in ("correct", "predicted", "gold")))
    scores = {"f1": f1, "precision": precision, "recall": recall}
    for kind in sorted(set(types) | set(counts["gold"]) | set(counts["predicted"])):
        scores[f"f1_{kind}"] = _f1(*(counts[k][kind] for k in ("correct", "predicted", "gold")))[2]
    return scores


def token_scores(
    gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]], tags: Iterable[str] = ()
) -> dict[str, float]:
    """Scores over sentences of gold and predicted tags: `accuracy` (per token) and `f1_<TAG>` for each tag
    in `tags` or in the data."""
    counts: dict[str, Counter[str]] = {"gold": Counter(), "predicted": Counter(), "correct": Counter()}
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"a sentence has {len(gold_tags)} gold tags but {len(predicted_tags)} predicted ones")
        counts["gold"].update(gold_tags)
        counts["predicted"].update(predicted_tags)
        counts["correct"].update(g for g, p in zip(gold_tags, predicted_tags) if g == p)
    tokens = sum(counts["gold"].values())
    scores = {"accuracy": sum(counts["correct"].values()) / tokens if tokens else 0.0}
    for tag in sorted(set(tags) | set(counts["gold"]) | set(counts["predicted"])):
        scores[f"f1_{tag}"] = _f1(*(counts[k][tag] for k in ("correct", "predicted", "gold")))[2]
    return scores
