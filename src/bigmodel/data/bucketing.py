"""Length bucketing: batches of similar-length sequences, each cut to its own longest sequence.

Sequences padded to a common width waste work on padding. :class:`LengthBucketBatches` shuffles the
samples, sorts each pool of ``pool_batches * batch_size`` of them by length, cuts the pools into
batches, shuffles the batch order, and trims every batch to the longest sequence it holds. An
epoch still visits every sample once; a seeded generator makes the order reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from bigmodel.errors import ConfigError, DataError

__all__ = ["LengthBucketBatches", "padded_width", "trim_padding"]


def padded_width(ids: torch.Tensor, pad_id: int = 0) -> int:
    """Columns up to the last one holding a non-padding id in some row (at least 1)."""
    nonpad = (ids != pad_id).any(dim=0).nonzero()
    return int(nonpad[-1]) + 1 if len(nonpad) else 1


def trim_padding(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """``ids (N, L)`` without the trailing columns that are padding in every row."""
    return ids[:, : padded_width(ids, pad_id)]


class LengthBucketBatches:
    """Re-iterable batches ``(inputs, targets)`` of similar lengths.

    Args:
        arrays: ``(N, L_i)`` token tensors; each batch takes the same rows of each.
        structure: how to assemble a batch from the arrays, as indices: ``((0, 1), 2)`` yields
            ``((arrays[0], arrays[1]), arrays[2])``.
        batch_size: samples per batch.
        shuffle: new order each epoch (batch order and pool contents); False keeps the data order
            (batches are still trimmed).
        pad_id: padding id (trailing padding columns are trimmed per batch).
        pool_batches: batches per sorting pool (larger: less padding, less randomness).
        generator: seeded ``torch.Generator`` for the shuffling.
        width_groups: groups of array indices trimmed to one common width (e.g. a decoder input
            and its targets, which must stay aligned); other arrays are trimmed alone.

    Raises:
        DataError: the arrays have different numbers of rows or no rows.
    """

    def __init__(self, arrays: Sequence[torch.Tensor], structure: tuple, batch_size: int,
                 shuffle: bool = True, pad_id: int = 0, pool_batches: int = 50,
                 generator: torch.Generator | None = None,
                 width_groups: Sequence[Sequence[int]] = ()) -> None:
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1 or 0 in sizes:
            raise DataError(f"LengthBucketBatches: arrays need the same, non-zero number of rows; "
                            f"received {[len(a) for a in arrays]}")
        if batch_size < 1 or pool_batches < 1:
            raise ConfigError(f"LengthBucketBatches: batch_size and pool_batches must be >= 1; "
                              f"received {batch_size}, {pool_batches}")
        self.arrays = list(arrays)
        self.structure = structure
        self.batch_size, self.shuffle, self.pad_id = int(batch_size), shuffle, pad_id
        self.pool = int(pool_batches) * self.batch_size
        self.generator = generator
        self.group_of = {index: tuple(group) for group in width_groups for index in group}
        # Sort key: the longest of a sample's sequences.
        self.lengths = torch.stack([(a != pad_id).sum(dim=1) for a in self.arrays]).amax(dim=0)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def _order(self) -> list[torch.Tensor]:
        count = len(self.lengths)
        if not self.shuffle:
            return list(torch.arange(count).split(self.batch_size))
        order = torch.randperm(count, generator=self.generator)
        batches = []
        for pool in order.split(self.pool):
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches.extend(pool.split(self.batch_size))
        permutation = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in permutation]

    def _assemble(self, part: object, batch: list[torch.Tensor], widths: list[int]) -> object:
        if isinstance(part, tuple):
            return tuple(self._assemble(p, batch, widths) for p in part)
        width = max(widths[i] for i in self.group_of.get(part, (part,)))
        return batch[part][:, :width]

    def __iter__(self) -> Iterator[tuple]:
        for rows in self._order():
            batch = [a[rows] for a in self.arrays]
            widths = [padded_width(b, self.pad_id) for b in batch]
            yield tuple(self._assemble(part, batch, widths) for part in self.structure)
