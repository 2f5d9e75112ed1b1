"""Sequence-to-sequence tasks generated from a seed, each with a held-out test set.

- ``numbers_to_words``: ``"4071" -> "four thousand seventy one"`` (English, no "and", no hyphens).
- ``dates_to_iso``: a date written in one of many formats (``"Wednesday, April 5, 2023"``,
  ``"05.04.2023"``, ``"4/5/2023"``, ``"5 apr 23"``, ...) -> ISO 8601 ``"2023-04-05"``.
- ``reversal``: a random string -> the same string reversed.

Held out means held out: test numbers, test calendar days and test strings never occur in the
training set (the split is made on the underlying values before any formatting), so exact-match
accuracy on the test set measures generalization, not memorization. Every function is
deterministic for a given ``seed``.

Formats of ``dates_to_iso`` are unambiguous by construction: slashes are always month/day/year
(US), dots and dashes-with-day-first are day.month.year, two-digit years mean 1950-2049.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bigmodel.data.bucketing import LengthBucketBatches
from bigmodel.errors import ConfigError, DataError

__all__ = ["DATE_FORMATS", "Seq2SeqTask", "dates_to_iso", "encode_pairs", "exact_match",
           "number_to_words", "numbers_to_words", "reversal", "seq2seq_batches", "teacher_forcing"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


@dataclass
class Seq2SeqTask:
    """Source and target strings of a task's training and held-out test sets."""

    name: str
    train_sources: list[str]
    train_targets: list[str]
    test_sources: list[str]
    test_targets: list[str]


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """English words of ``0 <= n < 10**12``: ``4071 -> "four thousand seventy one"``.

    Raises:
        ConfigError: ``n`` negative, too large or not an integer.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 10**12:
        raise ConfigError(f"number_to_words: expected an integer in [0, 10**12); received {n!r}")
    n = int(n)
    if n == 0:
        return "zero"
    words = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    return " ".join(words + _below_thousand(n))


def _check_counts(name: str, num_train: int, num_test: int, available: int) -> None:
    for what, count in (("num_train", num_train), ("num_test", num_test)):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"{name}: '{what}' must be a positive int; received {count!r}")
    if num_train + num_test > available:
        raise DataError(f"{name}: {num_train} training + {num_test} test examples need more "
                        f"distinct values than the {available} available; widen the range")


def numbers_to_words(num_train: int = 20000, num_test: int = 2000, max_number: int = 999_999,
                     seed: int = 0) -> Seq2SeqTask:
    """Digits -> English words for distinct numbers in ``[0, max_number]``.

    Test numbers are disjoint from training numbers. Small numbers are oversampled a little
    (every number below 1000 is in the pool), so both short and long outputs are learned.

    Raises:
        ConfigError / DataError: bad counts, or more examples than numbers in the range.
    """
    if not isinstance(max_number, int) or not 9 <= max_number < 10**12:
        raise ConfigError(f"numbers_to_words: 'max_number' must be an int in [9, 10**12); "
                          f"received {max_number!r}")
    _check_counts("numbers_to_words", num_train, num_test, max_number + 1)
    rng = np.random.default_rng(seed)
    # Draw distinct numbers without building the whole range when it is large.
    chosen: set[int] = set()
    while len(chosen) < num_train + num_test:
        chosen.update(int(v) for v in rng.integers(0, max_number + 1,
                                                   size=2 * (num_train + num_test)))
    numbers = np.array(sorted(chosen))
    numbers = rng.permutation(numbers)[: num_train + num_test]
    test, train = numbers[:num_test], numbers[num_test:]
    return Seq2SeqTask("numbers_to_words", [str(n) for n in train],
                       [number_to_words(int(n)) for n in train], [str(n) for n in test],
                       [number_to_words(int(n)) for n in test])


def _date_formats() -> list[Callable[[datetime.date], str]]:
    def month(d):
        return _MONTHS[d.month - 1]

    def weekday(d):
        return _DAYS[d.weekday()]

    return [
        lambda d: d.isoformat(),
        lambda d: f"{d.day} {month(d)} {d.year}",
        lambda d: f"{d.day:02d} {month(d)} {d.year}",
        lambda d: f"{month(d)} {d.day}, {d.year}",
        lambda d: f"{month(d)[:3]} {d.day:02d} {d.year}",
        lambda d: f"{d.day} {month(d)[:3].lower()} {d.year % 100:02d}",
        lambda d: f"{d.month}/{d.day}/{d.year}",
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
        lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
        lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",
        lambda d: f"{weekday(d)}, {month(d)} {d.day}, {d.year}",
        lambda d: f"{weekday(d)[:3]} {d.day} {month(d)[:3]} {d.year}",
        lambda d: f"{month(d).lower()} {d.day} {d.year}",
        lambda d: f"{d.year}{d.month:02d}{d.day:02d}",
        lambda d: f"{d.day}-{month(d)[:3].upper()}-{d.year}",
    ]


DATE_FORMATS = len(_date_formats())


def dates_to_iso(num_train: int = 20000, num_test: int = 2000,
                 start: datetime.date = datetime.date(1950, 1, 1),
                 end: datetime.date = datetime.date(2049, 12, 31), seed: int = 0) -> Seq2SeqTask:
    """A date in one of ``DATE_FORMATS`` formats (chosen at random) -> ``YYYY-MM-DD``.

    Test calendar days are disjoint from training days. Years outside 1950-2049 would make the
    two-digit-year formats ambiguous and are refused.

    Raises:
        ConfigError / DataError: a range outside 1950-2049, bad counts, or too few days.
    """
    if not (datetime.date(1950, 1, 1) <= start <= end <= datetime.date(2049, 12, 31)):
        raise ConfigError(f"dates_to_iso: the range must lie within 1950-01-01..2049-12-31 "
                          f"(two-digit years); received {start}..{end}")
    days = (end - start).days + 1
    _check_counts("dates_to_iso", num_train, num_test, days)
    rng = np.random.default_rng(seed)
    offsets = rng.permutation(days)[: num_train + num_test]
    formats = _date_formats()
    styles = rng.integers(0, len(formats), size=len(offsets))
    dates = [start + datetime.timedelta(days=int(o)) for o in offsets]
    sources = [formats[s](d) for s, d in zip(styles, dates)]
    targets = [d.isoformat() for d in dates]
    return Seq2SeqTask("dates_to_iso", sources[num_test:], targets[num_test:], sources[:num_test],
                       targets[:num_test])


def reversal(num_train: int = 5000, num_test: int = 500, min_length: int = 3,
             max_length: int = 8, alphabet: str = "abcdefghij", seed: int = 0) -> Seq2SeqTask:
    """Random strings over ``alphabet`` -> reversed; test strings never occur in training.

    Raises:
        ConfigError: bad lengths or alphabet; DataError: too few distinct strings.
    """
    if not isinstance(alphabet, str) or len(set(alphabet)) < 2 or len(set(alphabet)) != len(alphabet):
        raise ConfigError(f"reversal: 'alphabet' must hold at least 2 distinct characters; "
                          f"received {alphabet!r}")
    if not isinstance(min_length, int) or not isinstance(max_length, int) or \
            not 1 <= min_length <= max_length:
        raise ConfigError(f"reversal: need 1 <= min_length <= max_length; received {min_length}, "
                          f"{max_length}")
    available = sum(len(alphabet) ** n for n in range(min_length, max_length + 1))
    _check_counts("reversal", num_train, num_test, available)
    rng = np.random.default_rng(seed)
    letters = np.array(list(alphabet))
    seen: dict[str, None] = {}
    while len(seen) < num_train + num_test:
        length = int(rng.integers(min_length, max_length + 1))
        seen["".join(letters[rng.integers(0, len(letters), size=length)])] = None
    strings = list(seen)
    test, train = strings[:num_test], strings[num_test:]
    return Seq2SeqTask("reversal", train, [s[::-1] for s in train], test, [s[::-1] for s in test])


def encode_pairs(sources: Sequence[str], targets: Sequence[str], source_tokenizer,
                 target_tokenizer=None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for ``TransformerModel.fit``: padded source ids, and target ids ending in EOS."""
    target_tokenizer = target_tokenizer or source_tokenizer
    if len(sources) != len(targets):
        raise DataError(f"encode_pairs: {len(sources)} sources but {len(targets)} targets")
    return (source_tokenizer.encode_batch(sources),
            target_tokenizer.encode_batch(targets, add_eos=True))


def teacher_forcing(targets: torch.Tensor, bos_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(decoder_input, targets)`` for teacher forcing: the decoder reads ``[BOS] + targets[:-1]``
    and learns to predict ``targets``.

    Args:
        targets: ``(N, T)`` target ids right-padded, without a leading BOS (as
            :func:`encode_pairs` gives them, each ending in EOS).
        bos_id: the id the decoder starts from.

    Returns:
        ``decoder_input (N, T)`` and ``targets (N, T)`` (unchanged).
    """
    bos = torch.full_like(targets[:, :1], bos_id)
    return torch.cat([bos, targets[:, :-1]], dim=1), targets


def seq2seq_batches(source: torch.Tensor, decoder_input: torch.Tensor, targets: torch.Tensor,
                    batch_size: int, *, shuffle: bool = True, seed: int | None = None,
                    pad_id: int = 0, bucket: bool = True) -> LengthBucketBatches:
    """Batches ``((source, decoder_input), targets)`` for an encoder-decoder, each trimmed to its
    longest sequence (the decoder input and its targets to one common width).

    Args:
        source / decoder_input / targets: ``(N, S)`` / ``(N, T)`` / ``(N, T)`` ids, right-padded.
        batch_size: pairs per batch.
        shuffle: a new order each epoch (seeded by ``seed``; 0 when None).
        pad_id: the padding id.
        bucket: sort pools of 50 batches by length (less padding); False: one batch per pool.
    """
    generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    return LengthBucketBatches([source, decoder_input, targets], ((0, 1), 2), batch_size,
                               shuffle=shuffle, pad_id=pad_id, generator=generator,
                               pool_batches=50 if bucket else 1, width_groups=[(1, 2)])


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference (after stripping surrounding spaces)."""
    if len(predictions) != len(references) or not references:
        raise DataError(f"exact_match: need equally many, non-zero predictions and references; "
                        f"received {len(predictions)} and {len(references)}")
    return float(np.mean([p.strip() == r.strip() for p, r in zip(predictions, references)]))
