"""Seeded train/validation splits and subsets: the same seed gives the same split on every machine."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from seqmodels.errors import ConfigError


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a random split of range(n), each sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction} is impossible; it must be in (0, 1)")
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ConfigError(f"data.val_fraction={val_fraction} leaves no training examples out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


def stratified_split(labels: Sequence[Hashable], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, val) of a seeded split that holds out `val_fraction` of each label's examples
    (rounded, at least one where the label has two or more), so validation has the training data's label
    mix; a label seen once stays in training. Each list sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction} is impossible; it must be in (0, 1)")
    generator = torch.Generator().manual_seed(seed)
    train: list[int] = []
    val: list[int] = []
    for members in _by_label(labels).values():
        order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        held = 0 if len(order) < 2 else min(len(order) - 1, max(1, round(len(order) * val_fraction)))
        val += order[:held]
        train += order[held:]
    if not val:
        raise ConfigError(
            f"data.val_fraction={val_fraction} holds out no validation example of {len(labels)}; give a "
            f"validation file (data.val) or more examples"
        )
    return sorted(train), sorted(val)


def stratified_subset(labels: Sequence[Hashable], count: int, seed: int) -> list[int]:
    """Indices (sorted) of `count` of the examples, drawn with `seed`, each label keeping its share (rounded by
    largest remainders, at least one per label where `count` allows)."""
    if count >= len(labels):
        return list(range(len(labels)))
    groups = _by_label(labels)
    shares = {label: count * len(members) / len(labels) for label, members in groups.items()}
    taken = {label: max(int(share), 1 if count >= len(groups) else 0) for label, share in shares.items()}
    while sum(taken.values()) > count:  # the ones given to rare labels come out of the largest shares
        taken[max(taken, key=lambda label: taken[label])] -= 1
    by_remainder = sorted(groups, key=lambda label: -(shares[label] - taken[label]))
    for label in by_remainder[: count - sum(taken.values())]:
        taken[label] += 1
    generator = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for label, members in groups.items():
        order = torch.randperm(len(members), generator=generator).tolist()
        chosen += [members[i] for i in order[: taken[label]]]
    return sorted(chosen)


def _by_label(labels: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Each label's example indices, labels in first-seen order (so the draws do not depend on hashing)."""
    groups: dict[Hashable, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    return groups
