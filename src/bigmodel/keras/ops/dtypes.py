"""Keras dtype names, Keras's type promotion, and turning inputs into torch tensors.

Keras 3 promotes dtypes on a JAX-style lattice, not PyTorch's: Python ``int`` becomes ``int32``
(PyTorch: ``int64``), ``argmax`` returns ``int32``, an integer ``mean`` or ``exp`` is ``float32``, a
Python scalar next to a tensor takes the tensor's kind when it can ("weak" types). Every op here
computes its result dtype with :func:`result_type` and casts its inputs before calling PyTorch.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.keras import config

TORCH_DTYPES: dict[str, torch.dtype] = {
    "bool": torch.bool, "uint8": torch.uint8, "uint16": torch.uint16, "uint32": torch.uint32,
    "uint64": torch.uint64, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
    "int64": torch.int64, "bfloat16": torch.bfloat16, "float16": torch.float16,
    "float32": torch.float32, "float64": torch.float64, "complex64": torch.complex64,
    "complex128": torch.complex128,
}
_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
_PYTHON = {bool: "bool", int: "int32", float: "float32", complex: "complex64"}
_ALIASES = {"float": "float32", "int": "int32", "double": "float64", "half": "float16"}


def standardize_dtype(dtype: Any) -> str | None:
    """A Keras dtype name (``"float32"``) for a name, torch/NumPy dtype or Python type.

    Raises:
        ConfigError: for something that names no dtype.
    """
    if dtype is None:
        return None
    fast = _NAMES.get(dtype) if isinstance(dtype, torch.dtype) else (
        dtype if isinstance(dtype, str) and dtype in TORCH_DTYPES else None)
    if fast is not None:
        return fast
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype.removeprefix("torch."), dtype.removeprefix("torch."))
    elif isinstance(dtype, torch.dtype):
        name = _NAMES.get(dtype, str(dtype))
    elif dtype in _PYTHON:
        name = _PYTHON[dtype]
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = getattr(dtype, "name", str(dtype))
    if name not in TORCH_DTYPES:
        raise ConfigError(f"Invalid dtype: {dtype!r}; expected one of {sorted(TORCH_DTYPES)}")
    return name


def torch_dtype(dtype: Any) -> torch.dtype | None:
    """The torch dtype for any dtype :func:`standardize_dtype` accepts (``None`` stays ``None``)."""
    name = standardize_dtype(dtype)
    return None if name is None else TORCH_DTYPES[name]


def _kind_and_bits(name: str) -> tuple[str, int]:
    if name == "bool":
        return "b", 1
    if name == "bfloat16":
        return "bf", 16
    for kind in ("uint", "int", "float", "complex"):
        if name.startswith(kind):
            return kind[0] if kind != "uint" else "u", int(name[len(kind):])
    raise ConfigError(f"Invalid dtype for promotion: {name!r}")


def _promote_ints(signed: list[int], unsigned: list[int]) -> str:
    if not unsigned:
        return f"int{max(signed)}"
    if not signed:
        return f"uint{max(unsigned)}"
    bits = max(max(signed), 2 * max(unsigned))  # a signed type that holds every unsigned value
    return f"int{bits}" if bits <= 64 else config.floatx()


def _promote_floats(names: list[str]) -> str:
    bits = max(_kind_and_bits(n)[1] for n in names)
    if bits == 16 and len(set(names)) > 1:  # float16 with bfloat16: neither holds the other
        return "float32"
    return next(n for n in names if _kind_and_bits(n)[1] == bits)


def result_type(*dtypes: Any) -> str:
    """The dtype Keras 3 gives an op over inputs of these dtypes (see :func:`_result_type`)."""
    try:
        return _cached_result_type(dtypes, config.floatx())
    except TypeError:  # an unhashable dtype spelling: no caching
        return _result_type(*dtypes)


@functools.lru_cache(maxsize=1024)
def _cached_result_type(dtypes: tuple, floatx: str) -> str:
    return _result_type(*dtypes)


def _result_type(*dtypes: Any) -> str:
    """The dtype Keras 3 gives an op over inputs of these dtypes.

    Args:
        *dtypes: dtype names / torch or NumPy dtypes (strong types), or the Python types ``int``,
            ``float``, ``bool`` standing for Python scalars (weak types: they take the kind of the
            strong inputs when it can hold them).

    Returns:
        A Keras dtype name.
    """
    strong = [standardize_dtype(d) for d in dtypes if d not in (int, float, complex, bool)]
    weak = {d for d in dtypes if d in (int, float, complex, bool)}
    kinds = {n: _kind_and_bits(n)[0] for n in strong}
    complexes = [n for n in strong if kinds[n] == "c"]
    floats = [n for n in strong if kinds[n] in ("f", "bf")]
    signed = [_kind_and_bits(n)[1] for n in strong if kinds[n] == "i"]
    unsigned = [_kind_and_bits(n)[1] for n in strong if kinds[n] == "u"]
    if complexes or complex in weak:
        return "complex128" if "complex128" in complexes or "float64" in floats else "complex64"
    if floats:
        return _promote_floats(floats)
    if signed or unsigned:
        if float in weak:
            return config.floatx()
        return _promote_ints(signed, unsigned)
    if float in weak:
        return config.floatx()
    if int in weak:
        return "int32"
    return "bool"


def dtype_of(value: Any) -> Any:
    """The dtype (strong) or Python type (weak) that :func:`result_type` should see for a value."""
    if isinstance(value, torch.Tensor):
        return _NAMES[value.dtype]
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float, complex)):
        return type(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return standardize_dtype(dtype)
    return standardize_dtype(convert_to_tensor(value).dtype)


def convert_to_tensor(x: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
    """A torch tensor for a tensor, NumPy array, Python scalar or nested list (Keras rules).

    Python ints become int32 and Python floats float32 (NumPy arrays keep their dtype).

    Raises:
        InputTypeError: for something that is no number or array (e.g. a string).
    """
    target = torch_dtype(dtype)
    if isinstance(x, torch.Tensor):
        out = x
    elif isinstance(x, (bool, int, float)):
        # Python scalars: Keras's defaults (int32 / floatx), made directly (hot path of binary ops).
        default = torch.bool if isinstance(x, bool) else (
            torch.int32 if isinstance(x, int) else TORCH_DTYPES[config.floatx()])
        return torch.tensor(x, dtype=target or default, device=device)
    elif isinstance(x, np.ndarray) or np.isscalar(x) and isinstance(x, np.generic):
        array = np.asarray(x)
        if array.dtype.kind in "OUS":
            raise InputTypeError(f"convert_to_tensor: cannot make a tensor of {array.dtype} "
                                 f"values; received {type(x).__name__}")
        out = _from_numpy(array)
    elif hasattr(x, "__torch_tensor__") or type(x).__name__ == "Variable" and hasattr(x, "value"):
        out = torch.as_tensor(x.value)
    else:
        try:
            array = np.asarray(x if not isinstance(x, (list, tuple)) else _nested_to_numpy(x))
        except (TypeError, ValueError) as error:
            raise InputTypeError(f"convert_to_tensor: cannot make a tensor of "
                                 f"{type(x).__name__}: {error}") from None
        if array.dtype.kind in "OUS":
            raise InputTypeError(f"convert_to_tensor: cannot make a tensor of "
                                 f"{type(x).__name__} holding {array.dtype} values")
        # Python numbers: Keras's defaults (int32 / floatx), not NumPy's 64-bit ones.
        if target is None:
            if array.dtype.kind == "i":
                target = torch.int32
            elif array.dtype.kind == "f":
                target = torch_dtype(config.floatx())
            elif array.dtype.kind == "c":
                target = torch.complex64
        out = _from_numpy(array)
    if target is not None and out.dtype != target:
        out = out.to(target)
    if device is not None and out.device != torch.device(device):
        out = out.to(device)
    return out


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    # np.ascontiguousarray would make 0-d arrays 1-d; read-only arrays cannot be shared.
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = array.copy(order="C")
    return torch.from_numpy(array)


def _nested_to_numpy(x: Any) -> Any:
    """Nested lists that may hold tensors -> something ``np.asarray`` takes."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):
        return [_nested_to_numpy(v) for v in x]
    return x


def to_tensors(*values: Any, dtype: Any = None) -> list[torch.Tensor]:
    """Convert ``values`` to tensors of one dtype (``result_type`` unless given), on one device.

    Python scalars and arrays go to the device of the tensors among ``values`` (an accelerator
    one when there are several).
    """
    target = standardize_dtype(dtype) if dtype is not None else result_type(
        *(dtype_of(v) for v in values))
    devices = [v.device for v in values if isinstance(v, torch.Tensor)]
    # An accelerator tensor wins over CPU ones (e.g. a CPU random draw next to a CUDA activation).
    device = next((d for d in devices if d.type != "cpu"), devices[0] if devices else None)
    return [convert_to_tensor(v, dtype=target, device=device) for v in values]


def float_dtype_of(x: torch.Tensor) -> torch.dtype:
    """``x``'s dtype when it is floating, else floatx (Keras: int inputs of float ops)."""
    if x.is_floating_point() or x.is_complex():
        return x.dtype
    return TORCH_DTYPES[config.floatx()]


def as_float(x: Any) -> torch.Tensor:
    """``x`` as a tensor of a float dtype (its own, or floatx for ints and bools)."""
    x = convert_to_tensor(x)
    return x.to(float_dtype_of(x))
