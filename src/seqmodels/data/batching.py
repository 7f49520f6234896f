"""Length-bucketed, padded batches.

Zero padding is wasted computation, and on CPU packed sequences are the slow way round (measured in
docs/performance.md). So sequences of similar
length are batched together: the training order is shuffled, cut into pools of `pool_batches`
batches, each pool is sorted by length and cut into batches, and the batches are shuffled. Every epoch draws a new
order from (seed, epoch), so runs are reproducible and resumable.

Data-parallel training (`shard`) deals every rank its own batches of that same order, so
buckets stay buckets within a rank and the ranks together read the epoch exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Sampler

from seqmodels.data.text import PAD_ID


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int] | torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pool_batches: int = 50,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.drop_last = drop_last
        self.epoch = 0
        self.rank, self.num_ranks = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, num_ranks: int) -> None:
        """From now on yield only rank `rank`'s share of each epoch (of `num_ranks`)."""
        if not 0 <= rank < num_ranks:
            raise ValueError(f"rank must be in [0, {num_ranks}), got {rank}")
        self.rank, self.num_ranks = rank, num_ranks

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch, in order."""
        everyone = self._all_batches()
        if self.num_ranks == 1:
            return everyone
        if not self.shuffle:  # evaluation: every example once; ranks may differ by a batch
            return everyone[self.rank :: self.num_ranks]
        # Training ranks must take the same number of steps (each step waits for every rank's
        # gradients): whole batches are dealt round-robin, and the examples of the last few
        # batches, too few to go round, are split evenly (dropped only if fewer than the ranks).
        dealt = len(everyone) // self.num_ranks * self.num_ranks
        mine = everyone[:dealt][self.rank :: self.num_ranks]
        rest = [index for batch in everyone[dealt:] for index in batch]
        if len(rest) >= self.num_ranks:
            mine.append(rest[self.rank :: self.num_ranks])
        return mine

    def _all_batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:  # evaluation: fully sorted, the least padding possible
            order = torch.sort(self.lengths, stable=True).indices
            return [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=generator)
        pool = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.sort(self.lengths[chunk], stable=True).indices]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in permutation]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        if self.drop_last or self.num_ranks > 1:
            return len(self.batches())
        n, size = len(self.lengths), self.batch_size
        if not self.shuffle:
            return -(-n // size)
        pool = size * self.pool_batches  # every full pool gives pool_batches batches
        return (n // pool) * self.pool_batches + -(-(n % pool) // size)


def padding_fraction(lengths: Sequence[int] | torch.Tensor, batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded (batch x max length) cells that are padding."""
    lengths = torch.as_tensor(lengths)
    real = padded = 0
    for batch in batches:
        batch_lengths = lengths[batch]
        real += int(batch_lengths.sum())
        padded += int(batch_lengths.max()) * len(batch)
    return 1.0 - real / padded if padded else 0.0


def padding_report(lengths: torch.Tensor, sampler: BucketBatchSampler) -> dict[str, str]:
    """The start-up summary's padding lines: one epoch of bucketed batches against the same
    batch size drawn at random (what bucketing saves)."""
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    random_batches = [order[i : i + sampler.batch_size].tolist() for i in range(0, len(order), sampler.batch_size)]
    return {
        "padding, bucketed batches": f"{padding_fraction(lengths, sampler.batches()):.1%}",
        "padding, random batches": f"{padding_fraction(lengths, random_batches):.1%}",
    }


def pad_right(sequences: Sequence[torch.Tensor], pad_value: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) int64 ids padded on the right (torch's `pad_sequence`), and the (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    return pad_sequence(list(sequences), batch_first=True, padding_value=pad_value).long(), lengths


@dataclass
class RaggedIds:
    """Token id sequences stored flat (see `text.flatten`), indexable like a list."""

    flat: torch.Tensor
    offsets: torch.Tensor

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.flat[self.offsets[index] : self.offsets[index + 1]]

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]


class BatchLoader:
    """Batches drawn by a sampler and assembled by `make_batch(indices)` in this process.

    Assembling a padded batch from cached ids takes microseconds, so worker processes
    would only take cores away from the RNN (2-core machines are the common case).
    """

    def __init__(self, sampler: BucketBatchSampler, make_batch) -> None:
        self.sampler = sampler
        self.make_batch = make_batch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def shard(self, rank: int, num_ranks: int) -> None:
        self.sampler.shard(rank, num_ranks)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for indices in self.sampler:
            yield self.make_batch(indices)

    def sample(self, count: int):
        """`count` batches spread evenly over the pass (the first and the last included) when its order
        is fixed: evaluation batches are sorted by length, so the first ones would be the shortest
        sequences only. A shuffled pass is a random order already: its first `count` batches."""
        batches = self.sampler.batches()
        if self.sampler.shuffle or count >= len(batches):
            picked = batches[:count]
        elif count == 1:
            picked = [batches[len(batches) // 2]]
        else:
            last = len(batches) - 1
            picked = [batches[round(i * last / (count - 1))] for i in range(count)]
        for indices in picked:
            yield self.make_batch(indices)
