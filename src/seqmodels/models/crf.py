"""A linear-chain conditional random field over per-token tag scores (Lafferty et al. 2001).

A tag sequence y_1..y_n of a sentence scores
    start[y_1] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_n]
and has probability exp(score) / Z, where Z sums exp(score) over every tag sequence (the
forward algorithm, in log space). Training minimises -log p(gold tags); prediction takes
the best sequence (Viterbi). Transitions let the model learn that, say, I-PER never
follows B-LOC, which per-token softmax cannot express.

Batches are right-padded; `mask` (B, T) marks the real tokens and every sentence has at
least one. At padding steps the running scores are carried over unchanged, so a
sentence's result never depends on the padding around it.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearChainCRF(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        # transitions[i, j]: the score of tag j following tag i
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) unnormalised log-score of the given (B, T) tag sequences."""
        emissions, mask = emissions.float(), mask.bool()
        per_token = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        per_transition = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        score = (per_token * mask).sum(1) + (per_transition * mask[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1)).squeeze(1)
        return score + self.start[tags[:, 0]] + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log Z: the log-sum-exp of the scores of every tag sequence."""
        emissions, mask = emissions.float(), mask.bool()
        alpha = self.start + emissions[:, 0]  # (B, K): log-sum of the paths ending in each tag
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) negative log-likelihood of each sentence's gold tags."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def viterbi(
        self,
        emissions: torch.Tensor,
        mask: torch.Tensor,
        penalties: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, T) the highest-scoring tag sequences; padding positions hold 0. `penalties`: (K, K), (K,)
        and (K,) scores added to the transitions, first tags and last tags (-inf forbids one)."""
        if penalties is None:
            return viterbi(emissions, mask, self.transitions, self.start, self.end)
        transitions, start, end = penalties
        return viterbi(emissions, mask, self.transitions + transitions, self.start + start, self.end + end)


@torch.no_grad()
def viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """(B, T) the tag sequences maximising start + emissions + transitions + end; padding
    positions hold 0. -inf scores forbid a transition or a first tag."""
    emissions, mask = emissions.float(), mask.bool()
    batch, steps, _ = emissions.shape
    best = start + emissions[:, 0]  # (B, K): the best path ending in each tag
    backpointers = []  # per step t >= 1: (B, K) the best previous tag for each tag
    for t in range(1, steps):
        candidates, previous = (best.unsqueeze(2) + transitions).max(dim=1)
        best = torch.where(mask[:, t : t + 1], candidates + emissions[:, t], best)
        backpointers.append(previous)
    best_last = (best + end).argmax(1)
    lengths = mask.sum(1)
    path = torch.zeros(batch, steps, dtype=torch.long, device=emissions.device)
    tag = best_last
    for t in range(steps - 1, -1, -1):
        # a sentence's backtrace starts at its own last token, and only real steps are written
        tag = torch.where(lengths - 1 == t, best_last, tag)
        path[:, t] = torch.where(t < lengths, tag, 0)
        if t > 0:
            tag = backpointers[t - 1].gather(1, tag.unsqueeze(1)).squeeze(1)
    return path
