"""``keras.ops`` linear algebra: norms, inverses, determinants, solvers, decompositions."""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ShapeError
from bigmodel.keras.ops.dtypes import as_float
from bigmodel.keras.ops.node import keras_op, unsupported
from bigmodel.keras.ops.numpy_reduce import axes_of


@keras_op()
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> torch.Tensor:  # noqa: A002
    """Vector or matrix norm, as ``numpy.linalg.norm``.

    ``axis`` an int (or ``None`` on a 1-D tensor): a vector norm; two axes (or ``None`` on a 2-D
    tensor): a matrix norm (``"fro"``, ``"nuc"``, 1, -1, 2, -2, inf, -inf); ``None`` on other ranks:
    the 2-norm of the flattened tensor.
    """
    x = as_float(x)
    if axis is None and ord is None:
        out = torch.linalg.vector_norm(x)
        return out.reshape([1] * x.dim()) if keepdims else out
    dims = axes_of(x, axis)
    if len(dims) == 1:
        return torch.linalg.vector_norm(x, ord=2 if ord is None else ord, dim=dims[0],
                                         keepdim=keepdims)
    if len(dims) == 2:
        return torch.linalg.matrix_norm(x, ord="fro" if ord is None else ord, dim=dims,
                                        keepdim=keepdims)
    raise ValueError(f"norm: ord={ord!r} needs a vector or a matrix; received axis={axis!r} on "
                     f"a tensor of rank {x.dim()}")


@keras_op()
def lu_factor(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """LU factorization with partial pivoting, as ``scipy.linalg.lu_factor``.

    Returns:
        ``(lu, pivots)``: ``lu`` holds U and the unit-diagonal L below it; ``pivots`` (int32,
        0-based) says row ``i`` was swapped with row ``pivots[i]``.

    Raises:
        ShapeError: ``x`` of rank < 2.
    """
    x = as_float(x)
    if x.dim() < 2:
        raise ShapeError(f"keras.ops.lu_factor: x must be a matrix (rank >= 2); received shape "
                         f"{tuple(x.shape)}")
    lu, pivots = torch.linalg.lu_factor(x)
    return lu, (pivots - 1).to(torch.int32)  # torch numbers pivots from 1


@keras_op()
def inv(x: Any) -> torch.Tensor:
    """Matrix inverse."""
    return torch.linalg.inv(as_float(x))


@keras_op()
def det(x: Any) -> torch.Tensor:
    """Matrix determinant."""
    return torch.linalg.det(as_float(x))


@keras_op()
def slogdet(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(sign, log|det|) of matrices."""
    sign, logabs = torch.linalg.slogdet(as_float(x))
    return sign, logabs


@keras_op()
def solve(a: Any, b: Any) -> torch.Tensor:
    """``x`` with ``a @ x = b``."""
    return torch.linalg.solve(as_float(a), as_float(b))


@keras_op()
def solve_triangular(a: Any, b: Any, lower: bool = False) -> torch.Tensor:
    """``x`` with ``a @ x = b`` for a triangular ``a``."""
    return torch.linalg.solve_triangular(as_float(a), as_float(b), upper=not lower)


@keras_op()
def cholesky(x: Any, upper: bool = False) -> torch.Tensor:
    """Cholesky factor (lower unless ``upper``) of positive-definite matrices."""
    return torch.linalg.cholesky(as_float(x), upper=upper)


@keras_op()
def eigh(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices."""
    values, vectors = torch.linalg.eigh(as_float(x))
    return values, vectors


@keras_op()
def qr(x: Any, mode: str = "reduced") -> tuple[torch.Tensor, torch.Tensor]:
    """QR decomposition (``"reduced"`` or ``"complete"``)."""
    q, r = torch.linalg.qr(as_float(x), mode=mode)
    return q, r


@keras_op()
def svd(x: Any, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """Singular value decomposition: ``(u, s, vh)``, or ``s`` alone without ``compute_uv``."""
    x = as_float(x)
    if not compute_uv:
        return torch.linalg.svdvals(x)
    u, s, vh = torch.linalg.svd(x, full_matrices=full_matrices)
    return u, s, vh


@keras_op()
def lstsq(a: Any, b: Any, rcond: float | None = None) -> torch.Tensor:
    """Least-squares solution of ``a @ x = b``."""
    return torch.linalg.lstsq(as_float(a), as_float(b), rcond=rcond, driver="gelsd").solution


@keras_op()
def pinv(x: Any, rcond: float | None = None) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse."""
    x = as_float(x)
    return torch.linalg.pinv(x) if rcond is None else torch.linalg.pinv(x, rtol=rcond)


@keras_op()
def matrix_rank(x: Any, tol: float | None = None) -> torch.Tensor:
    """Rank of matrices (int32)."""
    return torch.linalg.matrix_rank(as_float(x), atol=tol).to(torch.int32)


@keras_op()
def eig(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of square matrices (complex tensors)."""
    values, vectors = torch.linalg.eig(as_float(x))
    return values, vectors


@keras_op()
def cholesky_inverse(x: Any, upper: bool = False) -> torch.Tensor:
    """Inverse of ``L @ L.T`` from its Cholesky factor ``L`` (``U.T @ U`` when ``upper``)."""
    return torch.cholesky_inverse(as_float(x), upper=upper)


def jvp(fun: Any, primals: Any, tangents: Any, has_aux: bool = False) -> Any:
    """Forward-mode derivative: ``(fun(*primals), J @ tangents)`` (and ``aux`` with
    ``has_aux``), by ``torch.func.jvp``."""
    primals = tuple(as_float(p) for p in primals)
    tangents = tuple(as_float(t) for t in tangents)
    return torch.func.jvp(fun, primals, tangents, has_aux=has_aux)


def __getattr__(name: str) -> Any:
    raise unsupported("keras.ops.linalg", name)
