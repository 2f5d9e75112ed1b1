"""Reductions, cumulative ops and sorting (``keras.ops`` NumPy names).

``axis`` is ``None`` (all axes), an int or a tuple/list of ints; ``keepdims`` keeps reduced axes as
size 1. Dtypes as Keras 3: integer ``sum``/``prod``/``cumsum`` give at least int32, ``mean``/``std``/
``var`` of integers give floatx, ``argmax``/``argmin``/``argsort`` give int32, ``all``/``any`` bool.
"""

from __future__ import annotations

import builtins
from typing import Any

import torch

from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor, torch_dtype
from bigmodel.keras.ops.node import keras_op

_SMALL_INTS = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16)


def axes_of(x: torch.Tensor, axis: Any) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative ints (all axes for ``None``)."""
    if axis is None:
        return tuple(range(x.dim()))
    items = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in items:
        if not -builtins.max(x.dim(), 1) <= a < builtins.max(x.dim(), 1):
            raise ValueError(f"axis {a} is out of bounds for a tensor of rank {x.dim()}; "
                             f"received axis={axis!r}")
    return tuple(sorted(a % builtins.max(x.dim(), 1) for a in items))


def _sum_dtype(x: torch.Tensor) -> torch.dtype:
    if x.dtype in _SMALL_INTS:
        return torch.int32
    if x.dtype == torch.uint32:
        return torch.uint32
    return x.dtype


@keras_op()
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:  # noqa: A001
    """Sum over ``axis`` (bools and small ints give int32)."""
    x = convert_to_tensor(x)
    dims = axes_of(x, axis)
    if not dims:
        return x.to(_sum_dtype(x))
    return torch.sum(x, dim=dims, keepdim=keepdims, dtype=_sum_dtype(x))


@keras_op()
def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> torch.Tensor:
    """Product over ``axis``."""
    x = convert_to_tensor(x)
    out_dtype = torch_dtype(dtype) or _sum_dtype(x)
    result = x.to(out_dtype)
    for a in sorted(axes_of(x, axis), reverse=True):
        result = torch.prod(result, dim=a, keepdim=keepdims, dtype=out_dtype)
    return result


@keras_op()
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Mean over ``axis`` (integers give floatx)."""
    x = as_float(x)
    dims = axes_of(x, axis)
    return torch.mean(x, dim=dims, keepdim=keepdims) if dims else x


def _extreme(fn: Any, x: Any, axis: Any, keepdims: bool, initial: Any) -> torch.Tensor:
    x = convert_to_tensor(x)
    dims = axes_of(x, axis)
    out = fn(x, dim=dims, keepdim=keepdims) if dims else x
    if initial is not None:
        other = torch.as_tensor(initial, dtype=out.dtype, device=out.device)
        out = torch.maximum(out, other) if fn is torch.amax else torch.minimum(out, other)
    return out


@keras_op()
def max(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> torch.Tensor:  # noqa: A001
    """Largest value over ``axis`` (at least ``initial`` when given)."""
    return _extreme(torch.amax, x, axis, keepdims, initial)


@keras_op()
def min(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> torch.Tensor:  # noqa: A001
    """Smallest value over ``axis`` (at most ``initial`` when given)."""
    return _extreme(torch.amin, x, axis, keepdims, initial)


@keras_op()
def amax(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Largest value over ``axis``."""
    return _extreme(torch.amax, x, axis, keepdims, None)


@keras_op()
def amin(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Smallest value over ``axis``."""
    return _extreme(torch.amin, x, axis, keepdims, None)


@keras_op()
def ptp(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Range (max - min) over ``axis``."""
    return amax(x, axis, keepdims) - amin(x, axis, keepdims)


def _moment(x: Any, axis: Any, keepdims: bool) -> tuple[torch.Tensor, tuple[int, ...]]:
    x = as_float(x)
    return x, axes_of(x, axis)


@keras_op()
def var(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Population variance (``ddof=0``) over ``axis``; integers give floatx."""
    x, dims = _moment(x, axis, keepdims)
    return torch.var(x, dim=dims, unbiased=False, keepdim=keepdims)


@keras_op()
def std(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Population standard deviation (``ddof=0``) over ``axis``; integers give floatx."""
    x, dims = _moment(x, axis, keepdims)
    return torch.std(x, dim=dims, unbiased=False, keepdim=keepdims)


@keras_op()
def all(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:  # noqa: A001
    """Whether every value over ``axis`` is true (bool)."""
    x = convert_to_tensor(x).bool()
    dims = axes_of(x, axis)
    return torch.all(x, dim=dims, keepdim=keepdims) if dims else x


@keras_op()
def any(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:  # noqa: A001
    """Whether some value over ``axis`` is true (bool)."""
    x = convert_to_tensor(x).bool()
    dims = axes_of(x, axis)
    return torch.any(x, dim=dims, keepdim=keepdims) if dims else x


@keras_op()
def count_nonzero(x: Any, axis: Any = None) -> torch.Tensor:
    """Number of non-zero values over ``axis`` (int32)."""
    x = convert_to_tensor(x)
    return torch.count_nonzero(x, dim=axes_of(x, axis)).to(torch.int32)


def _arg(fn: Any, x: Any, axis: Any, keepdims: bool) -> torch.Tensor:
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    if axis is None:
        out = fn(x.reshape(-1))
        if keepdims:
            out = out.reshape([1] * x.dim())
        return out.to(torch.int32)
    return fn(x, dim=axis, keepdim=keepdims).to(torch.int32)


@keras_op()
def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the largest value along ``axis`` (of the flattened tensor for ``None``); int32."""
    return _arg(torch.argmax, x, axis, keepdims)


@keras_op()
def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the smallest value along ``axis`` (of the flattened tensor for ``None``); int32."""
    return _arg(torch.argmin, x, axis, keepdims)


def _cumulative(fn: Any, x: Any, axis: int | None, dtype: Any) -> torch.Tensor:
    x = convert_to_tensor(x)
    out_dtype = torch_dtype(dtype) or _sum_dtype(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return fn(x.to(out_dtype), dim=axis, dtype=out_dtype)  # torch would widen ints to int64


@keras_op()
def cumsum(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running sum along ``axis`` (of the flattened tensor for ``None``)."""
    return _cumulative(torch.cumsum, x, axis, dtype)


@keras_op()
def cumprod(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running product along ``axis`` (of the flattened tensor for ``None``)."""
    return _cumulative(torch.cumprod, x, axis, dtype)


@keras_op()
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed stably."""
    x = as_float(x)
    return torch.logsumexp(x, dim=axes_of(x, axis), keepdim=keepdims)


@keras_op()
def sort(x: Any, axis: int = -1) -> torch.Tensor:
    """Values sorted ascending along ``axis`` (flattened for ``None``)."""
    x = convert_to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.sort(x, dim=axis, stable=True).values


@keras_op()
def argsort(x: Any, axis: int = -1) -> torch.Tensor:
    """Indices that sort ``x`` ascending along ``axis`` (stable); int32."""
    x = convert_to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return torch.argsort(x, dim=axis, stable=True).to(torch.int32)


@keras_op()
def median(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Median over ``axis`` (the mean of the two middle values for even counts, as NumPy)."""
    return quantile(x, 0.5, axis=axis, keepdims=keepdims)


@keras_op()
def quantile(x: Any, q: Any, axis: Any = None, method: str = "linear",
             keepdims: bool = False) -> torch.Tensor:
    """The ``q``-th quantiles (``q`` in [0, 1]) over ``axis``, as ``numpy.quantile``."""
    return quantile_over_axes(torch.quantile, x, q, axis, method, keepdims)


def quantile_over_axes(kernel: Any, x: Any, q: Any, axis: Any, method: str,
                       keepdims: bool) -> torch.Tensor:
    """``kernel`` (``torch.quantile`` or ``torch.nanquantile``) over several axes at once: the
    reduced axes are moved last and flattened, since torch's kernels take one ``dim``."""
    x = as_float(x)
    dims = axes_of(x, axis)
    keep = [d for d in range(x.dim()) if d not in dims]
    moved = x.permute(*keep, *dims).reshape(*[x.shape[d] for d in keep], -1)
    qs = torch.as_tensor(q, dtype=x.dtype, device=x.device)
    out = kernel(moved, qs, dim=-1, interpolation=method)
    if keepdims:
        shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
        out = out.reshape(*out.shape[:qs.dim()], *shape)
    return out


@keras_op()
def percentile(x: Any, q: Any, axis: Any = None, method: str = "linear",
               keepdims: bool = False) -> torch.Tensor:
    """The ``q``-th percentiles (``q`` in [0, 100]) over ``axis``, as ``numpy.percentile``."""
    return quantile(x, torch.as_tensor(q, dtype=torch.float64) / 100.0, axis, method, keepdims)


@keras_op()
def average(x: Any, axis: int | None = None, weights: Any = None) -> torch.Tensor:
    """Weighted mean along ``axis`` (``weights`` 1-D along that axis or of ``x``'s shape)."""
    x = as_float(x)
    if weights is None:
        return mean(x, axis)
    w = convert_to_tensor(weights, dtype=x.dtype, device=x.device)
    if axis is not None and w.dim() == 1 and x.dim() > 1:
        shape = [1] * x.dim()
        shape[axis] = -1
        w = w.reshape(shape)
    w = torch.broadcast_to(w, x.shape)
    dims = axes_of(x, axis)
    return torch.sum(x * w, dim=dims) / torch.sum(w, dim=dims)
