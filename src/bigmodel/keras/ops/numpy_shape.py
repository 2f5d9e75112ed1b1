"""Creating tensors, changing their shape, joining, splitting and indexing (``keras.ops``).

Creation ops default to floatx (``zeros``, ``ones``, ``eye``, ``linspace``) or int32 (``arange`` of
ints), as in Keras 3.
"""

from __future__ import annotations

import builtins
from typing import Any

import torch

from bigmodel.keras import config
from bigmodel.keras.ops.dtypes import (
    convert_to_tensor,
    dtype_of,
    result_type,
    to_tensors,
    torch_dtype,
)
from bigmodel.keras.ops.node import keras_op


def _float_or(dtype: Any) -> torch.dtype:
    return torch_dtype(dtype or config.floatx())


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


# ------------------------------------------------------------------------------------ creation
@keras_op()
def zeros(shape: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of zeros (floatx unless ``dtype``)."""
    return torch.zeros(_shape(shape), dtype=_float_or(dtype))


@keras_op()
def ones(shape: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of ones (floatx unless ``dtype``)."""
    return torch.ones(_shape(shape), dtype=_float_or(dtype))


@keras_op()
def empty(shape: Any, dtype: Any = None) -> torch.Tensor:
    """An uninitialized tensor (floatx unless ``dtype``)."""
    return torch.empty(_shape(shape), dtype=_float_or(dtype))


@keras_op()
def full(shape: Any, fill_value: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor filled with ``fill_value`` (floatx unless ``dtype``, as Keras)."""
    value = convert_to_tensor(fill_value, dtype=dtype or config.floatx())
    return torch.broadcast_to(value, _shape(shape)).clone()


def _like(x: Any, dtype: Any) -> torch.Tensor:
    x = convert_to_tensor(x)
    return x, (torch_dtype(dtype) or x.dtype)


@keras_op()
def zeros_like(x: Any, dtype: Any = None) -> torch.Tensor:
    """Zeros of ``x``'s shape (and dtype unless ``dtype``)."""
    x, d = _like(x, dtype)
    return torch.zeros(x.shape, dtype=d, device=x.device)


@keras_op()
def ones_like(x: Any, dtype: Any = None) -> torch.Tensor:
    """Ones of ``x``'s shape (and dtype unless ``dtype``)."""
    x, d = _like(x, dtype)
    return torch.ones(x.shape, dtype=d, device=x.device)


@keras_op()
def empty_like(x: Any, dtype: Any = None) -> torch.Tensor:
    """An uninitialized tensor of ``x``'s shape (and dtype unless ``dtype``)."""
    x, d = _like(x, dtype)
    return torch.empty(x.shape, dtype=d, device=x.device)


@keras_op()
def full_like(x: Any, fill_value: Any, dtype: Any = None) -> torch.Tensor:
    """``fill_value`` in ``x``'s shape (and dtype unless ``dtype``)."""
    x, d = _like(x, dtype)
    return torch.full(x.shape, 0, dtype=d, device=x.device) + convert_to_tensor(
        fill_value, dtype=d, device=x.device)


@keras_op()
def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> torch.Tensor:
    """Evenly spaced values in ``[start, stop)`` (int32 for ints, floatx if any is a float)."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    if dtype is None and type(start) is int and type(stop) is int and type(step) is int:
        return torch.arange(start, stop, step, dtype=torch.int32)  # the usual case, directly
    values = [v.item() if isinstance(v, torch.Tensor) else v for v in (start, stop, step)]
    out_dtype = dtype or result_type(*(dtype_of(v) for v in values))
    return torch.arange(*values, dtype=torch_dtype(out_dtype))


@keras_op()
def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop`` (floatx unless ``dtype``)."""
    start_t, stop_t = to_tensors(start, stop, dtype=torch.float64)
    div = (num - 1) if endpoint else num
    step = (stop_t - start_t) / builtins.max(div, 1)
    steps = torch.arange(num, dtype=torch.float64).reshape(-1, *([1] * start_t.dim()))
    out = start_t + steps * step
    if endpoint and num > 1:
        out[-1] = stop_t
    out = torch.movedim(out, 0, axis).to(_float_or(dtype))
    return (out, step.to(out.dtype)) if retstep else out


@keras_op()
def logspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: float = 10,
             dtype: Any = None, axis: int = 0) -> torch.Tensor:
    """``base ** linspace(start, stop, num)``."""
    exponents = linspace(start, stop, num, endpoint, dtype="float64", axis=axis)
    return torch.pow(torch.as_tensor(base, dtype=torch.float64), exponents).to(_float_or(dtype))


@keras_op()
def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> torch.Tensor:  # noqa: N803
    """``N x M`` matrix with ones on the ``k``-th diagonal."""
    M = N if M is None else M  # noqa: N806
    return torch.ones(N, M, dtype=_float_or(dtype)).tril(k).triu(k)


@keras_op()
def identity(n: int, dtype: Any = None) -> torch.Tensor:
    """``n x n`` identity matrix."""
    return torch.eye(n, dtype=_float_or(dtype))


@keras_op()
def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> torch.Tensor:  # noqa: N803
    """``N x M`` matrix with ones at and below the ``k``-th diagonal."""
    M = N if M is None else M  # noqa: N806
    return torch.ones(N, M, dtype=_float_or(dtype)).tril(k)


@keras_op()
def array(x: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of ``x`` (as :func:`convert_to_tensor`)."""
    return convert_to_tensor(x, dtype=dtype)


@keras_op()
def meshgrid(*x: Any, indexing: str = "xy") -> list[torch.Tensor]:
    """Coordinate grids from 1-D tensors (``"xy"`` Cartesian or ``"ij"`` matrix indexing)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij'; received {indexing!r}")
    return list(torch.meshgrid(*[convert_to_tensor(v) for v in x], indexing=indexing))


# ------------------------------------------------------------------------------------ shape
@keras_op()
def reshape(x: Any, newshape: Any) -> torch.Tensor:
    """``x`` with shape ``newshape`` (one entry may be -1, or ``None`` as a symbolic batch size
    from ``ops.shape`` is)."""
    if not isinstance(newshape, int):
        newshape = [-1 if s is None else s for s in newshape]
    return torch.reshape(convert_to_tensor(x), _shape(newshape))


@keras_op()
def transpose(x: Any, axes: Any = None) -> torch.Tensor:
    """Axes permuted by ``axes`` (reversed for ``None``)."""
    x = convert_to_tensor(x)
    return x.permute(*(reversed(range(x.dim())) if axes is None else axes))


@keras_op()
def expand_dims(x: Any, axis: Any) -> torch.Tensor:
    """``x`` with size-1 axes inserted at ``axis`` (an int or a tuple)."""
    x = convert_to_tensor(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


@keras_op()
def squeeze(x: Any, axis: Any = None) -> torch.Tensor:
    """``x`` without size-1 axes (only those in ``axis`` when given).

    Raises:
        ValueError: when an axis in ``axis`` is not of size 1.
    """
    x = convert_to_tensor(x)
    if axis is None:
        return torch.squeeze(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1 "
                             f"(shape {tuple(x.shape)})")
    return torch.squeeze(x, dim=axes)


@keras_op()
def ravel(x: Any) -> torch.Tensor:
    """``x`` flattened to 1-D."""
    return convert_to_tensor(x).reshape(-1)


@keras_op()
def moveaxis(x: Any, source: Any, destination: Any) -> torch.Tensor:
    """Axes ``source`` moved to ``destination``."""
    return torch.movedim(convert_to_tensor(x), source, destination)


@keras_op()
def swapaxes(x: Any, axis1: int, axis2: int) -> torch.Tensor:
    """Axes ``axis1`` and ``axis2`` exchanged."""
    return torch.swapaxes(convert_to_tensor(x), axis1, axis2)


@keras_op()
def broadcast_to(x: Any, shape: Any) -> torch.Tensor:
    """``x`` broadcast to ``shape``."""
    return torch.broadcast_to(convert_to_tensor(x), _shape(shape)).clone()


@keras_op()
def flip(x: Any, axis: Any = None) -> torch.Tensor:
    """``x`` reversed along ``axis`` (all axes for ``None``)."""
    x = convert_to_tensor(x)
    axes = range(x.dim()) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    return torch.flip(x, dims=tuple(axes))


@keras_op()
def roll(x: Any, shift: Any, axis: Any = None) -> torch.Tensor:
    """``x`` rolled by ``shift`` along ``axis`` (of the flattened tensor for ``None``)."""
    x = convert_to_tensor(x)
    if axis is None:
        return torch.roll(x.reshape(-1), shift).reshape(x.shape)
    return torch.roll(x, shift, dims=axis)


@keras_op()
def tile(x: Any, repeats: Any) -> torch.Tensor:
    """``x`` repeated ``repeats`` times along each axis (as ``numpy.tile``)."""
    return torch.tile(convert_to_tensor(x), _shape(repeats))


@keras_op()
def repeat(x: Any, repeats: Any, axis: int | None = None) -> torch.Tensor:
    """Each element repeated ``repeats`` times along ``axis`` (flattened for ``None``)."""
    x = convert_to_tensor(x)
    if not isinstance(repeats, int):
        repeats = convert_to_tensor(repeats, dtype="int64", device=x.device)
    return torch.repeat_interleave(x, repeats, dim=axis)


# ------------------------------------------------------------------------------------ joining
def _joined(xs: Any) -> list[torch.Tensor]:
    return to_tensors(*xs) if len(xs) > 1 else [convert_to_tensor(xs[0])]


@keras_op()
def concatenate(xs: Any, axis: int | None = 0) -> torch.Tensor:
    """``xs`` joined along ``axis`` (flattened first for ``None``); Keras dtype promotion."""
    tensors = _joined(list(xs))
    if axis is None:
        return torch.cat([t.reshape(-1) for t in tensors])
    return torch.cat(tensors, dim=axis)


@keras_op()
def stack(x: Any, axis: int = 0) -> torch.Tensor:
    """``x`` (a sequence of same-shaped tensors) stacked along a new ``axis``."""
    return torch.stack(_joined(list(x)), dim=axis)


@keras_op()
def append(x1: Any, x2: Any, axis: int | None = None) -> torch.Tensor:
    """``x2`` appended to ``x1`` along ``axis`` (both flattened for ``None``)."""
    return concatenate([x1, x2], axis=axis)


@keras_op()
def hstack(xs: Any) -> torch.Tensor:
    """Stacked along axis 1 (axis 0 for 1-D tensors), as ``numpy.hstack``."""
    return torch.hstack(_joined(list(xs)))


@keras_op()
def vstack(xs: Any) -> torch.Tensor:
    """Stacked along axis 0 (1-D tensors as rows), as ``numpy.vstack``."""
    return torch.vstack(_joined(list(xs)))


@keras_op()
def dstack(xs: Any) -> torch.Tensor:
    """Stacked along axis 2, as ``numpy.dstack``."""
    return torch.dstack(_joined(list(xs)))


@keras_op()
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[torch.Tensor]:
    """``x`` cut along ``axis`` into equal sections (an int) or at the given indices (a list).

    Raises:
        ValueError: when an int does not divide the axis size.
    """
    x = convert_to_tensor(x)
    if isinstance(indices_or_sections, int):
        if x.shape[axis] % indices_or_sections:
            raise ValueError(f"split: {indices_or_sections} sections do not divide axis {axis} "
                             f"of size {x.shape[axis]}")
        return list(torch.tensor_split(x, indices_or_sections, dim=axis))
    return list(torch.tensor_split(x, [int(i) for i in indices_or_sections], dim=axis))


@keras_op()
def array_split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[torch.Tensor]:
    """As :func:`split`, but an int need not divide the axis size."""
    return list(torch.tensor_split(convert_to_tensor(x), indices_or_sections, dim=axis))


@keras_op()
def unstack(x: Any, num: int | None = None, axis: int = 0) -> list[torch.Tensor]:
    """The slices of ``x`` along ``axis``."""
    return list(torch.unbind(convert_to_tensor(x), dim=axis))


# ------------------------------------------------------------------------------------ indexing
def _index(indices: Any, device: torch.device) -> torch.Tensor:
    return convert_to_tensor(indices, device=device).long()


@keras_op()
def take(x: Any, indices: Any, axis: int | None = None) -> torch.Tensor:
    """Elements of ``x`` at ``indices`` along ``axis`` (of the flattened tensor for ``None``);
    negative indices count from the end."""
    x = convert_to_tensor(x)
    idx = _index(indices, x.device)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = axis % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])


@keras_op()
def take_along_axis(x: Any, indices: Any, axis: int | None = None) -> torch.Tensor:
    """``numpy.take_along_axis``: ``indices`` broadcast against ``x`` except along ``axis``."""
    x = convert_to_tensor(x)
    idx = _index(indices, x.device)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = axis % x.dim()
    shape = list(torch.broadcast_shapes(
        tuple(1 if d == axis else s for d, s in enumerate(x.shape)),
        tuple(1 if d == axis else s for d, s in enumerate(idx.shape))))
    x = x.expand(*[s if d != axis else x.shape[axis] for d, s in enumerate(shape)])
    idx = idx.expand(*[s if d != axis else idx.shape[axis] for d, s in enumerate(shape)])
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    return torch.gather(x, axis, idx)


@keras_op()
def get_item(x: Any, key: Any) -> torch.Tensor:
    """``x[key]`` (ints, slices, ``None``, ``...``, index tensors)."""
    x = convert_to_tensor(x)
    if isinstance(key, tuple):
        key = tuple(_index(k, x.device) if isinstance(k, (list, torch.Tensor)) and not (
            isinstance(k, torch.Tensor) and k.dtype == torch.bool) else k for k in key)
    elif isinstance(key, (list, torch.Tensor)) and not (
            isinstance(key, torch.Tensor) and key.dtype == torch.bool):
        key = _index(key, x.device)
    return x[key]


@keras_op()
def tril(x: Any, k: int = 0) -> torch.Tensor:
    """Lower triangle of the last two axes (below the ``k``-th diagonal zeroed above)."""
    return torch.tril(convert_to_tensor(x), k)


@keras_op()
def triu(x: Any, k: int = 0) -> torch.Tensor:
    """Upper triangle of the last two axes."""
    return torch.triu(convert_to_tensor(x), k)


@keras_op()
def diag(x: Any, k: int = 0) -> torch.Tensor:
    """The ``k``-th diagonal of a matrix, or a matrix with a 1-D ``x`` on that diagonal."""
    return torch.diag(convert_to_tensor(x), k)


@keras_op()
def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> torch.Tensor:
    """Diagonals of ``x`` over ``axis1``/``axis2`` (as a last axis)."""
    return torch.diagonal(convert_to_tensor(x), offset, axis1, axis2)


@keras_op()
def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> torch.Tensor:
    """Sum of the diagonal over ``axis1``/``axis2`` (small ints give int32)."""
    x = convert_to_tensor(x)
    d = torch.diagonal(x, offset, axis1, axis2)
    dtype = torch.int32 if x.dtype in (torch.bool, torch.int8, torch.int16, torch.uint8) else None
    return torch.sum(d, dim=-1, dtype=dtype or x.dtype)


def _pad_indices(size: int, before: int, after: int, mode: str, device: Any) -> torch.Tensor:
    """Source positions for each output position of a padded axis (non-constant modes)."""
    pos = torch.arange(-before, size + after, device=device)
    if mode == "edge":
        return pos.clamp(0, size - 1)
    if mode == "wrap":
        return pos % size
    if mode == "reflect":  # mirror without repeating the edge
        period = builtins.max(2 * (size - 1), 1)
        p = pos % period
        return torch.where(p >= size, period - p, p)
    if mode == "symmetric":  # mirror repeating the edge
        period = 2 * size
        p = pos % period
        return torch.where(p >= size, period - 1 - p, p)
    raise ValueError(f"pad: unsupported mode {mode!r}; expected 'constant', 'edge', 'reflect', "
                     "'symmetric' or 'wrap'")


@keras_op()
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None) -> torch.Tensor:
    """``numpy.pad``: ``pad_width`` is ``((before, after), ...)`` per axis, or one pair for all.

    Raises:
        ValueError: for an unknown ``mode``, or ``constant_values`` with a non-constant mode.
    """
    x = convert_to_tensor(x)
    widths = [tuple(int(v) for v in p) for p in (
        pad_width if isinstance(pad_width[0], (list, tuple)) else [pad_width])]
    if len(widths) == 1:
        widths = widths * x.dim()
    if mode != "constant" and constant_values is not None:
        raise ValueError(f"pad: constant_values is only used with mode='constant'; received "
                         f"mode={mode!r}, constant_values={constant_values!r}")
    if mode == "constant":
        flat = [v for before, after in reversed(widths) for v in (before, after)]
        return torch.nn.functional.pad(x, flat, value=constant_values or 0)
    for axis, (before, after) in enumerate(widths):
        if before or after:
            idx = _pad_indices(x.shape[axis], before, after, mode, x.device)
            x = torch.index_select(x, axis, idx)
    return x
