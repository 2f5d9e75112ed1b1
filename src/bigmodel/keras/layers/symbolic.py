"""Symbolic tensors of the functional API (``KerasTensor``, a layer's first symbolic call), Keras
masks attached to tensors, and Keras shapes (checked sizes, lists of shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError

__all__ = ["CallRecord", "KerasTensor", "Shape", "Slot", "checked_shape", "fill_slots",
           "flatten_symbolic", "get_keras_mask", "has_symbolic", "is_shape_list",
           "is_symbolic_shape_unknown", "set_keras_mask", "template_slots"]

Shape = tuple  # (batch, ...) with None for unknown sizes


class KerasTensor:
    """A symbolic tensor of the functional API: a shape, and the layer call that produced it."""

    call_training: bool | None = None  # ``training=`` given explicitly at the symbolic call
    # Other arguments of the symbolic call (``layer(x, y, factor=2.0)``), replayed by the model:
    # ``(number of parents that are the inputs, args, kwargs)`` with a ``Slot`` for each tensor
    # among them (those tensors are the parents after the inputs); ``None`` when there were none.
    call_extra: tuple[int, tuple, dict] | None = None

    def __init__(self, shape: Shape, dtype: str = "float32", layer: Any = None,
                 parents: Sequence[KerasTensor] = (), name: str | None = None,
                 output_index: int | None = None, call: object | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.layer = layer
        self.parents = tuple(parents)
        self.name = name
        # A layer with several outputs (e.g. an RNN with return_state) gives one KerasTensor per
        # output; they share ``call`` (one layer call computes them all) and differ by index.
        self.output_index = output_index
        self.call = call

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class CallRecord:
    """A layer's first symbolic call (inputs and outputs). Copies and pickles of the layer do
    not carry it (it points into one graph), as a copied Keras layer has no inbound nodes."""

    def __init__(self, inputs: Any = None, outputs: Any = None) -> None:
        self.inputs, self.outputs = inputs, outputs

    def __deepcopy__(self, memo: dict) -> CallRecord:
        return CallRecord()

    def __reduce__(self) -> tuple:
        return (CallRecord, ())


def get_keras_mask(x: Any) -> Any:
    """The mask a layer attached to ``x`` (``None`` when there is none); a list for a list input.

    Masks follow Keras 3: a layer that produces one (``Embedding(mask_zero=True)``, ``Masking``)
    attaches a boolean ``(batch, timesteps)`` tensor to its output as ``output._keras_mask``; the
    next layer receives it as ``call(..., mask=...)`` when its ``call`` has a ``mask`` argument.
    """
    if isinstance(x, (list, tuple)):
        masks = [get_keras_mask(t) for t in x]
        return None if all(m is None for m in masks) else masks
    return getattr(x, "_keras_mask", None) if isinstance(x, torch.Tensor) else None


def set_keras_mask(x: Any, mask: Any) -> None:
    """Attach ``mask`` to tensor ``x`` (element-wise when both are lists); ``None`` detaches."""
    if isinstance(x, (list, tuple)):
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(x)
        for tensor, item in zip(x, masks):
            set_keras_mask(tensor, item)
    elif isinstance(x, torch.Tensor):
        x._keras_mask = mask


def is_shape_list(shape: Any) -> bool:
    """True for a list of shapes (several tensors), False for one shape (a tuple of sizes)."""
    return (isinstance(shape, (list, tuple)) and len(shape) > 0
            and isinstance(shape[0], (list, tuple)))


def checked_shape(shape: Any, argument: str, where: str, batch: bool = False) -> tuple:
    """``shape`` as a tuple after checking each size is a positive integer or ``None``.

    Args:
        shape: the sizes as given (``input_shape=(28, 28)``); an int means a 1-tuple.
        argument: the argument's name for the message (``"input_shape"``).
        where: who received it (``"Layer 'dense' (Dense)"``).
        batch: ``shape`` starts with the batch axis (``batch_input_shape``), which may be ``None``.

    Raises:
        ConfigError: not a sequence of sizes, or a size that is negative, zero or not an integer.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise ConfigError(f"{where}: {argument} must be a tuple of sizes; received "
                          f"{argument}={shape!r} ({type(shape).__name__})")
    for size in shape:
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"{where}: every size in {argument} must be a positive integer or "
                              f"None{' (the batch axis)' if batch else ''}; received "
                              f"{argument}={tuple(shape)!r}")
    return tuple(None if size is None else int(size) for size in shape)


class Slot:
    """Where the i-th symbolic input goes in an op's arguments."""

    def __init__(self, index: int):
        self.index = index


def has_symbolic(value: Any) -> bool:
    if isinstance(value, KerasTensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(has_symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(has_symbolic(v) for v in value.values())
    return False


def template_slots(value: Any, found: list[KerasTensor]) -> Any:
    """Replace each KerasTensor in nested args by a ``Slot`` and collect them in ``found``."""
    if isinstance(value, KerasTensor):
        found.append(value)
        return Slot(len(found) - 1)
    if isinstance(value, list):
        return [template_slots(v, found) for v in value]
    if isinstance(value, tuple):
        return tuple(template_slots(v, found) for v in value)
    if isinstance(value, dict):
        return {k: template_slots(v, found) for k, v in value.items()}
    return value


def fill_slots(value: Any, tensors: list[Any]) -> Any:
    if isinstance(value, Slot):
        return tensors[value.index]
    if isinstance(value, list):
        return [fill_slots(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(fill_slots(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: fill_slots(v, tensors) for k, v in value.items()}
    return value


def flatten_symbolic(args: Any) -> list[KerasTensor]:
    if isinstance(args, KerasTensor):
        return [args]
    if isinstance(args, (list, tuple)):
        return [t for a in args for t in flatten_symbolic(a)]
    return []


def is_symbolic_shape_unknown(shape: Any) -> bool:
    return not isinstance(shape, (list, tuple)) or len(shape) == 0
