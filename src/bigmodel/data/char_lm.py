"""Character-level language modelling on the Debian ``fortunes`` texts.

:func:`load_fortunes_corpus` reads fortune files (entries separated by ``%`` lines, read by
:mod:`bigmodel.data.fortunes`) and splits them *by entry* with a seeded permutation, so no fortune
is split between training and validation text. Entries are joined with ``"\\n%\\n"``, the file
format's own separator, so a model also learns where a fortune ends.

:class:`LMWindows` serves random ``(x, y)`` windows of a token stream (``y`` is ``x`` shifted by one)
for the engine's ``Trainer``; :func:`bigram_bits_per_char` is the baseline a model should beat.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError

__all__ = ["SEPARATOR", "FortunesCorpus", "LMWindows", "bigram_bits_per_char", "load_fortunes_corpus"]

SEPARATOR = "\n%\n"


@dataclass
class FortunesCorpus:
    """Training and validation text (entries joined by :data:`SEPARATOR`) and entry counts."""

    train_text: str
    validation_text: str
    num_train_entries: int
    num_validation_entries: int
    categories: tuple[str, ...]


def load_fortunes_corpus(categories: Sequence[str] | None = None,
                         path: str | os.PathLike | None = None,
                         validation_fraction: float = 0.1, seed: int = 0) -> FortunesCorpus:
    """Read fortunes and split them by entry.

    Args:
        categories: category files to read; None = every category file of the directory.
        path: the fortunes directory (default: the search order of :mod:`bigmodel.data.fortunes`).
        validation_fraction: share of entries held out (at least one).
        seed: seed of the permutation of entries.

    Raises:
        ConfigError: a bad fraction. DataFileError: the files cannot be found.
        DataError: fewer than two entries.
    """
    from bigmodel.data.fortunes import find_fortunes_dir, read_fortune_file

    if not isinstance(validation_fraction, (int, float)) or not 0 < validation_fraction < 1:
        raise ConfigError(f"load_fortunes_corpus: 'validation_fraction' must be in (0, 1); "
                          f"received {validation_fraction!r}")
    directory = find_fortunes_dir(path, categories or ())
    if categories is None:
        categories = sorted(p.name for p in directory.iterdir() if p.is_file() and "." not in p.name)
    entries = [entry for name in categories for entry in read_fortune_file(directory / name)]
    if len(entries) < 2:
        raise DataError(f"load_fortunes_corpus: {directory} holds {len(entries)} fortune(s) in "
                        f"{list(categories)}; at least 2 are needed to split")
    order = np.random.default_rng(seed).permutation(len(entries))
    count = min(len(entries) - 1, max(1, int(round(len(entries) * validation_fraction))))
    validation = [entries[i] for i in order[:count]]
    train = [entries[i] for i in order[count:]]
    return FortunesCorpus(SEPARATOR.join(train), SEPARATOR.join(validation), len(train),
                          len(validation), tuple(categories))


class LMWindows:
    """Random windows of a token stream: batches ``(x (B, T), y (B, T))`` with ``y = x`` shifted.

    Args:
        ids: the token stream ``(N,)``.
        block_size: ``T``.
        batch_size: ``B``.
        steps: batches per epoch (``len()``).
        seed: seed of the window starts (a new draw every epoch, reproducible).

    Raises:
        DataError: the stream is not longer than ``block_size``.
    """

    def __init__(self, ids: np.ndarray | torch.Tensor, block_size: int, batch_size: int,
                 steps: int, seed: int = 0) -> None:
        self.ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        if self.ids.dim() != 1 or len(self.ids) <= block_size:
            raise DataError(f"LMWindows: need a 1-D stream longer than block_size={block_size}; "
                            f"received shape {tuple(self.ids.shape)}")
        self.block_size, self.batch_size, self.steps = block_size, batch_size, steps
        self.generator = torch.Generator().manual_seed(seed)
        self._offsets = torch.arange(block_size + 1)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.steps):
            starts = torch.randint(0, len(self.ids) - self.block_size, (self.batch_size,),
                                   generator=self.generator)
            window = self.ids[starts[:, None] + self._offsets]  # (B, T + 1)
            yield window[:, :-1], window[:, 1:]


def bigram_bits_per_char(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int,
                         alpha: float = 0.1) -> float:
    """Bits per character of an add-``alpha`` smoothed bigram model fitted on ``train_ids``.

    ``p(b | a) = (count(a, b) + alpha) / (count(a) + alpha * vocab_size)``, evaluated on every
    consecutive pair of ``eval_ids``.
    """
    train_ids, eval_ids = np.asarray(train_ids), np.asarray(eval_ids)
    if len(train_ids) < 2 or len(eval_ids) < 2:
        raise DataError("bigram_bits_per_char: both streams need at least 2 tokens")
    if alpha <= 0:
        raise ConfigError(f"bigram_bits_per_char: 'alpha' must be > 0; received {alpha}")
    counts = np.zeros((vocab_size, vocab_size), dtype=np.float64)
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    probs = (counts + alpha) / (counts.sum(axis=1, keepdims=True) + alpha * vocab_size)
    return float(-np.log2(probs[eval_ids[:-1], eval_ids[1:]]).mean())


def bits_per_char(mean_nats: float) -> float:
    """Convert a mean cross-entropy in nats per character to bits per character."""
    return mean_nats / math.log(2)
