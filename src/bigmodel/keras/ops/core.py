"""Core ``keras.ops``: conversion, casting, shapes, gradients, control flow, scatter and slices.

Control flow (``cond``, ``while_loop``, ``fori_loop``, ``vectorized_map``, ``map``, ``scan``) runs as
plain Python over tensors: it works eagerly and inside ``call``, but not on symbolic inputs of a
functional model (wrap it in a layer's ``call`` there).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bigmodel.errors import InputTypeError, NotSupportedError
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.ops import dtypes
from bigmodel.keras.ops.node import keras_op

_DOCS = "docs/keras.md"


def _no_symbolic(name: str, *values: Any) -> None:
    if any(isinstance(v, KerasTensor) for v in values):
        raise NotSupportedError(f"keras.ops.{name} on a symbolic KerasTensor is not supported: "
                                f"use it inside a layer's call(). See {_DOCS}")


def convert_to_tensor(x: Any, dtype: Any = None, sparse: bool | None = None,
                      ragged: bool | None = None) -> Any:
    """A torch tensor for ``x`` (KerasTensors pass through; cast to ``dtype`` when given).

    Python ints become int32 and floats floatx, as in Keras.

    Raises:
        NotSupportedError: for ``sparse=True`` or ``ragged=True``.
    """
    if sparse or ragged:
        raise NotSupportedError(f"keras.ops.convert_to_tensor(sparse/ragged=True) is not "
                                f"supported: tensors here are dense. See {_DOCS}")
    if isinstance(x, KerasTensor):
        return x if dtype is None else cast(x, dtype)
    return dtypes.convert_to_tensor(x, dtype=dtype)


def convert_to_numpy(x: Any) -> np.ndarray:
    """A NumPy array of ``x`` (detached, on the CPU; bfloat16 becomes float32).

    Raises:
        InputTypeError: for a symbolic KerasTensor (it holds no values).
    """
    if isinstance(x, KerasTensor):
        raise InputTypeError(f"convert_to_numpy: a symbolic KerasTensor holds no values; received "
                             f"{x!r}")
    tensor = dtypes.convert_to_tensor(x).detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


@keras_op()
def cast(x: Any, dtype: Any) -> torch.Tensor:
    """``x`` converted to ``dtype`` (float to int truncates toward zero)."""
    return dtypes.convert_to_tensor(x).to(dtypes.torch_dtype(dtype))


@keras_op()
def saturate_cast(x: Any, dtype: Any) -> torch.Tensor:
    """``x`` clipped to the range of ``dtype``, then cast."""
    target = dtypes.torch_dtype(dtype)
    x = dtypes.convert_to_tensor(x)
    info = torch.iinfo(target) if not target.is_floating_point else torch.finfo(target)
    if x.is_floating_point() or target.is_floating_point:
        x = torch.clamp(x.double(), float(info.min), float(info.max))
    else:
        x = torch.clamp(x.long(), int(info.min), int(info.max))
    return x.to(target)


def dtype(x: Any) -> str:
    """The Keras dtype name of ``x`` (``"float32"``, ``"int32"``, ...)."""
    if isinstance(x, KerasTensor):
        return dtypes.standardize_dtype(x.dtype)
    return dtypes.standardize_dtype(dtypes.convert_to_tensor(x).dtype)


def shape(x: Any) -> tuple:
    """The shape of ``x`` as a tuple (``None`` for unknown sizes of a KerasTensor)."""
    if type(x) is torch.Tensor or isinstance(x, KerasTensor):
        return tuple(x.shape)
    return tuple(dtypes.convert_to_tensor(x).shape)


def ndim(x: Any) -> int:
    """The rank of ``x``."""
    return len(shape(x))


def size(x: Any) -> Any:
    """The number of elements of ``x`` (``None`` when a KerasTensor has an unknown size)."""
    dims = shape(x)
    return None if any(d is None for d in dims) else int(np.prod(dims, dtype=np.int64))


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a tensor of this backend (a ``torch.Tensor``)."""
    return isinstance(x, torch.Tensor)


@keras_op()
def stop_gradient(variable: Any) -> torch.Tensor:
    """``variable`` with no gradient flowing back through it."""
    return dtypes.convert_to_tensor(variable).detach()


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``true_fn()`` if ``pred`` else ``false_fn()`` (eager; not on symbolic inputs)."""
    _no_symbolic("cond", pred)
    return true_fn() if bool(pred) else false_fn()


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any,
               maximum_iterations: int | None = None) -> Any:
    """Apply ``body`` to ``loop_vars`` while ``cond(*loop_vars)`` holds (eager)."""
    single = not isinstance(loop_vars, (list, tuple))
    state = (loop_vars,) if single else tuple(loop_vars)
    _no_symbolic("while_loop", *state)
    steps = 0
    while bool(cond(*state)) and (maximum_iterations is None or steps < maximum_iterations):
        out = body(*state)
        state = (out,) if single else tuple(out)
        steps += 1
    return state[0] if single else type(loop_vars)(state) if isinstance(loop_vars, list) else state


def fori_loop(lower: int, upper: int, body_fun: Callable[[int, Any], Any], init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)`` (eager)."""
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def vectorized_map(function: Callable[[Any], Any], elements: Any) -> Any:
    """``function`` applied to each slice along axis 0 of ``elements``; results stacked.

    Uses ``torch.vmap`` when ``function`` is vmappable, else a Python loop.
    """
    _no_symbolic("vectorized_map", elements)
    try:
        return torch.vmap(function)(elements)
    except Exception:  # noqa: BLE001 - e.g. data-dependent Python control flow: loop instead
        return map(function, elements)


def map(f: Callable[[Any], Any], xs: Any) -> Any:  # noqa: A001 - Keras's name
    """``f`` applied to each slice along axis 0 of ``xs`` (a tensor, or a tuple/list of tensors
    sliced together); the results stacked."""
    _no_symbolic("map", xs)
    if isinstance(xs, (list, tuple)):
        outs = [f(type(xs)(x[i] for x in xs)) for i in range(len(xs[0]))]
    else:
        outs = [f(x) for x in dtypes.convert_to_tensor(xs)]
    if isinstance(outs[0], (list, tuple)):
        return type(outs[0])(torch.stack(list(parts)) for parts in zip(*outs))
    return torch.stack(outs)


def scan(f: Callable[[Any, Any], Any], init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False, unroll: int = 1) -> tuple[Any, Any]:
    """``carry, y = f(carry, x)`` over slices of ``xs``; returns ``(carry, stacked ys)``."""
    steps = length if xs is None else len(xs)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    carry, ys = init, []
    for i in order:
        carry, y = f(carry, None if xs is None else xs[i])
        ys.append(y)
    if reverse:
        ys.reverse()
    return carry, (torch.stack(ys) if ys and isinstance(ys[0], torch.Tensor) else ys)


@keras_op()
def scatter(indices: Any, values: Any, shape: Any) -> torch.Tensor:
    """A zeros tensor of ``shape`` with ``values`` added at ``indices`` (``(N, depth)`` ints).

    Duplicate indices sum, as in Keras.
    """
    values = dtypes.convert_to_tensor(values)
    idx = dtypes.convert_to_tensor(indices, device=values.device).long()
    out = torch.zeros(tuple(int(s) for s in shape), dtype=values.dtype, device=values.device)
    out.index_put_(tuple(idx.reshape(-1, idx.shape[-1]).T), values.reshape(
        -1, *out.shape[idx.shape[-1]:]), accumulate=True)
    return out


@keras_op()
def scatter_update(inputs: Any, indices: Any, updates: Any, reduction: str | None = None) -> Any:
    """A copy of ``inputs`` with ``updates`` written at ``indices`` (``(N, depth)`` ints).

    Args:
        reduction: ``None`` to overwrite, or ``"add"``, ``"mul"``, ``"max"``, ``"min"``.
    """
    inputs = dtypes.convert_to_tensor(inputs)
    idx = dtypes.convert_to_tensor(indices, device=inputs.device).long()
    updates = dtypes.convert_to_tensor(updates, dtype=inputs.dtype, device=inputs.device)
    key = tuple(idx.reshape(-1, idx.shape[-1]).T)
    updates = updates.reshape(-1, *inputs.shape[idx.shape[-1]:])
    out = inputs.clone()
    if reduction is None:
        out[key] = updates
    elif reduction == "add":
        out.index_put_(key, updates, accumulate=True)
    elif reduction in ("mul", "max", "min"):
        current = out[key]
        fn = {"mul": torch.mul, "max": torch.maximum, "min": torch.minimum}[reduction]
        out[key] = fn(current, updates)
    else:
        raise ValueError(f"scatter_update: reduction must be None, 'add', 'mul', 'max' or 'min'; "
                         f"received {reduction!r}")
    return out


@keras_op()
def slice(inputs: Any, start_indices: Any, shape: Any) -> torch.Tensor:  # noqa: A001
    """The block of ``inputs`` of ``shape`` starting at ``start_indices``."""
    inputs = dtypes.convert_to_tensor(inputs)
    key = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return inputs[key]


@keras_op()
def slice_update(inputs: Any, start_indices: Any, updates: Any) -> torch.Tensor:
    """A copy of ``inputs`` with the block at ``start_indices`` replaced by ``updates``."""
    inputs = dtypes.convert_to_tensor(inputs)
    updates = dtypes.convert_to_tensor(updates, dtype=inputs.dtype, device=inputs.device)
    key = tuple(builtins.slice(int(s), int(s) + n) for s, n in zip(start_indices, updates.shape))
    out = inputs.clone()
    out[key] = updates
    return out


def custom_gradient(f: Callable[..., Any]) -> Callable[..., Any]:
    """Not supported: write a ``torch.autograd.Function`` instead."""
    raise NotSupportedError(f"keras.ops.custom_gradient is not supported on bigmodel; write a "
                            f"torch.autograd.Function instead. See {_DOCS}")

