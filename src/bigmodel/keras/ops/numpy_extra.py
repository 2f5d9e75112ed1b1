"""Less common ``keras.ops`` NumPy names: NaN-ignoring reductions, flips and splits, set and
number-theory functions, windows, statistics (``corrcoef``, ``histogram``), ``unique``."""

from __future__ import annotations

import builtins
from typing import Any

import torch

from bigmodel.errors import NotSupportedError
from bigmodel.keras import config
from bigmodel.keras.ops import numpy_reduce as reduce_ops
from bigmodel.keras.ops import numpy_shape as shape_ops
from bigmodel.keras.ops.dtypes import (
    as_float,
    convert_to_tensor,
    dtype_of,
    result_type,
    to_tensors,
    torch_dtype,
)
from bigmodel.keras.ops.node import keras_op
from bigmodel.keras.ops.numpy_reduce import axes_of

# ------------------------------------------------------------------------------ NaN-ignoring


def _nan_filled(x: Any, fill: float) -> torch.Tensor:
    x = convert_to_tensor(x)
    if not x.is_floating_point():
        return x
    return torch.where(torch.isnan(x), torch.full_like(x, fill), x)


@keras_op()
def nansum(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Sum over ``axis`` treating NaN as 0."""
    return reduce_ops.sum(_nan_filled(x, 0.0), axis, keepdims)


@keras_op()
def nanprod(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Product over ``axis`` treating NaN as 1."""
    return reduce_ops.prod(_nan_filled(x, 1.0), axis, keepdims)


@keras_op()
def nanmean(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Mean over ``axis`` of the non-NaN values."""
    x = as_float(x)
    return torch.nanmean(x, dim=axes_of(x, axis), keepdim=keepdims)


@keras_op()
def nanvar(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Population variance over ``axis`` of the non-NaN values."""
    x = as_float(x)
    dims = axes_of(x, axis)
    valid = ~torch.isnan(x)
    mean = torch.nanmean(x, dim=dims, keepdim=True)
    squares = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x))
    return squares.sum(dim=dims, keepdim=keepdims) / valid.sum(dim=dims, keepdim=keepdims)


@keras_op()
def nanstd(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Population standard deviation over ``axis`` of the non-NaN values."""
    return torch.sqrt(nanvar(x, axis, keepdims))


@keras_op()
def nanmax(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Largest non-NaN value over ``axis`` (NaN where all are NaN)."""
    x = convert_to_tensor(x)
    out = torch.amax(_nan_filled(x, -torch.inf), dim=axes_of(x, axis), keepdim=keepdims)
    return _all_nan_to_nan(x, out, axis, keepdims)


@keras_op()
def nanmin(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Smallest non-NaN value over ``axis`` (NaN where all are NaN)."""
    x = convert_to_tensor(x)
    out = torch.amin(_nan_filled(x, torch.inf), dim=axes_of(x, axis), keepdim=keepdims)
    return _all_nan_to_nan(x, out, axis, keepdims)


def _all_nan_to_nan(x: torch.Tensor, out: torch.Tensor, axis: Any, keepdims: bool) -> torch.Tensor:
    if not x.is_floating_point():
        return out
    all_nan = torch.all(torch.isnan(x), dim=axes_of(x, axis), keepdim=keepdims)
    return torch.where(all_nan, torch.full_like(out, torch.nan), out)


@keras_op()
def nanargmax(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the largest non-NaN value (int32)."""
    return reduce_ops.argmax(_nan_filled(x, -torch.inf), axis, keepdims)


@keras_op()
def nanargmin(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the smallest non-NaN value (int32)."""
    return reduce_ops.argmin(_nan_filled(x, torch.inf), axis, keepdims)


@keras_op()
def nancumsum(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running sum treating NaN as 0."""
    return reduce_ops.cumsum(_nan_filled(x, 0.0), axis, dtype)


@keras_op()
def nancumprod(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running product treating NaN as 1."""
    return reduce_ops.cumprod(_nan_filled(x, 1.0), axis, dtype)


@keras_op()
def nanquantile(x: Any, q: Any, axis: Any = None, method: str = "linear",
                keepdims: bool = False) -> torch.Tensor:
    """Quantiles of the non-NaN values, as ``numpy.nanquantile``."""
    return reduce_ops.quantile_over_axes(torch.nanquantile, x, q, axis, method, keepdims)


@keras_op()
def nanpercentile(x: Any, q: Any, axis: Any = None, method: str = "linear",
                  keepdims: bool = False) -> torch.Tensor:
    """Percentiles of the non-NaN values, as ``numpy.nanpercentile``."""
    return nanquantile(x, torch.as_tensor(q, dtype=torch.float64) / 100.0, axis, method, keepdims)


@keras_op()
def nanmedian(x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
    """Median of the non-NaN values."""
    return nanquantile(x, 0.5, axis, keepdims=keepdims)


# ------------------------------------------------------------------------------ flips and splits
@keras_op()
def fliplr(x: Any) -> torch.Tensor:
    """Reversed along axis 1."""
    return torch.flip(convert_to_tensor(x), dims=(1,))


@keras_op()
def flipud(x: Any) -> torch.Tensor:
    """Reversed along axis 0."""
    return torch.flip(convert_to_tensor(x), dims=(0,))


@keras_op()
def rot90(array: Any, k: int = 1, axes: Any = (0, 1)) -> torch.Tensor:
    """Rotated by 90 degrees ``k`` times in the plane of ``axes``."""
    return torch.rot90(convert_to_tensor(array), k, dims=list(axes))


def _split_along(x: Any, indices_or_sections: Any, axis: int) -> list[torch.Tensor]:
    return shape_ops.split(x, indices_or_sections, axis)


@keras_op()
def hsplit(x: Any, indices_or_sections: Any) -> list[torch.Tensor]:
    """Split along axis 1 (axis 0 for 1-D)."""
    x = convert_to_tensor(x)
    return _split_along(x, indices_or_sections, 1 if x.dim() > 1 else 0)


@keras_op()
def vsplit(x: Any, indices_or_sections: Any) -> list[torch.Tensor]:
    """Split along axis 0."""
    return _split_along(x, indices_or_sections, 0)


@keras_op()
def dsplit(x: Any, indices_or_sections: Any) -> list[torch.Tensor]:
    """Split along axis 2."""
    return _split_along(x, indices_or_sections, 2)


@keras_op()
def diagflat(x: Any, k: int = 0) -> torch.Tensor:
    """A matrix with the flattened ``x`` on its ``k``-th diagonal."""
    return torch.diagflat(convert_to_tensor(x), k)


# ------------------------------------------------------------------------------ tests and numbers
@keras_op()
def isin(x1: Any, x2: Any, assume_unique: bool = False, invert: bool = False) -> torch.Tensor:
    """Whether each value of ``x1`` occurs in ``x2``."""
    a, b = to_tensors(x1, x2)
    return torch.isin(a, b, assume_unique=assume_unique, invert=invert)


@keras_op()
def isposinf(x: Any) -> torch.Tensor:
    """Whether each value is +inf."""
    return torch.isposinf(convert_to_tensor(x))


@keras_op()
def isneginf(x: Any) -> torch.Tensor:
    """Whether each value is -inf."""
    return torch.isneginf(convert_to_tensor(x))


@keras_op()
def isreal(x: Any) -> torch.Tensor:
    """Whether each value has a zero imaginary part."""
    return torch.isreal(convert_to_tensor(x))


@keras_op()
def erfc(x: Any) -> torch.Tensor:
    """Complementary error function, 1 - erf(x)."""
    return torch.erfc(as_float(x))


@keras_op()
def gcd(x1: Any, x2: Any) -> torch.Tensor:
    """Greatest common divisor of integers."""
    a, b = to_tensors(x1, x2)
    return torch.gcd(a, b)


@keras_op()
def lcm(x1: Any, x2: Any) -> torch.Tensor:
    """Least common multiple of integers."""
    a, b = to_tensors(x1, x2)
    return torch.lcm(a, b)


@keras_op()
def ldexp(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 * 2 ** x2``."""
    a = as_float(x1)
    b = convert_to_tensor(x2, device=a.device)
    return torch.ldexp(a, b)


@keras_op()
def nextafter(x1: Any, x2: Any) -> torch.Tensor:
    """The next float after ``x1`` towards ``x2``."""
    a, b = to_tensors(x1, x2, dtype=result_type(dtype_of(x1), dtype_of(x2), float))
    return torch.nextafter(a, b)


@keras_op()
def angle(x: Any) -> torch.Tensor:
    """Argument of complex values (0 or pi for reals)."""
    x = convert_to_tensor(x)
    return torch.angle(x if x.is_complex() or x.is_floating_point() else as_float(x))


@keras_op()
def geomspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, dtype: Any = None,
              axis: int = 0) -> torch.Tensor:
    """``num`` values spaced evenly on a log scale from ``start`` to ``stop``."""
    s, e = (torch.log10(torch.as_tensor(v, dtype=torch.float64)) for v in (start, stop))
    return shape_ops.logspace(s, e, num, endpoint, 10, dtype=dtype, axis=axis)


@keras_op()
def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> torch.Tensor:
    """Integral of ``y`` by the trapezoidal rule along ``axis``."""
    y = as_float(y)
    if x is None:
        return torch.trapezoid(y, dx=dx, dim=axis)
    return torch.trapezoid(y, convert_to_tensor(x, dtype=y.dtype, device=y.device), dim=axis)


@keras_op()
def vander(x: Any, N: int | None = None, increasing: bool = False) -> torch.Tensor:  # noqa: N803
    """Vandermonde matrix of 1-D ``x`` (decreasing powers unless ``increasing``)."""
    return torch.vander(convert_to_tensor(x), N=N, increasing=increasing)


@keras_op()
def unravel_index(indices: Any, shape: Any) -> tuple[torch.Tensor, ...]:
    """Coordinates in ``shape`` of flat ``indices``."""
    idx = convert_to_tensor(indices)
    return tuple(torch.unravel_index(idx.long(), tuple(int(s) for s in shape)))


@keras_op()
def corrcoef(x: Any) -> torch.Tensor:
    """Pearson correlation coefficients between the rows of ``x``."""
    return torch.corrcoef(as_float(x))


@keras_op()
def cdist(x: Any, y: Any) -> torch.Tensor:
    """Euclidean distances between the rows of ``x`` and of ``y``."""
    a, b = to_tensors(x, y, dtype=as_float(x).dtype)
    return torch.cdist(a, b)


@keras_op()
def argpartition(x: Any, kth: int, axis: int = -1) -> torch.Tensor:
    """Indices that put the ``kth`` value in its sorted place (here: a full stable argsort)."""
    return reduce_ops.argsort(x, axis)


def _window(name: str, fn: Any) -> Any:
    def op(x: int) -> torch.Tensor:
        return fn(int(x), periodic=False, dtype=torch_dtype(config.floatx()))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The {name} window of ``x`` points (symmetric, as NumPy)."
    return keras_op(name)(op)


bartlett = _window("bartlett", torch.bartlett_window)
blackman = _window("blackman", torch.blackman_window)
hamming = _window("hamming", torch.hamming_window)
hanning = _window("hanning", torch.hann_window)


@keras_op()
def kaiser(x: int, beta: float) -> torch.Tensor:
    """The Kaiser window of ``x`` points (symmetric, as NumPy)."""
    return torch.kaiser_window(int(x), periodic=False, beta=float(beta),
                               dtype=torch_dtype(config.floatx()))


@keras_op()
def histogram(x: Any, bins: int = 10, range: Any = None) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002
    """(counts, bin edges) of 1-D ``x`` over ``bins`` equal bins, as ``numpy.histogram`` (counts
    in ``x``'s float dtype, as Keras)."""
    x = as_float(x)
    low, high = (float(x.min()), float(x.max())) if range is None else map(float, range)
    counts, edges = torch.histogram(x.cpu().double(), bins=bins, range=(low, high))
    return counts.to(x.dtype), edges.to(x.dtype)  # float counts, as Keras


def unique(x: Any, sorted: bool = True, return_index: bool = False,  # noqa: A002
           return_inverse: bool = False, return_counts: bool = False, axis: int | None = None,
           size: int | None = None, fill_value: Any = None) -> Any:
    """Sorted unique values of ``x`` (eager tensors only: the output size depends on the data).

    Raises:
        NotSupportedError: for ``return_index=True``.
    """
    if return_index:
        raise NotSupportedError("keras.ops.unique(return_index=True) is not supported. "
                                "See docs/keras.md")
    x = convert_to_tensor(x)
    out = torch.unique(x if axis is not None else x.reshape(-1), sorted=True,
                       return_inverse=return_inverse, return_counts=return_counts, dim=axis)
    parts = list(out) if isinstance(out, tuple) else [out]
    if size is not None:
        values = parts[0]
        if values.shape[0] < size:
            fill = values[:1] if fill_value is None else torch.full(
                (1, *values.shape[1:]), fill_value, dtype=values.dtype)
            values = torch.cat([values, fill.expand(size - values.shape[0], *values.shape[1:])])
        parts[0] = values[:size]
    parts = [parts[0]] + [p.to(torch.int32) for p in parts[1:]]
    return parts[0] if len(parts) == 1 else tuple(parts)


def switch(index: Any, branches: Any, *operands: Any) -> Any:
    """``branches[index](*operands)`` (``index`` clamped to the valid range), eagerly."""
    i = builtins.min(builtins.max(int(index), 0), len(branches) - 1)
    return branches[i](*operands)


@keras_op()
def correlate(x1: Any, x2: Any, mode: str = "valid") -> torch.Tensor:
    """Cross-correlation of two 1-D sequences, as ``numpy.correlate`` (``valid``/``same``/
    ``full``)."""
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"correlate: mode must be 'valid', 'same' or 'full'; received {mode!r}")
    a, b = to_tensors(x1, x2, dtype=as_float(x1).dtype)
    if a.shape[0] < b.shape[0]:  # NumPy slides the longer one: swap, then reverse
        return torch.flip(correlate(b, a, mode), dims=(0,))
    n, m = a.shape[0], b.shape[0]
    full = torch.nn.functional.conv1d(a.reshape(1, 1, -1), b.reshape(1, 1, -1),
                                      padding=m - 1).reshape(-1)
    if mode == "full":
        return full
    start = m - 1 if mode == "valid" else (m - 1) // 2
    return full[start:start + (n - m + 1 if mode == "valid" else n)]


@keras_op()
def polar(abs_: Any, angle: Any) -> torch.Tensor:
    """Complex numbers from magnitudes and angles."""
    magnitude, phase = to_tensors(abs_, angle, dtype=as_float(abs_).dtype)
    return torch.polar(magnitude, phase)


@keras_op()
def view_as_real(x: Any) -> torch.Tensor:
    """A complex tensor as real pairs along a new last axis."""
    return torch.view_as_real(convert_to_tensor(x))


@keras_op()
def view_as_complex(x: Any) -> torch.Tensor:
    """Real pairs along the last axis as a complex tensor."""
    return torch.view_as_complex(as_float(x).contiguous())


@keras_op()
def view(x: Any, dtype: Any = None) -> torch.Tensor:
    """The same bytes seen as ``dtype`` (the last axis rescaled when the item size differs)."""
    x = convert_to_tensor(x)
    return x if dtype is None else x.view(torch_dtype(dtype))


# ------------------------------------------------------------------------------ search and count
@keras_op()
def select(condlist: Any, choicelist: Any, default: Any = 0) -> torch.Tensor:
    """``numpy.select``: the choice of the first true condition, else ``default``."""
    choices = to_tensors(*choicelist, default)
    out = choices[-1]
    for cond, choice in reversed(list(zip(condlist, choices[:-1]))):
        out = torch.where(convert_to_tensor(cond).bool(), choice, out)
    return out


@keras_op()
def searchsorted(sorted_sequence: Any, values: Any, side: str = "left") -> torch.Tensor:
    """Insertion indices of ``values`` into the 1-D ``sorted_sequence`` (int32)."""
    seq, vals = to_tensors(sorted_sequence, values)
    return torch.searchsorted(seq, vals, right=(side == "right")).to(torch.int32)


@keras_op()
def digitize(x: Any, bins: Any) -> torch.Tensor:
    """Index of the bin (increasing ``bins``) holding each value, as ``numpy.digitize`` (int32)."""
    vals, edges = to_tensors(x, bins)
    return torch.bucketize(vals, edges, right=True).to(torch.int32)


@keras_op()
def nonzero(x: Any) -> tuple[torch.Tensor, ...]:
    """Indices of non-zero values, one int32 tensor per axis (eager tensors only)."""
    return tuple(i.to(torch.int32) for i in torch.nonzero(convert_to_tensor(x), as_tuple=True))


@keras_op()
def diff(a: Any, n: int = 1, axis: int = -1) -> torch.Tensor:
    """``n``-th discrete difference along ``axis``."""
    return torch.diff(convert_to_tensor(a), n=n, dim=axis)


@keras_op()
def bincount(x: Any, weights: Any = None, minlength: int = 0, sparse: bool = False) -> torch.Tensor:
    """Count of each non-negative int in 1-D ``x`` (weighted sums with ``weights``)."""
    values = convert_to_tensor(x).long()
    w = None if weights is None else convert_to_tensor(weights)
    out = torch.bincount(values, weights=w, minlength=minlength)
    return out.to(torch.int32) if w is None else out.to(w.dtype)
