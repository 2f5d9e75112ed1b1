"""How ``keras.Model`` takes its data: arrays converted once (not per batch) with length, emptiness
and label-range checks; ``validation_data`` tuples; a first batch peeked from a Dataset,
DataLoader or iterable to build the model and resolve metrics before training.

A mixin of :class:`bigmodel.keras.model.Model`; it uses the model's ``loss``, ``built``,
``_standardize_input``, ``_build_on`` and ``compute_output_shape``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import DataError, InputTypeError, describe
from bigmodel.keras import losses as losses_mod


def _is_array_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, list))


def _as_numpy(value: Any, what: str) -> np.ndarray | torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InputTypeError(f"{what} must be a NumPy array or a torch tensor; received "
                             f"{type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise InputTypeError(f"{what} must hold numbers; received dtype {value.dtype}")
    return value

class ModelDataMixin:
    """Input conversion and checks of ``fit``/``evaluate``/``predict`` (see the module doc)."""

    def _standardize_data(self, x: Any, y: Any, sample_weight: Any, what: str) -> tuple:
        """Arrays converted once (not per batch); x/y lengths and label sanity checked."""
        x = _as_numpy(x, f"{what}: x")
        if y is None:
            raise DataError(f"{what}: y (the targets) is missing; pass labels along with x")
        y = _as_numpy(y, f"{what}: y")
        if len(x) != len(y):
            raise DataError(f"{what}: x and y must have the same number of samples; received "
                            f"x with {len(x)} samples ({describe(x)}) and y with {len(y)} "
                            f"({describe(y)})")
        if len(x) == 0:
            raise DataError(f"{what}: received empty data (0 samples)")
        x = self._standardize_input(x)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32)
            if len(sample_weight) != len(x):
                raise DataError(f"{what}: sample_weight has {len(sample_weight)} entries for "
                                f"{len(x)} samples")
        y = torch.as_tensor(y)
        if self.loss is not None and isinstance(self.loss, losses_mod.SparseCategoricalCrossentropy):
            self._check_labels(y, x, what)
        return x, y, sample_weight

    def _check_labels(self, y: torch.Tensor, x: torch.Tensor, what: str) -> None:
        if not self.built:
            self._build_on(x[:1])
            self.built = True
        classes = self.compute_output_shape((None, *x.shape[1:]))[-1]
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise DataError(f"{what}: {self.loss.name} needs integer class labels; received "
                            f"non-integer values ({describe(y)})")
        low, high = int(y.min()), int(y.max())
        if classes is not None and (low < 0 or high >= classes):
            raise DataError(f"{what}: labels must lie in [0, {classes - 1}] for {self.loss.name} "
                            f"with a {classes}-unit output layer; received labels in "
                            f"[{low}, {high}]")

    def _validation_tuple(self, data: Any) -> Any:
        if isinstance(data, (tuple, list)) and len(data) in (2, 3) and _is_array_like(data[0]):
            x_val, y_val, *rest = data
            x_val, y_val, w_val = self._standardize_data(x_val, y_val, rest[0] if rest else None,
                                                         "validation_data")
            return (x_val, y_val) if w_val is None else (x_val, y_val, w_val)
        return data

    def _peek(self, data: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
        """First batch of a Dataset/DataLoader/iterable, to build the model and resolve metrics."""
        if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__getitem__"):
            first = data[0]
            xs, ys = first[0], first[1] if len(first) > 1 else None
            xs = torch.as_tensor(np.asarray(xs))[None]
            ys = torch.as_tensor(np.asarray(ys))[None] if ys is not None else None
            return data, xs, ys
        if isinstance(data, torch.utils.data.DataLoader):
            first = next(iter(data))
            return data, torch.as_tensor(first[0]), torch.as_tensor(first[1])
        if hasattr(data, "__iter__") or hasattr(data, "__next__"):
            iterator = iter(data)
            try:
                first = next(iterator)
            except StopIteration:
                raise DataError("fit: the data iterable is empty") from None
            import itertools

            chained = itertools.chain([first], iterator)
            return chained, torch.as_tensor(np.asarray(first[0])), torch.as_tensor(
                np.asarray(first[1]))
        raise InputTypeError(f"fit: cannot use x of type {type(data).__name__}; expected arrays, "
                             "a Dataset, a DataLoader or an iterable of batches")

__all__ = ["ModelDataMixin", "_as_numpy", "_is_array_like"]
