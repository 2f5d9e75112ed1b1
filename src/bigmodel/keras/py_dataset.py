"""``keras.utils.PyDataset``: a Python object that produces whole batches by index.

Keras 3's contract: a subclass defines ``__len__`` (batches per epoch) and ``__getitem__(index)``
(one batch: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``), optionally ``on_epoch_begin`` /
``on_epoch_end``; ``fit``, ``evaluate`` and ``predict`` take it as ``x`` (and as
``validation_data``). Iterating one (``for batch in dataset``) gives batches ``0 .. len - 1`` and
then calls ``on_epoch_end``, which is how the engine consumes it: one pass per epoch, each a new
iteration.

``workers > 1`` loads batches ahead in that many threads (in order, at most ``max_queue_size``
pending). ``use_multiprocessing=True`` is accepted but also uses threads (a warning says so):
processes would need the dataset and its batches pickled, which bigmodel does not do.
"""

from __future__ import annotations

import numbers
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bigmodel.errors import ConfigError, NotSupportedError


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"PyDataset: {name} must be an integer >= 1; received {name}={value!r}")
    return int(value)


class PyDataset:
    """Base class for batch-producing datasets (``keras.utils.PyDataset``).

    Args:
        workers: threads loading batches ahead (1: in the loop's own thread).
        use_multiprocessing: accepted for Keras compatibility; bigmodel uses threads (warns).
        max_queue_size: batches loaded ahead at most when ``workers > 1``.

    Raises:
        ConfigError: ``workers`` or ``max_queue_size`` not an integer >= 1.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10) -> None:
        self._workers = _positive_int(workers, "workers")
        self._max_queue_size = _positive_int(max_queue_size, "max_queue_size")
        self._use_multiprocessing = bool(use_multiprocessing)
        if self._use_multiprocessing:
            warnings.warn("PyDataset(use_multiprocessing=True): bigmodel loads batches in threads, "
                          "not processes", stacklevel=2)

    # Keras 3 reads these as properties (a subclass that skips super().__init__ still works).
    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = _positive_int(value, "workers")

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = _positive_int(value, "max_queue_size")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")

    @property
    def num_batches(self) -> int:
        """Batches per epoch (``len(self)``)."""
        return len(self)

    def on_epoch_begin(self) -> None:
        """Called before each pass over the batches."""

    def on_epoch_end(self) -> None:
        """Called after each full pass over the batches (e.g. to reshuffle)."""

    def __iter__(self) -> Iterator[Any]:
        try:
            count = len(self)
        except NotImplementedError:
            raise NotSupportedError(f"{type(self).__name__}: a PyDataset without __len__ "
                                    "(infinite) is not supported; define __len__") from None
        self.on_epoch_begin()
        if self.workers <= 1:
            for index in range(count):
                yield self[index]
        else:
            with ThreadPoolExecutor(self.workers) as pool:
                pending: deque = deque()
                for index in range(count):
                    pending.append(pool.submit(self.__getitem__, index))
                    if len(pending) >= self.max_queue_size:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
        self.on_epoch_end()


__all__ = ["PyDataset"]
