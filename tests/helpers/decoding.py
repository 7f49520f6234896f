"""The best tag path by brute force: every path a tag scheme allows, scored as the tagger scores it
(a CRF's start, emission, transition and end scores, or the sum of per-token log-probabilities
without one), so that a test can check the tagger's own decoder against it."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch


def best_valid_path(
    model, emissions: torch.Tensor, row: int, length: int, num_tags: int, valid: Callable[[tuple[int, ...]], bool]
) -> list[int]:
    """The highest-scoring path of `length` tags of batch row `row` among those `valid` accepts."""

    def score(tags: tuple[int, ...]) -> torch.Tensor:
        if model.crf is not None:
            crf = model.crf
            return (
                crf.start[tags[0]]
                + crf.end[tags[-1]]
                + sum(emissions[row, t, tags[t]] for t in range(length))
                + sum(crf.transitions[tags[t - 1], tags[t]] for t in range(1, length))
            )
        return sum(emissions[row, t].log_softmax(-1)[tags[t]] for t in range(length))

    return list(max(filter(valid, itertools.product(range(num_tags), repeat=length)), key=score))
