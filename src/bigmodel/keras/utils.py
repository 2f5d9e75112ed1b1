"""``keras.utils``: small helpers (``to_categorical``, ``pad_sequences``, ``PyDataset``, ...)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError
from bigmodel.keras import bounding_boxes as _bounding_boxes_module
from bigmodel.keras.audio_dataset import audio_dataset_from_directory  # noqa: F401 - Keras name
from bigmodel.keras.backend import clear_session, is_keras_tensor, standardize_dtype  # noqa: F401
from bigmodel.keras.config import (  # noqa: F401 - keras.utils names too, as in Keras 3
    disable_interactive_logging,
    enable_interactive_logging,
    is_interactive_logging_enabled,
)
from bigmodel.keras.config_container import Config  # noqa: F401 - Keras name
from bigmodel.keras.dataset_split import split_dataset  # noqa: F401 - Keras name
from bigmodel.keras.image_dataset import image_dataset_from_directory  # noqa: F401 - Keras name
from bigmodel.keras.image_utils import (  # noqa: F401 - Keras names
    array_to_img,
    img_to_array,
    load_img,
    save_img,
)
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.model_plot import model_to_dot, plot_model  # noqa: F401 - Keras names
from bigmodel.keras.ops.nn import normalize as _normalize_tensor
from bigmodel.keras.progbar import Progbar  # noqa: F401 - Keras name
from bigmodel.keras.py_dataset import PyDataset
from bigmodel.keras.saving import (  # noqa: F401 - keras.utils names too, as in Keras 3
    CustomObjectScope,
    custom_object_scope,
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)
from bigmodel.keras.text_dataset import text_dataset_from_directory  # noqa: F401 - Keras name
from bigmodel.keras.timeseries import timeseries_dataset_from_array  # noqa: F401 - Keras name
from bigmodel.keras.trainer_steps import unpack_x_y_sample_weight  # noqa: F401 - Keras name
from bigmodel.keras.unsupported import namespace, unsupported_attribute
from bigmodel.keras.utils_files import get_file  # noqa: F401 - Keras name


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer labels: shape ``(..., num_classes)``, float32."""
    labels = np.asarray(x)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"to_categorical needs integer labels; received dtype {labels.dtype}")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"to_categorical: labels must lie in [0, {num_classes - 1}]; received "
                        f"[{labels.min()}, {labels.max()}]")
    return np.eye(num_classes, dtype=np.float32)[labels]


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (as ``keras.utils.set_random_seed``)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pad_sequences(sequences: Any, maxlen: int | None = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre", value: Any = 0.0) -> np.ndarray:
    """Pad (and cut) sequences to one length, as ``keras.utils.pad_sequences``.

    Args:
        sequences: a list (or array) of sequences; each a list/array of numbers (or of equally
            shaped arrays: the result then has their shape after the time axis).
        maxlen: the length to pad to; default the longest sequence's.
        dtype: the result's dtype (``object`` or a string dtype for strings).
        padding: ``"pre"`` or ``"post"``: where the padding goes.
        truncating: ``"pre"`` or ``"post"``: which end of a longer sequence is cut off.
        value: the padding value.

    Returns:
        Array of shape ``(len(sequences), maxlen, *sample_shape)``.

    Raises:
        InputTypeError: ``sequences`` (or one of them) has no length.
        ConfigError: ``padding`` / ``truncating`` not "pre"/"post", a negative ``maxlen``, or a
            string ``value`` for a numeric ``dtype``.
        ShapeError: sequences whose items differ in shape.
    """
    for name, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ConfigError(f"pad_sequences: {name} must be 'pre' or 'post'; received "
                              f"{name}={choice!r}")
    if not hasattr(sequences, "__len__"):
        raise InputTypeError(f"pad_sequences: sequences must be a list of sequences; received "
                             f"{type(sequences).__name__}")
    lengths, sample_shape = [], ()
    found_shape = False
    for position, seq in enumerate(sequences):
        if not hasattr(seq, "__len__"):
            raise InputTypeError(f"pad_sequences: sequences[{position}] has no length; received "
                                 f"{seq!r}")
        lengths.append(len(seq))
        if not found_shape and len(seq):  # items' shape: from the first non-empty sequence
            sample_shape, found_shape = np.asarray(seq).shape[1:], True
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ConfigError(f"pad_sequences: maxlen must be an integer >= 0 or None; received "
                          f"maxlen={maxlen!r}")
    maxlen = int(maxlen)
    string_dtype = np.issubdtype(np.dtype(dtype), np.str_)
    if isinstance(value, str) and np.dtype(dtype) != object and not string_dtype:
        raise ConfigError(f"pad_sequences: value={value!r} is a string but dtype={dtype!r} is not; "
                          "use dtype=object or a string dtype")
    out = np.full((len(lengths), maxlen, *sample_shape), value, dtype=dtype)
    for position, seq in enumerate(sequences):
        if not len(seq) or not maxlen:
            continue
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ShapeError(f"pad_sequences: sequences[{position}] has items of shape "
                             f"{kept.shape[1:]}, the others {tuple(sample_shape)}")
        if padding == "post":
            out[position, :len(kept)] = kept
        else:
            out[position, maxlen - len(kept):] = kept
    return out


Sequence = PyDataset  # Keras 3's old name of the same class


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """The batch ``fit`` takes: ``x`` alone (a list or tuple of inputs as ``(x,)``), ``(x, y)``
    or ``(x, y, sample_weight)`` (the inverse of :func:`unpack_x_y_sample_weight`)."""
    if y is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def normalize(x: Any, axis: int | None = -1, order: int = 2) -> Any:
    """``x`` divided by its ``order``-norm along ``axis``, as ``keras.utils.normalize``.

    A NumPy array gives a NumPy array (a zero norm divides by 1, ``axis=None`` means -1); a
    tensor gives ``keras.ops.normalize(x, axis, order)``.

    Raises:
        ValueError: ``order`` is not an int >= 1 (tensors).
    """
    if isinstance(x, np.ndarray):
        norm = np.atleast_1d(np.linalg.norm(x, order, axis))
        norm = np.where(norm == 0, 1, norm)
        return x / np.expand_dims(norm, -1 if axis is None else axis)
    return _normalize_tensor(x, axis=axis, order=order)

def get_source_inputs(tensor: Any) -> list[Any]:
    """The ``keras.Input`` tensors a symbolic tensor is computed from, in the order a walk
    back through its graph meets them (a tensor with no parents gives ``[tensor]``).

    Raises:
        InputTypeError: ``tensor`` is not a KerasTensor.
    """
    if not isinstance(tensor, KerasTensor):
        raise InputTypeError(f"get_source_inputs: tensor must be a KerasTensor (a functional "
                             f"model's symbolic tensor); received {type(tensor).__name__}")
    found: list[Any] = []
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if not node.parents:
            found.append(node)
        stack.extend(reversed(node.parents))
    return found


# keras.utils.bounding_boxes: its own module, importable as bigmodel.keras.utils.bounding_boxes too
bounding_boxes = _bounding_boxes_module
sys.modules.setdefault(__name__ + ".bounding_boxes", _bounding_boxes_module)

# Keras submodules bigmodel does not implement: every name in them raises, naming itself.
legacy = namespace("keras.utils.legacy")

__all__ = ["Config", "Progbar", "PyDataset", "array_to_img", "audio_dataset_from_directory",
           "get_source_inputs", "img_to_array", "load_img", "model_to_dot", "pad_sequences",
           "plot_model", "save_img",
           "set_random_seed", "split_dataset", "to_categorical"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.utils", name)
