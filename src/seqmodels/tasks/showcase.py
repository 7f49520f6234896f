"""The validation examples a task shows in TensorBoard after each validation (`Task.examples`), as Markdown.

Each task picks a few validation examples once, when it prepares its data, and renders the model's
outputs on them every epoch, so a user watches the same reviews or sentences improve:

- classification: a table of texts with the predicted label and its probability against the gold label
  (multi-label: the predicted labels at the threshold against the gold ones);
- tagging with span tags (NER): each sentence twice, the gold entities and the predicted ones, written
  `[Harry Potter]PER`, with the entities that are not in the other line in bold (a missed, a wrong or a
  spurious entity); with other tags (parts of speech): each sentence as `word/TAG`, gold and predicted,
  the wrong tags in bold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from seqmodels.data.tag_schemes import Span, entity_spans

REVIEWS = 4  # classification: texts shown, balanced over the labels
REVIEW_WORDS = (20, 80)  # preferred lengths of a shown review, in tokens
SENTENCES = 3  # tagging: sentences shown
SENTENCE_WORDS = 40  # preferred longest shown sentence, in tokens
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def escape(text: str) -> str:
    """Plain text inside Markdown: its characters, not formatting (a `|` does not end a table cell)."""
    return _SPECIAL.sub(r"\\\1", text)


def spread(candidates: Sequence[int], count: int) -> list[int]:
    """`count` of `candidates` spread evenly over them (all of them if there are fewer)."""
    if len(candidates) <= count:
        return list(candidates)
    if count == 1:
        return [candidates[len(candidates) // 2]]
    last = len(candidates) - 1
    return [candidates[round(i * last / (count - 1))] for i in range(count)]


def pick_reviews(lengths: Sequence[int], labels: Sequence[int], count: int = REVIEWS) -> list[int]:
    """Indices of `count` reviews, as many of each label as possible, of a readable length where there
    are such, spread over the split."""
    low, high = REVIEW_WORDS
    chosen: list[int] = []
    kinds = sorted(set(labels))
    for position, label in enumerate(kinds):
        share = count // len(kinds) + (position < count % len(kinds))
        of_label = [i for i, y in enumerate(labels) if y == label]
        readable = [i for i in of_label if low <= lengths[i] <= high]
        chosen += spread(readable if len(readable) >= share else of_label, share)
    return sorted(chosen)


def pick_sentences(lengths: Sequence[int], entities: Sequence[int], count: int = SENTENCES) -> list[int]:
    """Indices of `count` sentences spread over the split: with two entities or more and at most
    `SENTENCE_WORDS` tokens where there are such, else the shortest with an entity, else the shortest."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    rich = [i for i in range(len(lengths)) if entities[i] >= 2 and lengths[i] <= SENTENCE_WORDS]
    if len(rich) >= count:
        return spread(rich, count)
    with_entity = [i for i in order if entities[i] >= 1]
    return sorted((with_entity if len(with_entity) >= count else order)[:count])


def review_table(texts: Sequence[str], gold: Sequence[int], probabilities: Sequence[Sequence[float]], names) -> str:
    """| | predicted | gold | review |, a wrong prediction marked."""
    rows = ["| | predicted | gold | review |", "| --- | --- | --- | --- |"]
    for text, label, row in zip(texts, gold, probabilities):
        best = max(range(len(row)), key=row.__getitem__)
        mark = "✓" if best == label else "**✗**"
        rows.append(f"| {mark} | {names[best]} ({row[best]:.2f}) | {names[label]} | {escape(text)} |")
    return "\n".join(rows)


def marked(words: Sequence[str], spans: Sequence[Span], others: Sequence[Span]) -> str:
    """The words with each entity written `[words]TYPE`, in bold where it is not among `others`."""
    starting = {span.start: span for span in spans}
    pieces, position = [], 0
    while position < len(words):
        span = starting.get(position)
        if span is None:
            pieces.append(escape(words[position]))
            position += 1
            continue
        piece = f"\\[{escape(' '.join(words[span.start : span.end]))}\\]{span.type}"
        pieces.append(piece if span in others else f"**{piece}**")
        position = span.end
    return " ".join(pieces)


def tagged_sentences(sentences: Sequence[tuple[Sequence[str], Sequence[str], Sequence[str]]]) -> str:
    """(words, gold tags, predicted tags) of each sentence as two lines: gold and predicted entities."""
    blocks = ["Entities as \\[words\\]TYPE; **bold**: not in the other line (missed, wrong or spurious)."]
    for number, (words, gold_tags, predicted_tags) in enumerate(sentences, 1):
        gold, predicted = entity_spans(list(gold_tags)), entity_spans(list(predicted_tags))
        errors = len(set(gold) ^ set(predicted))
        verdict = "✓" if not errors else f"**✗ {errors} {'entity differs' if errors == 1 else 'entities differ'}**"
        blocks.append(
            f"{number}. {verdict}  \ngold: {marked(words, gold, predicted)}  \n"
            f"predicted: {marked(words, predicted, gold)}"
        )
    return "\n\n".join(blocks)


def labels_table(
    texts: Sequence[str], gold: Sequence[Sequence[str]], probabilities: Sequence[Sequence[float]], names, threshold
) -> str:
    """Multi-label: | | predicted | gold | text |, each predicted label with its probability, a wrong set marked."""
    rows = ["| | predicted | gold | text |", "| --- | --- | --- | --- |"]
    for text, labels, row in zip(texts, gold, probabilities):
        chosen = [(name, p) for name, p in zip(names, row) if p >= threshold]
        mark = "✓" if {name for name, _ in chosen} == set(labels) else "**✗**"
        predicted = ", ".join(f"{name} ({p:.2f})" for name, p in chosen) or "none"
        rows.append(f"| {mark} | {escape(predicted)} | {escape(', '.join(labels)) or 'none'} | {escape(text)} |")
    return "\n".join(rows)


def tagged_tokens(sentences: Sequence[tuple[Sequence[str], Sequence[str], Sequence[str]]]) -> str:
    """(words, gold tags, predicted tags) of each sentence as two lines of `word/TAG`, the wrong tags in bold."""
    blocks = ["Each word as word/TAG; **bold**: a predicted tag that is not the gold one."]
    for number, (words, gold_tags, predicted_tags) in enumerate(sentences, 1):
        wrong = sum(g != p for g, p in zip(gold_tags, predicted_tags))
        verdict = "✓" if not wrong else f"**✗ {wrong} {'tag differs' if wrong == 1 else 'tags differ'}**"
        gold = " ".join(f"{escape(w)}/{escape(t)}" for w, t in zip(words, gold_tags))
        predicted = " ".join(
            f"{escape(w)}/{escape(p)}" if p == g else f"**{escape(w)}/{escape(p)}**"
            for w, g, p in zip(words, gold_tags, predicted_tags)
        )
        blocks.append(f"{number}. {verdict}  \ngold: {gold}  \npredicted: {predicted}")
    return "\n\n".join(blocks)
