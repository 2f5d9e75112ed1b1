"""Products of tensors: ``matmul``, ``dot``, ``einsum``, ``tensordot``, ``outer`` ... (``keras.ops``).

As in Keras 3, integer products of narrow types (bool, int8, int16, uint8) accumulate in int32.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.ops.dtypes import dtype_of, result_type, to_tensors
from bigmodel.keras.ops.node import keras_op

_NARROW = ("bool", "int8", "int16", "uint8", "uint16")


def _product_dtype(*values: Any) -> str:
    dtype = result_type(*(dtype_of(v) for v in values))
    return "int32" if dtype in _NARROW else dtype


@keras_op()
def matmul(x1: Any, x2: Any) -> torch.Tensor:
    """Matrix product with batch broadcasting (``x1 @ x2``, as ``numpy.matmul``)."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    return torch.matmul(a, b)


@keras_op()
def dot(x1: Any, x2: Any) -> torch.Tensor:
    """``numpy.dot``: scalars multiply; 1-D/2-D are inner/matrix products; N-D contracts the last
    axis of ``x1`` with the second-to-last of ``x2``."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    if a.dim() == 0 or b.dim() == 0:
        return a * b
    if b.dim() == 1:
        return torch.tensordot(a, b, dims=([a.dim() - 1], [0]))
    return torch.tensordot(a, b, dims=([a.dim() - 1], [b.dim() - 2]))


@keras_op()
def tensordot(x1: Any, x2: Any, axes: Any = 2) -> torch.Tensor:
    """Sum of products over ``axes`` (an int: the last/first that many; or two axis lists)."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    if not isinstance(axes, int):
        axes = [list(ax) if isinstance(ax, (list, tuple)) else [ax] for ax in axes]
    return torch.tensordot(a, b, dims=axes)


@keras_op()
def einsum(subscripts: str, *operands: Any, **kwargs: Any) -> torch.Tensor:
    """Einstein summation over ``operands`` as described by ``subscripts``."""
    tensors = to_tensors(*operands, dtype=_product_dtype(*operands))
    return torch.einsum(subscripts, *tensors)


@keras_op()
def outer(x1: Any, x2: Any) -> torch.Tensor:
    """Outer product of the flattened inputs."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    return torch.outer(a.reshape(-1), b.reshape(-1))


@keras_op()
def inner(x1: Any, x2: Any) -> torch.Tensor:
    """Inner product over the last axes."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    if a.dim() == 0 or b.dim() == 0:
        return a * b
    return torch.inner(a, b)


@keras_op()
def vdot(x1: Any, x2: Any) -> torch.Tensor:
    """Dot product of the flattened inputs (``x1`` conjugated)."""
    a, b = to_tensors(x1, x2, dtype=_product_dtype(x1, x2))
    return torch.sum(torch.conj(a).reshape(-1) * b.reshape(-1))


@keras_op()
def cross(x1: Any, x2: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> torch.Tensor:
    """Cross product of 3-vectors along the given axes."""
    a, b = to_tensors(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = torch.movedim(a, axisa, -1), torch.movedim(b, axisb, -1)
    a, b = torch.broadcast_tensors(a, b)
    return torch.movedim(torch.linalg.cross(a, b, dim=-1), -1, axisc)


@keras_op()
def kron(x1: Any, x2: Any) -> torch.Tensor:
    """Kronecker product."""
    a, b = to_tensors(x1, x2)
    return torch.kron(a, b)

