"""How ``keras.Model`` takes its data: arrays converted once (not per batch) with length, emptiness
and label-range checks; ``validation_data`` tuples; a first batch peeked from a Dataset,
DataLoader or iterable to build the model and resolve metrics before training.

A mixin of :class:`bigmodel.keras.model.Model`; it uses the model's ``loss``, ``built``,
``_standardize_input``, ``_build_on`` and ``compute_output_shape``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from bigmodel.data.batching import tree_map
from bigmodel.errors import ConfigError, DataError, InputTypeError, describe
from bigmodel.keras import losses as losses_mod
from bigmodel.keras.layers.symbolic import is_shape_list
from bigmodel.keras.model_inputs import (
    check_sample_counts,
    is_structure,
    standardize_inputs,
    structured_targets,
    structured_weights,
)
from bigmodel.keras.py_dataset import PyDataset
from bigmodel.keras.string_inputs import (
    StringIdBatches,
    has_strings,
    is_string_array,
    string_batches,
    string_ids,
)


def is_array_like(value: Any) -> bool:
    """Arrays given to fit/evaluate/predict: an array, a list of numbers or a list/tuple/dict of
    arrays (several inputs), as opposed to a Dataset, DataLoader or iterable of batches."""
    return isinstance(value, (np.ndarray, torch.Tensor, list)) or is_structure(value)


def _as_numpy(value: Any, what: str) -> np.ndarray | torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InputTypeError(f"{what} must be a NumPy array or a torch tensor; received "
                             f"{type(value).__name__}")
    if is_string_array(value):  # strings travel as interned ids to the string layers
        return string_ids(value, what)
    if value.dtype.kind not in "biuf":
        raise InputTypeError(f"{what} must hold numbers; received dtype {value.dtype}")
    return value

# fit/evaluate/predict arguments that must be integers: the smallest value each accepts, and
# whether None (Keras's "not given") is allowed.
_INTEGER_ARGUMENTS = {"epochs": (0, False), "initial_epoch": (0, False), "batch_size": (1, True),
                      "steps_per_epoch": (1, True), "validation_steps": (1, True),
                      "validation_batch_size": (1, True), "validation_freq": (1, False),
                      "steps": (1, True)}


def check_arguments(where: str, **arguments: Any) -> None:
    """Check the types and ranges of ``fit``/``evaluate``/``predict`` keyword arguments.

    Args:
        where: the method, for the message (``"fit"``).
        arguments: any of ``epochs``, ``initial_epoch``, ``batch_size``, ``steps_per_epoch``,
            ``validation_steps``, ``validation_batch_size``, ``validation_freq``, ``steps``,
            ``verbose`` and ``validation_split``.

    Raises:
        InputTypeError: a value of the wrong type (``epochs='2'``), naming the argument.
        ConfigError: a value out of range (``batch_size=0``, ``verbose=3``, ``validation_split=1.5``).
    """
    for name, value in arguments.items():
        if name == "verbose":
            if not (isinstance(value, (str, numbers.Integral)) and value in ("auto", 0, 1, 2)):
                raise ConfigError(f"{where}: verbose must be 'auto', 0, 1 or 2; received "
                                  f"verbose={value!r}")
        elif name == "validation_split":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InputTypeError(f"{where}: validation_split must be a number in [0, 1); "
                                     f"received validation_split={value!r} "
                                     f"({type(value).__name__})")
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{where}: validation_split must be in [0, 1); received "
                                  f"validation_split={value!r}")
        else:
            minimum, optional = _INTEGER_ARGUMENTS[name]
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InputTypeError(f"{where}: {name} must be an integer >= {minimum}"
                                     f"{' or None' if optional else ''}; received {name}={value!r} "
                                     f"({type(value).__name__})")
            if value < minimum:
                raise ConfigError(f"{where}: {name} must be >= {minimum}; received {name}={value!r}")


def _as_tensors(value: Any) -> Any:
    """An array, or a list/tuple/dict of arrays, as tensors of the same structure."""
    if isinstance(value, Mapping):
        return {key: _as_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and is_structure(value):
        return [_as_tensors(item) for item in value]
    if isinstance(value, np.ndarray) and is_string_array(value):
        return string_ids(value)
    return torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value


class ModelDataMixin:
    """Input conversion and checks of ``fit``/``evaluate``/``predict`` (see the module doc)."""

    def _standardize_data(self, x: Any, y: Any, sample_weight: Any, what: str,
                          targets: bool = True) -> tuple:
        """Arrays converted once (not per batch), in the model's input and output order (see
        keras/model_inputs.py); every array's number of samples and the labels checked.

        Raises:
            DataError: missing ``y``, different numbers of samples (each array named), no samples,
                labels out of range, a dict key that names no input/output.
            ShapeError: a list of inputs or targets of the wrong length.
        """
        if y is None and targets:
            raise DataError(f"{what}: y (the targets) is missing; pass labels along with x")
        if not is_structure(x):
            x = _as_numpy(x, f"{what}: x")
            if len(x) == 0:
                raise DataError(f"{what}: received empty data (0 samples)")
        x = standardize_inputs(self, x, what)
        y = None if y is None else structured_targets(self, y, what)
        sample_weight = structured_weights(self, sample_weight, what)
        check_sample_counts(self, x, y, sample_weight, what)
        if self.loss is not None and isinstance(self.loss, losses_mod.SparseCategoricalCrossentropy) \
                and isinstance(x, torch.Tensor) and y is not None:
            self._check_labels(y, x, what)
        return x, y, sample_weight

    def _sample_shape(self, x_sample: Any) -> Any:
        """The input shape (batch dimension ``None``) of a sample batch; a list for several
        inputs."""
        x = standardize_inputs(self, x_sample)
        if isinstance(x, torch.Tensor):
            return (None, *x.shape[1:])
        values = x.values() if isinstance(x, dict) else x
        return [(None, *t.shape[1:]) for t in values]

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

    def _check_class_weight(self, class_weight: Any, x_sample: Any, sample_weight: Any) -> None:
        """Keras 3's ``class_weight`` rules, plus: every class named must be one the model outputs.

        Raises:
            ConfigError: not a dict; a key that is not an integer class index; given together with
                ``sample_weight``; a multi-output model; a class outside ``[0, classes)`` for the
                output layer's units (2 classes for one unit).
        """
        if class_weight is None:
            return
        if not isinstance(class_weight, Mapping):
            raise ConfigError(f"fit: class_weight must be a dict {{class index: weight}}; received "
                              f"class_weight={class_weight!r} ({type(class_weight).__name__})")
        if sample_weight is not None:
            raise ConfigError("fit: class_weight and sample_weight cannot be given at the same time")
        keys = []
        for key in class_weight:
            if isinstance(key, bool) or not isinstance(key, (numbers.Integral, str)) or (
                    isinstance(key, str) and not key.strip().lstrip("-").isdigit()):
                raise ConfigError(f"fit: class_weight keys must be integer class indices; received "
                                  f"the key {key!r} ({type(key).__name__})")
            keys.append(int(key))
        shape = self.compute_output_shape(self._sample_shape(x_sample))
        if is_shape_list(shape):
            raise ConfigError("fit: class_weight is only supported for models with a single output")
        units = shape[-1] if len(shape) > 1 else None
        classes = None if units is None else (2 if units == 1 else units)
        wrong = sorted(k for k in keys if k < 0 or (classes is not None and k >= classes))
        if wrong:
            raise ConfigError(f"fit: class_weight names classes {wrong} that the model does not "
                              f"have: its output has {units} unit(s), so classes are 0.."
                              f"{(classes or 1) - 1}; received class_weight={dict(class_weight)!r}")

    def _validation_tuple(self, data: Any) -> Any:
        if isinstance(data, (tuple, list)) and len(data) in (2, 3) and is_array_like(data[0]):
            x_val, y_val, *rest = data
            x_val, y_val, w_val = self._standardize_data(x_val, y_val, rest[0] if rest else None,
                                                         "validation_data")
            return (x_val, y_val) if w_val is None else (x_val, y_val, w_val)
        return string_batches(data)  # a text dataset: strings as interned ids

    def _peek(self, data: Any) -> tuple[Any, Any, Any]:
        """First batch of a Dataset/DataLoader/iterable, to build the model and resolve metrics
        (inputs and targets may be lists/dicts of arrays, for several inputs or outputs)."""
        if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__getitem__"):
            first = data[0]
            xs, ys = first[0], first[1] if len(first) > 1 else None
            xs = tree_map(lambda t: t[None], _as_tensors(xs))
            ys = tree_map(lambda t: t[None], _as_tensors(ys)) if ys is not None else None
            return data, xs, ys
        if isinstance(data, torch.utils.data.DataLoader):
            first = next(iter(data))
            return data, _as_tensors(first[0]), _as_tensors(first[1])
        if isinstance(data, PyDataset):  # re-iterable: one pass per epoch, so kept as it is
            if len(data) == 0:
                raise DataError(f"{type(data).__name__} (a PyDataset) has no batches (len 0)")
            first = data[0]
            if has_strings(first):  # text batches: strings travel as interned ids
                data = StringIdBatches(data)
                first = data[0]
            if not isinstance(first, tuple):  # inputs alone (predict)
                return data, _as_tensors(first), None
            ys = first[1] if len(first) > 1 else None
            return data, _as_tensors(first[0]), _as_tensors(ys) if ys is not None else None
        if hasattr(data, "__iter__") or hasattr(data, "__next__"):
            iterator = iter(data)
            try:
                first = next(iterator)
            except StopIteration:
                raise DataError("fit: the data iterable is empty") from None
            import itertools

            chained = itertools.chain([first], iterator)
            return chained, _as_tensors(first[0]), _as_tensors(first[1])
        raise InputTypeError(f"fit: cannot use x of type {type(data).__name__}; expected arrays, "
                             "a Dataset, a DataLoader or an iterable of batches")

__all__ = ["ModelDataMixin", "_as_numpy", "is_array_like", "check_arguments"]
