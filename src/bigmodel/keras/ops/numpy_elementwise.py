"""Element-wise ``keras.ops`` (NumPy names): arithmetic, comparisons, logic, math functions.

Dtypes follow Keras 3 (see :mod:`bigmodel.keras.ops.dtypes`): binary ops promote on Keras's lattice;
float functions (``exp``, ``sqrt``, ``floor`` ...) of integers give floatx; ``abs``/``negative``/
``sign`` keep the input dtype; comparisons give ``bool``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bigmodel.keras.ops.dtypes import (
    as_float,
    convert_to_tensor,
    dtype_of,
    result_type,
    to_tensors,
)
from bigmodel.keras.ops.node import keras_op


def _float_unary(name: str, fn: Callable[[torch.Tensor], torch.Tensor], doc: str) -> Any:
    def op(x: Any) -> torch.Tensor:
        return fn(as_float(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc} (float result; integer inputs give floatx)."
    return keras_op(name)(op)


def _same_unary(name: str, fn: Callable[[torch.Tensor], torch.Tensor], doc: str) -> Any:
    def op(x: Any) -> torch.Tensor:
        return fn(convert_to_tensor(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc} (same dtype as the input)."
    return keras_op(name)(op)


def _binary(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str,
            float_result: bool = False) -> Any:
    def op(x1: Any, x2: Any) -> torch.Tensor:
        if (isinstance(x1, torch.Tensor) and isinstance(x2, torch.Tensor)
                and x1.dtype == x2.dtype and x1.device == x2.device
                and (x1.is_floating_point() or not float_result)):
            return fn(x1, x2)  # hot path: nothing to promote or move
        kinds = [dtype_of(x1), dtype_of(x2)] + ([float] if float_result else [])
        a, b = to_tensors(x1, x2, dtype=result_type(*kinds))
        return fn(a, b)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc}, broadcasting ``x1`` with ``x2`` (Keras dtype promotion)."
    return keras_op(name)(op)


def _compare(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str) -> Any:
    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = to_tensors(x1, x2)
        return fn(a, b)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc}, element-wise; a ``bool`` tensor."
    return keras_op(name)(op)


# ------------------------------------------------------------------------------------ arithmetic
add = _binary("add", torch.add, "x1 + x2")
subtract = _binary("subtract", torch.subtract, "x1 - x2")
multiply = _binary("multiply", torch.multiply, "x1 * x2")
divide = _binary("divide", torch.true_divide, "x1 / x2 (true division)", float_result=True)
true_divide = _binary("true_divide", torch.true_divide, "x1 / x2 (true division)",
                      float_result=True)
floor_divide = _binary("floor_divide", torch.floor_divide, "x1 // x2")
mod = _binary("mod", torch.remainder, "x1 % x2 (sign of x2, as NumPy)")
fmod = _binary("fmod", torch.fmod, "C remainder of x1 / x2 (sign of x1)")
maximum = _binary("maximum", torch.maximum, "Element-wise maximum")
minimum = _binary("minimum", torch.minimum, "Element-wise minimum")
fmax = _binary("fmax", torch.fmax, "Element-wise maximum ignoring NaN")
fmin = _binary("fmin", torch.fmin, "Element-wise minimum ignoring NaN")
arctan2 = _binary("arctan2", torch.atan2, "Angle of (x2, x1)", float_result=True)
hypot = _binary("hypot", torch.hypot, "sqrt(x1**2 + x2**2)", float_result=True)
logaddexp = _binary("logaddexp", torch.logaddexp, "log(exp(x1) + exp(x2))", float_result=True)
logaddexp2 = _binary("logaddexp2", torch.logaddexp2, "log2(2**x1 + 2**x2)", float_result=True)
heaviside = _binary("heaviside", torch.heaviside, "Heaviside step of x1 with value x2 at 0")


@keras_op()
def power(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 ** x2`` element-wise (Keras dtype promotion; integer powers stay integer)."""
    a, b = to_tensors(x1, x2)
    return torch.pow(a, b)


@keras_op()
def divide_no_nan(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 / x2`` with 0 where ``x2 == 0``."""
    a, b = to_tensors(x1, x2, dtype=result_type(dtype_of(x1), dtype_of(x2), float))
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros_like(a), a / safe)


# ------------------------------------------------------------------------------------ comparisons
equal = _compare("equal", torch.eq, "x1 == x2")
not_equal = _compare("not_equal", torch.ne, "x1 != x2")
greater = _compare("greater", torch.gt, "x1 > x2")
greater_equal = _compare("greater_equal", torch.ge, "x1 >= x2")
less = _compare("less", torch.lt, "x1 < x2")
less_equal = _compare("less_equal", torch.le, "x1 <= x2")


@keras_op()
def isclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8,
            equal_nan: bool = False) -> torch.Tensor:
    """``|x1 - x2| <= atol + rtol * |x2|`` element-wise, as ``numpy.isclose``."""
    a, b = to_tensors(x1, x2)
    return torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


@keras_op()
def allclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8,
             equal_nan: bool = False) -> torch.Tensor:
    """Whether :func:`isclose` holds everywhere (a 0-d bool tensor)."""
    return torch.all(isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan))


# ------------------------------------------------------------------------------------ logic
def _logical(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Any:
    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = to_tensors(x1, x2)
        return fn(a.bool(), b.bool())

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Element-wise {name.split('_')[1].upper()} of the truth values of x1 and x2."
    return keras_op(name)(op)


logical_and = _logical("logical_and", torch.logical_and)
logical_or = _logical("logical_or", torch.logical_or)
logical_xor = _logical("logical_xor", torch.logical_xor)


@keras_op()
def logical_not(x: Any) -> torch.Tensor:
    """Element-wise NOT of the truth values of ``x``."""
    return torch.logical_not(convert_to_tensor(x))


isnan = _same_unary("isnan", torch.isnan, "Whether each value is NaN")
isinf = _same_unary("isinf", torch.isinf, "Whether each value is +-inf")
isfinite = _same_unary("isfinite", torch.isfinite, "Whether each value is finite")
signbit = _same_unary("signbit", torch.signbit, "Whether the sign bit is set")

# ------------------------------------------------------------------------------------ unary
exp = _float_unary("exp", torch.exp, "e ** x")
exp2 = _float_unary("exp2", torch.exp2, "2 ** x")
expm1 = _float_unary("expm1", torch.expm1, "exp(x) - 1")
log = _float_unary("log", torch.log, "Natural logarithm")
log2 = _float_unary("log2", torch.log2, "Base-2 logarithm")
log10 = _float_unary("log10", torch.log10, "Base-10 logarithm")
log1p = _float_unary("log1p", torch.log1p, "log(1 + x)")
sqrt = _float_unary("sqrt", torch.sqrt, "Square root")
cbrt = _float_unary("cbrt", lambda t: torch.sign(t) * torch.abs(t) ** (1.0 / 3.0), "Cube root")
reciprocal = _float_unary("reciprocal", torch.reciprocal, "1 / x")
sin = _float_unary("sin", torch.sin, "Sine")
cos = _float_unary("cos", torch.cos, "Cosine")
tan = _float_unary("tan", torch.tan, "Tangent")
arcsin = _float_unary("arcsin", torch.asin, "Inverse sine")
arccos = _float_unary("arccos", torch.acos, "Inverse cosine")
arctan = _float_unary("arctan", torch.atan, "Inverse tangent")
sinh = _float_unary("sinh", torch.sinh, "Hyperbolic sine")
cosh = _float_unary("cosh", torch.cosh, "Hyperbolic cosine")
tanh = _float_unary("tanh", torch.tanh, "Hyperbolic tangent")
arcsinh = _float_unary("arcsinh", torch.asinh, "Inverse hyperbolic sine")
arccosh = _float_unary("arccosh", torch.acosh, "Inverse hyperbolic cosine")
arctanh = _float_unary("arctanh", torch.atanh, "Inverse hyperbolic tangent")
floor = _float_unary("floor", torch.floor, "Largest integer <= x")
ceil = _float_unary("ceil", torch.ceil, "Smallest integer >= x")
deg2rad = _float_unary("deg2rad", torch.deg2rad, "Degrees to radians")
rad2deg = _float_unary("rad2deg", torch.rad2deg, "Radians to degrees")
sinc = _float_unary("sinc", torch.sinc, "sin(pi x) / (pi x)")
i0 = _float_unary("i0", torch.i0, "Modified Bessel function of order 0")
abs = _same_unary("abs", torch.abs, "Absolute value")  # noqa: A001 - Keras's name
absolute = _same_unary("absolute", torch.abs, "Absolute value")
fabs = _float_unary("fabs", torch.abs, "Absolute value")
negative = _same_unary("negative", torch.negative, "-x")
sign = _same_unary("sign", torch.sign, "-1, 0 or 1 by the sign of x")
trunc = _same_unary("trunc", lambda t: torch.trunc(t) if t.is_floating_point() else t,
                    "Rounded toward zero")
conj = _same_unary("conj", torch.conj, "Complex conjugate")
conjugate = _same_unary("conjugate", torch.conj, "Complex conjugate")
real = _same_unary("real", lambda t: torch.real(t) if t.is_complex() else t, "Real part")
copy = _same_unary("copy", torch.clone, "A copy")


@keras_op()
def imag(x: Any) -> torch.Tensor:
    """Imaginary part (zeros of the same dtype for real inputs)."""
    x = convert_to_tensor(x)
    return torch.imag(x) if x.is_complex() else torch.zeros_like(x)


@keras_op()
def square(x: Any) -> torch.Tensor:
    """``x * x`` (booleans give int32, as in Keras)."""
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return x * x


@keras_op()
def round(x: Any, decimals: int = 0) -> torch.Tensor:  # noqa: A001 - Keras's name
    """Round half to even to ``decimals`` places (integers stay integers)."""
    x = convert_to_tensor(x)
    if not x.is_floating_point():
        if decimals >= 0:
            return x
        factor = 10 ** (-decimals)
        return (torch.round(x.double() / factor) * factor).to(x.dtype)
    return torch.round(x, decimals=decimals)


@keras_op()
def clip(x: Any, x_min: Any, x_max: Any) -> torch.Tensor:
    """``x`` limited to ``[x_min, x_max]`` (bools become int32; Keras dtype promotion)."""
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    a, low, high = to_tensors(x, x_min, x_max)
    return torch.clamp(a, low, high)


@keras_op()
def where(condition: Any, x1: Any = None, x2: Any = None) -> Any:
    """``x1`` where ``condition`` holds, else ``x2``; with neither, the indices of true values.

    Returns:
        A tensor of the promoted dtype of ``x1`` and ``x2``; with ``x1 = x2 = None``, a tuple of
        int32 index tensors (one per axis), as ``numpy.nonzero``.
    """
    condition = convert_to_tensor(condition)
    if x1 is None and x2 is None:
        return tuple(i.to(torch.int32) for i in torch.nonzero(condition, as_tuple=True))
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither")
    a, b = to_tensors(x1, x2)
    return torch.where(condition.to(a.device).bool(), a, b)


@keras_op()
def nan_to_num(x: Any, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> torch.Tensor:
    """NaN -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (dtype extremes by default)."""
    x = convert_to_tensor(x)
    if not x.is_floating_point():
        return x
    return torch.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


# ------------------------------------------------------------------------------------ bitwise
def _bitwise(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str) -> Any:
    def op(x: Any, y: Any) -> torch.Tensor:
        a, b = to_tensors(x, y)
        return fn(a, b)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc}, element-wise on integers or booleans."
    return keras_op(name)(op)


bitwise_and = _bitwise("bitwise_and", torch.bitwise_and, "Bit-wise AND")
bitwise_or = _bitwise("bitwise_or", torch.bitwise_or, "Bit-wise OR")
bitwise_xor = _bitwise("bitwise_xor", torch.bitwise_xor, "Bit-wise XOR")
bitwise_left_shift = _bitwise("bitwise_left_shift", torch.bitwise_left_shift, "x << y")
bitwise_right_shift = _bitwise("bitwise_right_shift", torch.bitwise_right_shift, "x >> y")
left_shift = _bitwise("left_shift", torch.bitwise_left_shift, "x << y")
right_shift = _bitwise("right_shift", torch.bitwise_right_shift, "x >> y")
bitwise_not = _same_unary("bitwise_not", torch.bitwise_not, "Bit-wise NOT")
bitwise_invert = _same_unary("bitwise_invert", torch.bitwise_not, "Bit-wise NOT")
