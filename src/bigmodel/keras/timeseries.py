"""``keras.utils.timeseries_dataset_from_array``: sliding windows over an array, in batches.

Keras 3 builds a ``tf.data.Dataset`` (TensorFlow needed); here the result is a
:class:`~bigmodel.keras.py_dataset.PyDataset` of NumPy batches, which ``fit`` / ``evaluate`` /
``predict`` take and ``for batch in dataset`` iterates, with the same windows and targets.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, NotSupportedError, ShapeError
from bigmodel.keras.py_dataset import PyDataset

__all__ = ["TimeseriesDataset", "timeseries_dataset_from_array"]


class TimeseriesDataset(PyDataset):
    """Batches of windows ``data[start + p + k * sampling_rate]`` (``k < sequence_length``) for
    the start positions ``p``, with ``targets[start + p]`` when targets are given."""

    def __init__(self, data: np.ndarray, targets: np.ndarray | None, starts: np.ndarray,
                 sequence_length: int, sampling_rate: int, batch_size: int,
                 rng: np.random.RandomState | None):
        super().__init__()
        self.data, self.targets, self.starts = data, targets, starts
        self.offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size, self._rng = batch_size, rng

    def __len__(self) -> int:
        return -(-len(self.starts) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        starts = self.starts[index * self.batch_size:(index + 1) * self.batch_size]
        windows = self.data[starts[:, None] + self.offsets]  # (batch, sequence_length, ...)
        return windows if self.targets is None else (windows, self.targets[starts])

    def on_epoch_end(self) -> None:
        if self._rng is not None:  # a new order each epoch, as tf.data reshuffles
            self._rng.shuffle(self.starts)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"timeseries_dataset_from_array: `{name}` must be an int higher than 0. "
                          f"Received: {name}={value!r}")
    return int(value)


def timeseries_dataset_from_array(data: Any, targets: Any, sequence_length: int,
                                  sequence_stride: int = 1, sampling_rate: int = 1,
                                  batch_size: int | None = 128, shuffle: bool = False,
                                  seed: int | None = None, start_index: int | None = None,
                                  end_index: int | None = None) -> TimeseriesDataset:
    """Sliding windows over ``data`` (Keras 3's arguments and defaults).

    Args:
        data: array-like ``(steps, ...)``.
        targets: array-like with one target per start step (``targets[i]`` for the window
            starting at step ``i``), or None.
        sequence_length: steps per window.
        sequence_stride: steps between consecutive window starts.
        sampling_rate: steps between the elements of a window.
        batch_size: windows per batch (the last batch may be smaller).
        shuffle: shuffle the windows (seeded by ``seed``; a new order each epoch).
        seed: the shuffling seed.
        start_index, end_index: use ``data[start_index:end_index]`` only.

    Returns:
        A :class:`TimeseriesDataset`: batches ``x`` of shape ``(batch, sequence_length, ...)``,
        or ``(x, y)`` with targets.

    Raises:
        ConfigError: a non-positive or too large stride / rate / length, bad indices.
        ShapeError: ``data`` without a steps axis.
        NotSupportedError: ``batch_size=None`` (unbatched samples).
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ShapeError("timeseries_dataset_from_array: `data` must have a steps axis; "
                         "received a scalar")
    sequence_length = _count("sequence_length", sequence_length)
    sequence_stride = _count("sequence_stride", sequence_stride)
    sampling_rate = _count("sampling_rate", sampling_rate)
    for name, value in (("sampling_rate", sampling_rate), ("sequence_stride", sequence_stride)):
        if value >= len(data):
            raise ConfigError(f"timeseries_dataset_from_array: `{name}` must be lower than the "
                              f"length of the data. Received: {name}={value}, for data of "
                              f"length {len(data)}")
    start = 0 if start_index is None else int(start_index)
    end = len(data) if end_index is None else int(end_index)
    if not 0 <= start < len(data) or not start < end <= len(data):
        raise ConfigError(f"timeseries_dataset_from_array: need 0 <= start_index < end_index <= "
                          f"len(data); received start_index={start_index}, "
                          f"end_index={end_index}, len(data)={len(data)}")
    if batch_size is None:
        raise NotSupportedError("timeseries_dataset_from_array(batch_size=None): unbatched "
                                "samples are not supported by bigmodel; give a batch size")
    batch_size = _count("batch_size", batch_size)
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        count = min(count, len(targets) - start)
    starts = np.arange(0, max(count, 0), sequence_stride) + start
    rng = np.random.RandomState(np.random.randint(1_000_000) if seed is None else seed) if (
        shuffle) else None
    if rng is not None:
        rng.shuffle(starts)
    return TimeseriesDataset(data, targets, starts, sequence_length, sampling_rate, batch_size,
                             rng)
