"""Greedy decoding and batched beam search for an encoder-decoder (`models.seq2seq.Seq2Seq`).

Both read the model through `encode`, `initial_state`, `step` (log-probabilities of the next token)
and its special ids (`padding_idx`, `bos_id`, `eos_id`), so they work for every attention type.
Hypotheses never contain `<pad>` or `<s>`. Sentence i may be at most `max_lengths[i]` tokens long,
`</s>` included: at its last step `</s>` is the only choice, so every hypothesis ends.

Beam search keeps `beam_size` hypotheses per sentence, all sentences and beams in one (B*K, ...)
batch. Each step takes the 2K best extensions of a sentence's beams: those ending in `</s>` among its
K best are set aside as finished (their score divided by the length penalty ((5 + length) / 6) ** alpha,
Wu et al. 2016), and the K best of the others go on. A sentence is done when K hypotheses have
finished, and its rows leave the batch, so long sentences do not keep short ones' rows busy. Its
translation is its best finished hypothesis. With K = 1 this is greedy decoding exactly; with K at
least the number of all hypotheses nothing is ever pruned, so the result is the best of them all.
"""

from __future__ import annotations

import torch

from seqmodels.models.seq2seq import Seq2Seq, repeat_rows


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def _allowed(model: Seq2Seq, log_probs: torch.Tensor, last_step: torch.Tensor) -> torch.Tensor:
    """Forbid <pad> and <s> everywhere, and everything but </s> in rows at their last step."""
    log_probs[:, [model.padding_idx, model.bos_id]] = float("-inf")
    if last_step.any():
        eos = log_probs[last_step, model.eos_id]
        log_probs[last_step] = float("-inf")
        log_probs[last_step, model.eos_id] = eos
    return log_probs


@torch.no_grad()
def greedy_search(
    model: Seq2Seq, source: torch.Tensor, lengths: torch.Tensor, max_lengths: torch.Tensor
) -> list[list[int]]:
    """The most likely next token at every step, until </s>; the ids without </s>."""
    memory = model.encode(source, lengths)
    state = model.initial_state(memory)
    batch = source.shape[0]
    tokens = torch.full((batch,), model.bos_id, dtype=torch.long, device=source.device)
    max_lengths = max_lengths.to(source.device)
    done = torch.zeros(batch, dtype=torch.bool, device=source.device)
    outputs: list[torch.Tensor] = []
    for step in range(int(max_lengths.max())):
        log_probs, state, _ = model.step(memory, state, tokens)
        tokens = _allowed(model, log_probs, (max_lengths - 1).eq(step)).argmax(-1).masked_fill(done, model.padding_idx)
        outputs.append(tokens)
        done |= tokens == model.eos_id
        if done.all():
            break
    rows = torch.stack(outputs, dim=1).tolist()
    return [row[: row.index(model.eos_id)] if model.eos_id in row else row for row in rows]


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    source: torch.Tensor,
    lengths: torch.Tensor,
    max_lengths: torch.Tensor,
    beam_size: int,
    alpha: float = 0.0,
) -> list[list[int]]:
    """The best finished hypothesis of each sentence (see the module docstring); the ids without </s>."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    k, device = beam_size, source.device
    memory = repeat_rows(model.encode(source, lengths), k)
    state = model.initial_state(memory)
    active = torch.arange(source.shape[0], device=device)  # the sentences still in the batch
    max_lengths = max_lengths.to(device)
    scores = torch.full((len(active), k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per sentence to start: <s>
    history = torch.empty(len(active) * k, 0, dtype=torch.long, device=device)
    tokens = torch.full((len(active) * k,), model.bos_id, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(source.shape[0])]
    for step in range(int(max_lengths.max())):
        n = len(active)
        log_probs, state, _ = model.step(memory, state, tokens)
        last_step = (max_lengths[active] - 1).eq(step)
        log_probs = _allowed(model, log_probs, last_step.repeat_interleave(k))
        vocab = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=-1)
        beams, words = top_index // vocab, top_index % vocab
        ends = words == model.eos_id
        rank = torch.arange(top_scores.shape[1], device=device).expand_as(top_scores)
        for row, column in (ends & (rank < k) & torch.isfinite(top_scores)).nonzero().tolist():
            ids = history[row * k + beams[row, column]].tolist()
            score = float(top_scores[row, column]) / length_penalty(len(ids) + 1, alpha)
            finished[int(active[row])].append((score, ids))
        # the K best extensions that do not end go on (an ending one sorts after every other)
        keep = (rank + ends * top_scores.shape[1]).argsort(dim=-1)[:, :k]
        scores, beams, words = top_scores.gather(1, keep), beams.gather(1, keep), words.gather(1, keep)
        rows = (torch.arange(n, device=device).unsqueeze(1) * k + beams).view(-1)
        history = torch.cat([history[rows], words.view(-1, 1)], dim=1)
        tokens = words.view(-1)
        state = state.select(rows)
        done = last_step | torch.tensor([len(finished[int(i)]) >= k for i in active], device=device)
        if done.all():
            break
        if done.any():  # finished sentences leave the batch
            remaining = (~done).nonzero().squeeze(1)
            rows = (remaining.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            active, scores = active[remaining], scores[remaining]
            memory, state, history, tokens = memory.select(rows), state.select(rows), history[rows], tokens[rows]
    return [max(hypotheses, key=lambda hypothesis: hypothesis[0])[1] for hypotheses in finished]
