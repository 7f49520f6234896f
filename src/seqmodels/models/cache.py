"""A continuous cache for a trained language model (Grave et al. 2017, "Improving neural
language models with a continuous cache").

Text repeats itself: a name or a rare word that appeared a few sentences ago is likely to
appear again, which a language model's softmax, fixed after training, cannot know. The
cache remembers the last `size` hidden states of the text with the word that followed each.
A new hidden state h_t points at the remembered ones that resemble it,

    p_cache(w) = sum over remembered i whose next word was w of softmax_i(theta * h_t . h_i)

and the prediction mixes the two: p(w) = (1 - lambda) p_model(w) + lambda p_cache(w). Both
are distributions over the vocabulary, so the mixture is one too and perplexity stays exact.
Nothing is trained: theta (how sharply it points) and lambda (how much it is trusted) are
chosen on the validation split. It reads a split window by window like evaluation does, one
memory per parallel stream, emptied when a pass starts.
"""

from __future__ import annotations

import torch


class ContinuousCache:
    def __init__(self, size: int, theta: float, lam: float, ignore_index: int) -> None:
        if size < 1 or theta <= 0 or not 0 <= lam <= 1:
            raise ValueError(f"a cache needs size >= 1, theta > 0 and lambda in [0, 1]; got {size}, {theta}, {lam}")
        self.size, self.theta, self.lam, self.ignore_index = size, theta, lam, ignore_index
        self.reset()

    def reset(self) -> None:
        self.keys: torch.Tensor | None = None  # (streams, remembered, hidden)
        self.values: torch.Tensor | None = None  # (streams, remembered): the word after each key

    def probabilities(self, hidden: torch.Tensor, targets: torch.Tensor, model_probs: torch.Tensor) -> torch.Tensor:
        """(B, T) probability of each target under the mixture, given the (B, T, H) hidden
        states that predict them and the model's own (B, T) probabilities of them; then
        remembers this window. Targets that are no token (end of a stream) are never pointed at."""
        hidden = hidden.float()
        if self.keys is None:
            self.keys = hidden.new_zeros(hidden.shape[0], 0, hidden.shape[2])
            self.values = targets.new_full((targets.shape[0], 0), self.ignore_index)
        assert self.values is not None
        earlier = self.keys.shape[1]
        keys, values = torch.cat([self.keys, hidden], dim=1), torch.cat([self.values, targets], dim=1)
        # step t (position earlier + t) may point at the `size` positions before it, never at itself
        # or later: their next words are what is being predicted
        position = torch.arange(keys.shape[1], device=hidden.device)
        now = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(1) + earlier
        allowed = (position < now) & (position >= now - self.size)
        allowed = allowed.unsqueeze(0) & (values != self.ignore_index).unsqueeze(1)  # (B, T, remembered + T)
        scores = (self.theta * hidden @ keys.transpose(1, 2)).masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a step with an empty memory: no weights
        cache_probs = (weights * (values.unsqueeze(1) == targets.unsqueeze(2))).sum(-1)
        lam = torch.where(allowed.any(-1), self.lam, 0.0)  # nothing remembered yet: the model alone
        self.keys, self.values = keys[:, -self.size :], values[:, -self.size :]
        return (1 - lam) * model_probs.float() + lam * cache_probs
