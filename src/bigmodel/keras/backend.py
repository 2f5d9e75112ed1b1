"""``keras.backend``: the backend utilities Keras 3 keeps, plus the tf.keras helpers real programs
still call (``get_value``, ``set_value``, ``int_shape``, ``count_params``).

The backend is PyTorch: ``backend()`` is ``"torch"``, tensors are ``torch.Tensor``.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import torch

from bigmodel.errors import InputTypeError
from bigmodel.keras import config
from bigmodel.keras.config import (  # noqa: F401 - re-exported, as in Keras
    backend,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)
from bigmodel.keras.layers.layer_registry import reset_names
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.ops.core import convert_to_numpy, is_tensor  # noqa: F401
from bigmodel.keras.ops.dtypes import result_type, standardize_dtype  # noqa: F401

_UIDS: dict[str, int] = {}


def clear_session(free_memory: bool = True) -> None:
    """Reset Keras's global state: automatic layer names start again (``dense``, ``dense_1``...);
    with ``free_memory``, collect garbage and release cached accelerator memory."""
    reset_names()
    _UIDS.clear()
    if free_memory:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def get_uid(prefix: str = "") -> int:
    """1, 2, 3, ... for successive calls with the same ``prefix``."""
    _UIDS[prefix] = _UIDS.get(prefix, 0) + 1
    return _UIDS[prefix]


def is_keras_tensor(x: Any) -> bool:
    """Whether ``x`` is a symbolic KerasTensor (a functional-model input or intermediate)."""
    return isinstance(x, KerasTensor)


def is_float_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is a floating-point dtype."""
    return "float" in standardize_dtype(dtype)


def is_int_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is a (signed or unsigned) integer dtype."""
    return "int" in standardize_dtype(dtype)


def get_value(x: Any) -> np.ndarray:
    """The value of a tensor, parameter or array as NumPy (tf.keras's ``K.get_value``).

    Raises:
        InputTypeError: for a symbolic KerasTensor.
    """
    if hasattr(x, "numpy") and not isinstance(x, torch.Tensor) and not is_keras_tensor(x):
        return np.asarray(x.numpy())
    return convert_to_numpy(x)


def set_value(x: Any, value: Any) -> None:
    """Write ``value`` into the tensor/parameter ``x`` in place (tf.keras's ``K.set_value``).

    Also sets an optimizer hyper-parameter given as ``(optimizer, "learning_rate")``-style
    attributes that hold plain floats: ``set_value(model.optimizer.learning_rate, 0.1)`` works
    when ``learning_rate`` is a tensor; for a float attribute assign it directly.

    Raises:
        InputTypeError: when ``x`` is not a tensor (a float cannot be changed in place).
    """
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"set_value: expected a tensor or parameter to write into; received "
                             f"{type(x).__name__} (assign a Python attribute directly instead)")
    with torch.no_grad():
        x.copy_(torch.as_tensor(np.asarray(value), dtype=x.dtype).reshape(x.shape))


def int_shape(x: Any) -> tuple:
    """The shape of ``x`` as a tuple of ints (``None`` for unknown sizes of a KerasTensor)."""
    if is_keras_tensor(x):
        return tuple(x.shape)
    return tuple(int(s) for s in getattr(x, "shape", np.shape(x)))


def count_params(x: Any) -> int:
    """The number of scalars in a tensor/array (or of a layer's weights)."""
    if hasattr(x, "count_params"):
        return int(x.count_params())
    return int(np.prod(int_shape(x), dtype=np.int64))


def dtype(x: Any) -> str:
    """The Keras dtype name of ``x``."""
    return standardize_dtype(x.dtype)


def __getattr__(name: str) -> object:
    raise config.unsupported_attribute("keras.backend", name)


__all__ = [
    "backend", "clear_session", "count_params", "dtype", "epsilon", "floatx", "get_uid",
    "get_value", "image_data_format", "int_shape", "is_float_dtype", "is_int_dtype",
    "is_keras_tensor", "is_tensor", "result_type", "set_epsilon", "set_floatx",
    "set_image_data_format", "set_value", "standardize_dtype", "config",
]
