"""conlleval (the CoNLL-2000/2003 shared tasks' Perl script) in Python: entity-level precision, recall
and F1 of a file whose last two columns are the gold and the predicted tag, blank lines between
sentences. A line-by-line port of the script's chunk rules (`endOfChunk`, `startOfChunk` and its main
loop), independent of seqmodels' own scorer, so that each checks the other."""

from __future__ import annotations

from pathlib import Path

BOUNDARY = "-X-"  # conlleval's sentence-boundary word; blank lines become it


def end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
        or (prev_tag not in ("O", ".") and prev_type != type_)
        or prev_tag in ("]", "[")
    )


def start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
        or (tag not in ("O", ".") and prev_type != type_)
        or tag in ("[", "]")
    )


def split_tag(tag: str) -> tuple[str, str]:
    prefix, dash, type_ = tag.partition("-")
    return (prefix, type_) if dash else (tag, "")


def conlleval(path: Path) -> dict[str, float]:
    """{"precision", "recall", "f1"} as fractions (conlleval prints percentages)."""
    correct_chunks = found_correct = found_guessed = 0
    in_correct = False
    last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        features = line.split()
        if not features or features[0] == BOUNDARY:
            features = [BOUNDARY, "O", "O"]
        guessed, guessed_type = split_tag(features[-1])
        correct, correct_type = split_tag(features[-2])
        if features[0] == BOUNDARY:
            guessed = "O"
        if in_correct:
            correct_ends = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
            guessed_ends = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
            if correct_ends and guessed_ends and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunks += 1
            elif correct_ends != guessed_ends or guessed_type != correct_type:
                in_correct = False
        correct_starts = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        guessed_starts = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if correct_starts and guessed_starts and guessed_type == correct_type:
            in_correct = True
        found_correct += correct_starts
        found_guessed += guessed_starts
        last_correct, last_correct_type, last_guessed, last_guessed_type = (
            correct,
            correct_type,
            guessed,
            guessed_type,
        )
    if in_correct:
        correct_chunks += 1
    precision = correct_chunks / found_guessed if found_guessed else 0.0
    recall = correct_chunks / found_correct if found_correct else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
