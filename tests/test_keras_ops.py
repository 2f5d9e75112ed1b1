"""keras.ops on eager tensors: values against NumPy (one row per op), Keras 3 dtype rules,
axis/keepdims, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bigmodel.errors import BigModelError, NotSupportedError
from bigmodel.keras import ops

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((3, 4)).astype(np.float32)
P = RNG.uniform(0.1, 2.0, (3, 4)).astype(np.float32)      # positive
U = RNG.uniform(-0.9, 0.9, (3, 4)).astype(np.float32)     # in (-1, 1)
I = RNG.integers(-5, 6, (3, 4)).astype(np.int32)          # noqa: E741
J = RNG.integers(1, 4, (3, 4)).astype(np.int32)
M = RNG.standard_normal((4, 5)).astype(np.float32)
SPD = (lambda m: m @ m.T + 4 * np.eye(4, dtype=np.float32))(RNG.standard_normal((4, 4)).astype(
    np.float32))
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def _erf(x):
    return np.vectorize(math.erf)(x).astype(np.float32)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# (name, keras call, NumPy reference)
CASES = [
    ("add", lambda: ops.add(A, B), lambda: A + B),
    ("subtract", lambda: ops.subtract(A, B), lambda: A - B),
    ("multiply", lambda: ops.multiply(A, B), lambda: A * B),
    ("divide", lambda: ops.divide(A, P), lambda: A / P),
    ("true_divide", lambda: ops.true_divide(I, J), lambda: I / J),
    ("floor_divide", lambda: ops.floor_divide(I, J), lambda: I // J),
    ("mod", lambda: ops.mod(I, J), lambda: np.mod(I, J)),
    ("power", lambda: ops.power(P, B), lambda: np.power(P, B)),
    ("maximum", lambda: ops.maximum(A, B), lambda: np.maximum(A, B)),
    ("minimum", lambda: ops.minimum(A, 0.0), lambda: np.minimum(A, 0.0)),
    ("matmul", lambda: ops.matmul(A, M), lambda: A @ M),
    ("matmul_batched", lambda: ops.matmul(X3, M), lambda: X3 @ M),
    ("dot", lambda: ops.dot(X3, M), lambda: np.dot(X3, M)),
    ("dot_vector", lambda: ops.dot(A, M[:, 0]), lambda: np.dot(A, M[:, 0])),
    ("einsum", lambda: ops.einsum("ij,jk->ik", A, M), lambda: np.einsum("ij,jk->ik", A, M)),
    ("tensordot", lambda: ops.tensordot(X3, M, axes=([2], [0])),
     lambda: np.tensordot(X3, M, axes=([2], [0]))),
    ("outer", lambda: ops.outer(A[0], B[0]), lambda: np.outer(A[0], B[0])),
    ("sum", lambda: ops.sum(A), lambda: A.sum()),
    ("sum_axis_keepdims", lambda: ops.sum(X3, axis=(0, 2), keepdims=True),
     lambda: X3.sum(axis=(0, 2), keepdims=True)),
    ("mean", lambda: ops.mean(X3, axis=1), lambda: X3.mean(axis=1)),
    ("mean_keepdims", lambda: ops.mean(X3, axis=-1, keepdims=True),
     lambda: X3.mean(axis=-1, keepdims=True)),
    ("max", lambda: ops.max(A, axis=0), lambda: A.max(axis=0)),
    ("max_initial", lambda: ops.max(A, axis=0, initial=0.5), lambda: np.max(A, 0, initial=0.5)),
    ("min", lambda: ops.min(X3, axis=(1, 2)), lambda: X3.min(axis=(1, 2))),
    ("prod", lambda: ops.prod(J, axis=1), lambda: J.prod(axis=1)),
    ("argmax", lambda: ops.argmax(A, axis=1), lambda: A.argmax(axis=1)),
    ("argmax_flat", lambda: ops.argmax(A), lambda: A.argmax()),
    ("argmin", lambda: ops.argmin(A, axis=0), lambda: A.argmin(axis=0)),
    ("std", lambda: ops.std(A, axis=1), lambda: A.std(axis=1)),
    ("var", lambda: ops.var(X3), lambda: X3.var()),
    ("cumsum", lambda: ops.cumsum(A, axis=1), lambda: np.cumsum(A, axis=1)),
    ("cumsum_flat", lambda: ops.cumsum(I), lambda: np.cumsum(I)),
    ("cumprod", lambda: ops.cumprod(P, axis=0), lambda: np.cumprod(P, axis=0)),
    ("all", lambda: ops.all(A > -1, axis=1), lambda: np.all(A > -1, axis=1)),
    ("any", lambda: ops.any(A > 1), lambda: np.any(A > 1)),
    ("median", lambda: ops.median(A, axis=1), lambda: np.median(A, axis=1)),
    ("quantile", lambda: ops.quantile(A, 0.3, axis=0), lambda: np.quantile(A, 0.3, axis=0)),
    ("logsumexp", lambda: ops.logsumexp(A, axis=1),
     lambda: np.log(np.exp(A).sum(axis=1))),
    ("count_nonzero", lambda: ops.count_nonzero(I, axis=0), lambda: np.count_nonzero(I, axis=0)),
    ("average", lambda: ops.average(A, axis=1, weights=P[0]),
     lambda: np.average(A, axis=1, weights=P[0])),
    ("abs", lambda: ops.abs(I), lambda: np.abs(I)),
    ("square", lambda: ops.square(A), lambda: np.square(A)),
    ("sqrt", lambda: ops.sqrt(P), lambda: np.sqrt(P)),
    ("exp", lambda: ops.exp(A), lambda: np.exp(A)),
    ("log", lambda: ops.log(P), lambda: np.log(P)),
    ("log1p", lambda: ops.log1p(P), lambda: np.log1p(P)),
    ("expm1", lambda: ops.expm1(A), lambda: np.expm1(A)),
    ("log2", lambda: ops.log2(P), lambda: np.log2(P)),
    ("clip", lambda: ops.clip(A, -0.5, 0.5), lambda: np.clip(A, -0.5, 0.5)),
    ("where", lambda: ops.where(A > 0, A, B), lambda: np.where(A > 0, A, B)),
    ("floor", lambda: ops.floor(A * 3), lambda: np.floor(A * 3)),
    ("ceil", lambda: ops.ceil(A * 3), lambda: np.ceil(A * 3)),
    ("round", lambda: ops.round(A * 3), lambda: np.round(A * 3)),
    ("round_decimals", lambda: ops.round(A, 2), lambda: np.round(A, 2)),
    ("sign", lambda: ops.sign(A), lambda: np.sign(A)),
    ("negative", lambda: ops.negative(A), lambda: -A),
    ("reciprocal", lambda: ops.reciprocal(P), lambda: 1 / P),
    ("tanh", lambda: ops.tanh(A), lambda: np.tanh(A)),
    ("sin", lambda: ops.sin(A), lambda: np.sin(A)),
    ("cos", lambda: ops.cos(A), lambda: np.cos(A)),
    ("arctan2", lambda: ops.arctan2(A, B), lambda: np.arctan2(A, B)),
    ("arcsin", lambda: ops.arcsin(U), lambda: np.arcsin(U)),
    ("erf", lambda: ops.erf(A), lambda: _erf(A)),
    ("rsqrt", lambda: ops.rsqrt(P), lambda: 1 / np.sqrt(P)),
    ("equal", lambda: ops.equal(I, J), lambda: I == J),
    ("not_equal", lambda: ops.not_equal(I, J), lambda: I != J),
    ("greater", lambda: ops.greater(A, B), lambda: A > B),
    ("greater_equal", lambda: ops.greater_equal(I, 0), lambda: I >= 0),
    ("less", lambda: ops.less(A, B), lambda: A < B),
    ("less_equal", lambda: ops.less_equal(I, J), lambda: I <= J),
    ("logical_and", lambda: ops.logical_and(A > 0, B > 0), lambda: (A > 0) & (B > 0)),
    ("logical_or", lambda: ops.logical_or(A > 0, B > 0), lambda: (A > 0) | (B > 0)),
    ("logical_xor", lambda: ops.logical_xor(A > 0, B > 0), lambda: (A > 0) ^ (B > 0)),
    ("logical_not", lambda: ops.logical_not(A > 0), lambda: ~(A > 0)),
    ("isclose", lambda: ops.isclose(A, A + 1e-9), lambda: np.isclose(A, A + 1e-9)),
    ("isnan", lambda: ops.isnan(np.array([1.0, np.nan])), lambda: np.array([False, True])),
    ("nan_to_num", lambda: ops.nan_to_num(np.array([1.0, np.nan, np.inf], np.float32), posinf=9.0),
     lambda: np.nan_to_num(np.array([1.0, np.nan, np.inf], np.float32), posinf=9.0)),
    ("reshape", lambda: ops.reshape(X3, (4, -1)), lambda: X3.reshape(4, -1)),
    ("transpose", lambda: ops.transpose(X3, (2, 0, 1)), lambda: X3.transpose(2, 0, 1)),
    ("transpose_default", lambda: ops.transpose(X3), lambda: X3.T),
    ("expand_dims", lambda: ops.expand_dims(A, 1), lambda: np.expand_dims(A, 1)),
    ("expand_dims_neg", lambda: ops.expand_dims(A, -1), lambda: np.expand_dims(A, -1)),
    ("squeeze", lambda: ops.squeeze(A[:, :1], axis=1), lambda: A[:, :1].squeeze(1)),
    ("concatenate", lambda: ops.concatenate([A, B], axis=1), lambda: np.concatenate([A, B], 1)),
    ("stack", lambda: ops.stack([A, B], axis=1), lambda: np.stack([A, B], axis=1)),
    ("tile", lambda: ops.tile(A, (2, 1)), lambda: np.tile(A, (2, 1))),
    ("repeat", lambda: ops.repeat(A, 2, axis=1), lambda: np.repeat(A, 2, axis=1)),
    ("repeat_flat", lambda: ops.repeat(A, 2), lambda: np.repeat(A, 2)),
    ("flip", lambda: ops.flip(A, axis=1), lambda: np.flip(A, 1)),
    ("roll", lambda: ops.roll(A, 2, axis=1), lambda: np.roll(A, 2, axis=1)),
    ("roll_flat", lambda: ops.roll(A, 5), lambda: np.roll(A, 5)),
    ("moveaxis", lambda: ops.moveaxis(X3, 0, -1), lambda: np.moveaxis(X3, 0, -1)),
    ("swapaxes", lambda: ops.swapaxes(X3, 0, 2), lambda: np.swapaxes(X3, 0, 2)),
    ("broadcast_to", lambda: ops.broadcast_to(A[0], (2, 4)), lambda: np.broadcast_to(A[0], (2, 4))),
    ("arange", lambda: ops.arange(2, 11, 3), lambda: np.arange(2, 11, 3)),
    ("arange_float", lambda: ops.arange(0.0, 1.0, 0.25), lambda: np.arange(0.0, 1.0, 0.25)),
    ("linspace", lambda: ops.linspace(0, 1, 7), lambda: np.linspace(0, 1, 7)),
    ("linspace_noend", lambda: ops.linspace(2, 3, 5, endpoint=False),
     lambda: np.linspace(2, 3, 5, endpoint=False)),
    ("zeros", lambda: ops.zeros((2, 3)), lambda: np.zeros((2, 3))),
    ("ones", lambda: ops.ones(3), lambda: np.ones(3)),
    ("full", lambda: ops.full((2, 2), 7.0), lambda: np.full((2, 2), 7.0)),
    ("zeros_like", lambda: ops.zeros_like(I), lambda: np.zeros_like(I)),
    ("ones_like", lambda: ops.ones_like(A), lambda: np.ones_like(A)),
    ("full_like", lambda: ops.full_like(A, 3), lambda: np.full_like(A, 3)),
    ("eye", lambda: ops.eye(3, 4, k=1), lambda: np.eye(3, 4, k=1)),
    ("identity", lambda: ops.identity(3), lambda: np.identity(3)),
    ("tri", lambda: ops.tri(3, 4, k=-1), lambda: np.tri(3, 4, k=-1)),
    ("tril", lambda: ops.tril(A), lambda: np.tril(A)),
    ("triu", lambda: ops.triu(A, 1), lambda: np.triu(A, 1)),
    ("diag", lambda: ops.diag(A), lambda: np.diag(A)),
    ("diagonal", lambda: ops.diagonal(X3, axis1=1, axis2=2),
     lambda: np.diagonal(X3, axis1=1, axis2=2)),
    ("trace", lambda: ops.trace(A), lambda: np.trace(A)),
    ("sort", lambda: ops.sort(A, axis=0), lambda: np.sort(A, axis=0)),
    ("argsort", lambda: ops.argsort(A), lambda: np.argsort(A, kind="stable")),
    ("take", lambda: ops.take(A, [2, 0, -1], axis=1), lambda: np.take(A, [2, 0, -1], axis=1)),
    ("take_flat", lambda: ops.take(A, [[0, 5], [11, 3]]), lambda: np.take(A, [[0, 5], [11, 3]])),
    ("take_along_axis", lambda: ops.take_along_axis(A, np.argsort(A, 1), axis=1),
     lambda: np.take_along_axis(A, np.argsort(A, 1), axis=1)),
    ("split_0", lambda: ops.split(A, 2, axis=1)[0], lambda: np.split(A, 2, axis=1)[0]),
    ("split_indices", lambda: ops.split(A, [1, 3], axis=1)[2],
     lambda: np.split(A, [1, 3], axis=1)[2]),
    ("pad_constant", lambda: ops.pad(A, ((1, 0), (2, 1)), constant_values=5),
     lambda: np.pad(A, ((1, 0), (2, 1)), constant_values=5)),
    ("pad_reflect", lambda: ops.pad(A, ((2, 1), (3, 2)), mode="reflect"),
     lambda: np.pad(A, ((2, 1), (3, 2)), mode="reflect")),
    ("pad_symmetric", lambda: ops.pad(A, ((2, 1), (1, 2)), mode="symmetric"),
     lambda: np.pad(A, ((2, 1), (1, 2)), mode="symmetric")),
    ("pad_edge", lambda: ops.pad(A, ((1, 1), (0, 2)), mode="edge"),
     lambda: np.pad(A, ((1, 1), (0, 2)), mode="edge")),
    ("pad_wrap", lambda: ops.pad(A, ((1, 2), (3, 0)), mode="wrap"),
     lambda: np.pad(A, ((1, 2), (3, 0)), mode="wrap")),
    ("meshgrid_xy", lambda: ops.meshgrid(A[0], B[0, :3])[0], lambda: np.meshgrid(A[0], B[0, :3])[0]),
    ("meshgrid_ij", lambda: ops.meshgrid(A[0], B[0, :3], indexing="ij")[1],
     lambda: np.meshgrid(A[0], B[0, :3], indexing="ij")[1]),
    ("diff", lambda: ops.diff(A, axis=0), lambda: np.diff(A, axis=0)),
    ("searchsorted", lambda: ops.searchsorted(np.sort(A[0]), B[0]),
     lambda: np.searchsorted(np.sort(A[0]), B[0])),
    ("digitize", lambda: ops.digitize(A[0], [-1.0, 0.0, 1.0]),
     lambda: np.digitize(A[0], [-1.0, 0.0, 1.0])),
    ("bincount", lambda: ops.bincount(J.ravel()), lambda: np.bincount(J.ravel())),
    ("get_item", lambda: ops.get_item(X3, (slice(None), 1, slice(None, None, 2))),
     lambda: X3[:, 1, ::2]),
    ("norm_vector", lambda: ops.norm(A[0]), lambda: np.linalg.norm(A[0])),
    ("norm_axis", lambda: ops.norm(A, axis=1), lambda: np.linalg.norm(A, axis=1)),
    ("norm_ord1", lambda: ops.norm(A, ord=1, axis=0), lambda: np.linalg.norm(A, ord=1, axis=0)),
    ("norm_fro", lambda: ops.norm(A), lambda: np.linalg.norm(A)),
    ("norm_matrix_2", lambda: ops.norm(A, ord=2, axis=(0, 1)), lambda: np.linalg.norm(A, ord=2)),
    ("inv", lambda: ops.inv(SPD), lambda: np.linalg.inv(SPD)),
    ("det", lambda: ops.det(SPD), lambda: np.linalg.det(SPD)),
    ("solve", lambda: ops.solve(SPD, M), lambda: np.linalg.solve(SPD, M)),
    ("cholesky", lambda: ops.cholesky(SPD), lambda: np.linalg.cholesky(SPD)),
    ("eigh_values", lambda: ops.eigh(SPD)[0], lambda: np.linalg.eigh(SPD)[0]),
    ("svd_values", lambda: ops.svd(A, compute_uv=False), lambda: np.linalg.svd(A, compute_uv=False)),
    ("kron", lambda: ops.kron(A[:2, :2], B[:2, :2]), lambda: np.kron(A[:2, :2], B[:2, :2])),
    ("cross", lambda: ops.cross(A[:, :3], B[:, :3]), lambda: np.cross(A[:, :3], B[:, :3])),
    # nn
    ("relu", lambda: ops.relu(A), lambda: np.maximum(A, 0)),
    ("relu6", lambda: ops.relu6(A * 10), lambda: np.clip(A * 10, 0, 6)),
    ("sigmoid", lambda: ops.sigmoid(A), lambda: 1 / (1 + np.exp(-A))),
    ("softplus", lambda: ops.softplus(A), lambda: np.log1p(np.exp(A))),
    ("softsign", lambda: ops.softsign(A), lambda: A / (1 + np.abs(A))),
    ("silu", lambda: ops.silu(A), lambda: A / (1 + np.exp(-A))),
    ("swish", lambda: ops.swish(A), lambda: A / (1 + np.exp(-A))),
    ("gelu_tanh", lambda: ops.gelu(A), lambda: 0.5 * A * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (A + 0.044715 * A ** 3)))),
    ("gelu_exact", lambda: ops.gelu(A, approximate=False),
     lambda: 0.5 * A * (1 + _erf(A / np.sqrt(2)))),
    ("elu", lambda: ops.elu(A), lambda: np.where(A > 0, A, np.expm1(A))),
    ("selu", lambda: ops.selu(A), lambda: 1.0507009873554805 * np.where(
        A > 0, A, 1.6732632423543772 * np.expm1(A))),
    ("leaky_relu", lambda: ops.leaky_relu(A), lambda: np.where(A > 0, A, 0.2 * A)),
    ("hard_sigmoid", lambda: ops.hard_sigmoid(A * 4), lambda: np.clip(A * 4 + 3, 0, 6) / 6),
    ("log_sigmoid", lambda: ops.log_sigmoid(A), lambda: -np.log1p(np.exp(-A))),
    ("softmax", lambda: ops.softmax(A), lambda: _softmax(A)),
    ("softmax_axis0", lambda: ops.softmax(A, axis=0), lambda: _softmax(A, 0)),
    ("softmax_two_axes", lambda: ops.softmax(X3, axis=(1, 2)),
     lambda: np.exp(X3) / np.exp(X3).sum(axis=(1, 2), keepdims=True)),
    ("log_softmax", lambda: ops.log_softmax(A), lambda: np.log(_softmax(A))),
    ("one_hot", lambda: ops.one_hot(np.array([0, 2, -1, 3]), 3),
     lambda: np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float32)),
    ("one_hot_axis0", lambda: ops.one_hot(np.array([1, 0]), 3, axis=0),
     lambda: np.eye(3, dtype=np.float32)[[1, 0]].T),
    ("multi_hot", lambda: ops.multi_hot(np.array([[0, 2], [1, 1]]), 3),
     lambda: np.array([[1, 0, 1], [0, 1, 0]], np.float32)),
    ("categorical_crossentropy", lambda: ops.categorical_crossentropy(
        np.eye(4, dtype=np.float32)[[0, 3, 1]], _softmax(A)),
     lambda: -np.log(_softmax(A)[[0, 1, 2], [0, 3, 1]])),
    ("categorical_crossentropy_logits", lambda: ops.categorical_crossentropy(
        np.eye(4, dtype=np.float32)[[0, 3, 1]], A, from_logits=True),
     lambda: -np.log(_softmax(A)[[0, 1, 2], [0, 3, 1]])),
    ("sparse_categorical_crossentropy", lambda: ops.sparse_categorical_crossentropy(
        np.array([0, 3, 1]), _softmax(A)), lambda: -np.log(_softmax(A)[[0, 1, 2], [0, 3, 1]])),
    ("sparse_categorical_crossentropy_logits", lambda: ops.sparse_categorical_crossentropy(
        np.array([0, 3, 1]), A, from_logits=True),
     lambda: -np.log(_softmax(A)[[0, 1, 2], [0, 3, 1]])),
    ("binary_crossentropy", lambda: ops.binary_crossentropy((A > 0).astype(np.float32),
                                                            1 / (1 + np.exp(-B))),
     lambda: -((A > 0) * np.log(1 / (1 + np.exp(-B)))
               + (A <= 0) * np.log(1 - 1 / (1 + np.exp(-B))))),
    ("binary_crossentropy_logits", lambda: ops.binary_crossentropy(
        (A > 0).astype(np.float32), B, from_logits=True),
     lambda: -((A > 0) * np.log(1 / (1 + np.exp(-B)))
               + (A <= 0) * np.log(1 - 1 / (1 + np.exp(-B))))),
    ("moments_mean", lambda: ops.moments(X3, axes=[0, 1])[0], lambda: X3.mean(axis=(0, 1))),
    ("moments_var", lambda: ops.moments(X3, axes=[0, 1], keepdims=True)[1],
     lambda: X3.var(axis=(0, 1), keepdims=True)),
    ("normalize", lambda: ops.normalize(A), lambda: A / np.linalg.norm(A, axis=-1, keepdims=True)),
    ("batch_normalization", lambda: ops.batch_normalization(
        A, A.mean(0), A.var(0), axis=1, offset=B[0], scale=P[0]),
     lambda: (A - A.mean(0)) / np.sqrt(A.var(0) + 1e-3) * P[0] + B[0]),
    ("top_k_values", lambda: ops.top_k(A, 2)[0], lambda: -np.sort(-A, axis=1)[:, :2]),
    ("top_k_indices", lambda: ops.top_k(A, 2)[1], lambda: np.argsort(-A, axis=1)[:, :2]),
    ("in_top_k", lambda: ops.in_top_k(np.array([0, 1, 2]), A, 2),
     lambda: np.array([np.sum(A[i] > A[i, t]) < 2 for i, t in enumerate([0, 1, 2])])),
    ("segment_sum", lambda: ops.segment_sum(A, np.array([0, 0, 2]), num_segments=3),
     lambda: np.stack([A[0] + A[1], np.zeros(4), A[2]])),
    ("segment_max", lambda: ops.segment_max(A, np.array([1, 0, 1])),
     lambda: np.stack([A[1], np.maximum(A[0], A[2])])),
    ("scatter", lambda: ops.scatter(np.array([[0, 1], [2, 3], [0, 1]]), np.array([1.0, 2.0, 3.0]),
                                    (3, 4)),
     lambda: np.array([[0, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]], np.float32)),
    ("scatter_update", lambda: ops.scatter_update(A, np.array([[1, 1]]), np.array([9.0])),
     lambda: np.where(np.arange(12).reshape(3, 4) == 5, np.float32(9.0), A)),
    ("slice", lambda: ops.slice(X3, (1, 0, 1), (1, 2, 3)), lambda: X3[1:2, 0:2, 1:4]),
    ("slice_update", lambda: ops.slice_update(A, (1, 1), np.zeros((2, 2), np.float32)),
     lambda: np.where((np.arange(3)[:, None] >= 1) & (np.arange(4) >= 1) & (np.arange(4) < 3),
                      0, A)),
    ("cast", lambda: ops.cast(A * 3, "int32"), lambda: (A * 3).astype(np.int32)),
    ("stop_gradient", lambda: ops.stop_gradient(A), lambda: A),
    ("convert_to_tensor", lambda: ops.convert_to_tensor([[1, 2], [3, 4]]),
     lambda: np.array([[1, 2], [3, 4]])),
]


@pytest.mark.parametrize("name,call,reference", CASES, ids=[c[0] for c in CASES])
def test_op_matches_numpy(name, call, reference):
    got = ops.convert_to_numpy(call())
    want = np.asarray(reference())
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2e-5,
                                   atol=2e-5, err_msg=name)


I32 = np.ones(3, np.int32)
I64 = np.ones(3, np.int64)
I8 = np.ones(3, np.int8)
U8 = np.ones(3, np.uint8)
F16 = np.ones(3, np.float16)
F64 = np.ones(3, np.float64)
BOOL = np.ones(3, bool)

# Keras 3 dtype results (from Keras's promotion lattice; checked against real Keras in
# test_keras_ops_parity.py where it is installed).
DTYPE_CASES = [
    ("sum_int32", lambda: ops.sum(I32), "int32"),
    ("sum_bool", lambda: ops.sum(BOOL), "int32"),
    ("sum_int8", lambda: ops.sum(I8), "int32"),
    ("mean_int32", lambda: ops.mean(I32), "float32"),
    ("divide_int", lambda: ops.divide(I32, I32), "float32"),
    ("arange_int", lambda: ops.arange(5), "int32"),
    ("arange_float", lambda: ops.arange(0, 1, 0.5), "float32"),
    ("argmax", lambda: ops.argmax(F64), "int32"),
    ("python_int_list", lambda: ops.convert_to_tensor([1, 2]), "int32"),
    ("python_float_list", lambda: ops.convert_to_tensor([1.0]), "float32"),
    ("numpy_float64_kept", lambda: ops.convert_to_tensor(F64), "float64"),
    ("int_plus_python_float", lambda: ops.add(I32, 1.5), "float32"),
    ("uint8_plus_python_int", lambda: ops.add(U8, 1), "uint8"),
    ("uint8_plus_int8", lambda: ops.add(U8, I8), "int16"),
    ("int64_plus_float16", lambda: ops.add(I64, F16), "float16"),
    ("bool_plus_python_int", lambda: ops.add(BOOL, 1), "int32"),
    ("int8_times_python_int", lambda: ops.multiply(I8, 2), "int8"),
    ("float64_plus_float64", lambda: ops.add(F64, F64), "float64"),
    ("exp_int64", lambda: ops.exp(I64), "float32"),
    ("exp_float64", lambda: ops.exp(F64), "float64"),
    ("sqrt_int", lambda: ops.sqrt(I32), "float32"),
    ("floor_int", lambda: ops.floor(I8), "float32"),
    ("abs_int8", lambda: ops.abs(I8), "int8"),
    ("square_bool", lambda: ops.square(BOOL), "int32"),
    ("matmul_int8", lambda: ops.matmul(I8, I8), "int32"),
    ("where_python_ints", lambda: ops.where(BOOL, 1, 0), "int32"),
    ("where_float_int8", lambda: ops.where(BOOL, 1.0, I8), "float32"),
    ("clip_int8", lambda: ops.clip(I8, 0, 1), "int8"),
    ("clip_int8_float_bounds", lambda: ops.clip(I8, 0.0, 1.5), "float32"),
    ("power_int", lambda: ops.power(I32, 2), "int32"),
    ("power_int_float", lambda: ops.power(I32, 0.5), "float32"),
    ("cumsum_int32", lambda: ops.cumsum(I32), "int32"),
    ("zeros", lambda: ops.zeros(2), "float32"),
    ("one_hot", lambda: ops.one_hot(I32, 3), "float32"),
    ("greater", lambda: ops.greater(I32, 0), "bool"),
    ("top_k_indices", lambda: ops.top_k(F64, 1)[1], "int64"),  # Keras torch backend: int64
    ("full", lambda: ops.full((2,), 3), "float32"),
]


@pytest.mark.parametrize("name,call,dtype", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_keras_dtype_rules(name, call, dtype):
    assert ops.dtype(call()) == dtype


def test_result_type_lattice():
    assert ops.result_type("int32", "float16") == "float16"
    assert ops.result_type("bfloat16", "float16") == "float32"
    assert ops.result_type("uint32", "int8") == "int64"
    assert ops.result_type("uint64", "int8") == "float32"
    assert ops.result_type("bool", int) == "int32"
    assert ops.result_type("int16", float) == "float32"
    assert ops.result_type("float16", float) == "float16"


def test_ops_keep_gradients_and_device():
    w = torch.ones(3, requires_grad=True)
    loss = ops.sum(ops.square(ops.multiply(w, 2.0)))
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full(3, 8.0))
    assert ops.stop_gradient(w).requires_grad is False


def test_shape_helpers():
    assert ops.shape(A) == (3, 4)
    assert ops.ndim(X3) == 3 and ops.size(X3) == 24
    assert ops.is_tensor(torch.ones(1)) and not ops.is_tensor(A)
    assert ops.cond(ops.sum(A) > -100, lambda: 1, lambda: 2) == 1
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 0) == 6
    assert ops.while_loop(lambda v: v < 5, lambda v: v + 2, 0) == 6
    mapped = ops.vectorized_map(lambda row: ops.sum(row), torch.as_tensor(A))
    np.testing.assert_allclose(mapped.numpy(), A.sum(1), rtol=1e-6)
    np.testing.assert_allclose(ops.map(lambda row: row * 2, torch.as_tensor(A)).numpy(), A * 2)
    mean, var = ops.moments(A, axes=0)
    assert mean.shape == (4,) and var.shape == (4,)


def test_conv_and_pool_against_reference():
    images = RNG.standard_normal((2, 5, 6, 3)).astype(np.float32)
    kernel = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)
    out = ops.convert_to_numpy(ops.conv(images, kernel, padding="valid"))
    ref = np.zeros((2, 3, 4, 4), np.float32)
    for i in range(3):
        for j in range(4):
            ref[:, i, j, :] = np.einsum("nhwc,hwco->no", images[:, i:i + 3, j:j + 3, :], kernel)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    same = ops.conv(images, kernel, strides=2, padding="same")
    assert tuple(same.shape) == (2, 3, 3, 4)
    pooled = ops.convert_to_numpy(ops.max_pool(images, 2))
    np.testing.assert_allclose(pooled, images[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
    avg = ops.convert_to_numpy(ops.average_pool(images, 2, padding="same"))
    assert avg.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(avg[:, 2, 0], images[:, 4, 0:2].mean(axis=1), rtol=1e-5)


def test_dot_product_attention_matches_softmax_formula():
    q, k, v = (RNG.standard_normal((2, 3, 2, 4)).astype(np.float32) for _ in range(3))
    out = ops.convert_to_numpy(ops.dot_product_attention(q, k, v, is_causal=True))
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / 2.0
    logits = np.where(np.tril(np.ones((3, 3), bool)), logits, -np.inf)
    ref = np.einsum("bhqk,bkhd->bqhd", _softmax(logits), v)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_image_resize_and_grayscale():
    images = RNG.uniform(size=(1, 4, 4, 3)).astype(np.float32)
    up = ops.image.resize(images, (8, 8), interpolation="nearest")
    np.testing.assert_allclose(ops.convert_to_numpy(up), images.repeat(2, 1).repeat(2, 2))
    down = ops.image.resize(images, (2, 2), interpolation="bilinear")
    np.testing.assert_allclose(ops.convert_to_numpy(down)[0, 0, 0],
                               images[0, :2, :2].mean(axis=(0, 1)), rtol=1e-5)
    gray = ops.convert_to_numpy(ops.image.rgb_to_grayscale(images))
    np.testing.assert_allclose(gray[..., 0], images @ np.array([0.2989, 0.5870, 0.1140]),
                               rtol=1e-5)


def test_extract_patches_layout():
    images = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    patches = ops.convert_to_numpy(ops.image.extract_patches(images, 2))
    assert patches.shape == (2, 2, 3, 12)
    # patch (row 1, col 2) of image 1: pixels [2:4, 4:6], flattened row by row, channels last
    np.testing.assert_array_equal(patches[1, 1, 2], images[1, 2:4, 4:6].reshape(-1))


def test_unknown_op_names_the_api_and_docs():
    with pytest.raises(NotSupportedError, match=r"keras\.ops\.not_an_op.*docs/keras_api\.md"):
        ops.not_an_op  # noqa: B018 - attribute access is the call under test
    with pytest.raises(NotImplementedError):
        ops.no_such_op(1)
    assert not hasattr(ops, "no_such_op")
    with pytest.raises(NotSupportedError, match=r"keras\.ops\.image\.not_an_op"):
        ops.image.not_an_op  # noqa: B018
    assert issubclass(type(pytest.raises), object)


@pytest.mark.parametrize("call,error", [
    (lambda: ops.split(A, 3, axis=1), ValueError),
    (lambda: ops.squeeze(A, axis=0), ValueError),
    (lambda: ops.pad(A, ((1, 1), (1, 1)), mode="mirror"), ValueError),
    (lambda: ops.categorical_crossentropy(A[:, :3], A), ValueError),
    (lambda: ops.sparse_categorical_crossentropy(np.array([0, 1]), A), ValueError),
    (lambda: ops.normalize(A, order=0), ValueError),
    (lambda: ops.sum(A, axis=5), ValueError),
    (lambda: ops.convert_to_tensor(["a", "b"]), TypeError),
    (lambda: ops.cast(A, "float13"), ValueError),
    (lambda: ops.one_hot([1], 3, sparse=True), NotImplementedError),
    (lambda: ops.convert_to_tensor(A, sparse=True), NotImplementedError),
    (lambda: ops.image.resize(np.ones((1, 4, 4, 3)), (2, 2), interpolation="lanczos9"),
     NotImplementedError),
])
def test_bad_input_raises_clear_errors(call, error):
    with pytest.raises(error):
        call()


def test_bigmodel_errors_for_unsupported():
    with pytest.raises(BigModelError):
        ops.one_hot([1], 3, sparse=True)
    with pytest.raises(BigModelError):
        ops.convert_to_tensor(["a"])


def _conv_transpose_reference(x, kernel, stride, padding):
    """1-D transposed convolution by scattering each input into the output (Keras lengths)."""
    n, k = x.shape[1], kernel.shape[0]
    full = np.zeros((x.shape[0], (n - 1) * stride + k, kernel.shape[1]), np.float64)
    for i in range(n):
        full[:, i * stride:i * stride + k] += np.einsum("bc,koc->bko", x[:, i], kernel)
    if padding == "valid":
        length, before = n * stride + max(k - stride, 0), 0
    else:
        length, before = n * stride, max(k - stride, 0) // 2
    out = np.zeros((x.shape[0], length, kernel.shape[1]))
    part = full[:, before:before + length]
    out[:, :part.shape[1]] = part
    return out


@pytest.mark.parametrize("stride,padding,k", [(1, "valid", 3), (2, "valid", 3), (3, "valid", 2),
                                              (2, "same", 3), (2, "same", 4), (1, "same", 3)])
def test_conv_transpose_lengths_and_values(stride, padding, k):
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    kernel = RNG.standard_normal((k, 4, 3)).astype(np.float32)  # (window, out, in)
    got = ops.convert_to_numpy(ops.conv_transpose(x, kernel, strides=stride, padding=padding))
    np.testing.assert_allclose(got, _conv_transpose_reference(x, kernel, stride, padding),
                               rtol=1e-4, atol=1e-4)


def test_depth_space_round_trip_and_separable_conv():
    x = RNG.standard_normal((1, 4, 6, 8)).astype(np.float32)
    deep = ops.space_to_depth(x, 2)
    assert tuple(deep.shape) == (1, 2, 3, 32)
    np.testing.assert_allclose(ops.convert_to_numpy(deep)[0, 0, 0, :8], x[0, 0, 0])
    np.testing.assert_allclose(ops.convert_to_numpy(ops.depth_to_space(deep, 2)), x)
    depthwise = RNG.standard_normal((3, 3, 8, 1)).astype(np.float32)
    pointwise = RNG.standard_normal((1, 1, 8, 5)).astype(np.float32)
    out = ops.separable_conv(x, depthwise, pointwise, padding="same")
    step = ops.conv(ops.depthwise_conv(x, depthwise, padding="same"), pointwise)
    np.testing.assert_allclose(ops.convert_to_numpy(out), ops.convert_to_numpy(step), rtol=1e-5)
    assert tuple(out.shape) == (1, 4, 6, 5)


NAN = np.where(A > 1.0, np.nan, A).astype(np.float32)

EXTRA_CASES = [
    ("nansum", lambda: ops.nansum(NAN, axis=1), lambda: np.nansum(NAN, axis=1)),
    ("nanmean", lambda: ops.nanmean(NAN, axis=0), lambda: np.nanmean(NAN, axis=0)),
    ("nanvar", lambda: ops.nanvar(NAN), lambda: np.nanvar(NAN)),
    ("nanstd", lambda: ops.nanstd(NAN, axis=1, keepdims=True),
     lambda: np.nanstd(NAN, axis=1, keepdims=True)),
    ("nanmax", lambda: ops.nanmax(NAN, axis=1), lambda: np.nanmax(NAN, axis=1)),
    ("nanmin", lambda: ops.nanmin(NAN), lambda: np.nanmin(NAN)),
    ("nanprod", lambda: ops.nanprod(NAN, axis=0), lambda: np.nanprod(NAN, axis=0)),
    ("nanargmax", lambda: ops.nanargmax(NAN, axis=1), lambda: np.nanargmax(NAN, axis=1)),
    ("nanargmin", lambda: ops.nanargmin(NAN), lambda: np.nanargmin(NAN)),
    ("nancumsum", lambda: ops.nancumsum(NAN, axis=1), lambda: np.nancumsum(NAN, axis=1)),
    ("nanmedian", lambda: ops.nanmedian(NAN, axis=1), lambda: np.nanmedian(NAN, axis=1)),
    ("nanpercentile", lambda: ops.nanpercentile(NAN, 30, axis=0),
     lambda: np.nanpercentile(NAN, 30, axis=0)),
    ("fliplr", lambda: ops.fliplr(A), lambda: np.fliplr(A)),
    ("flipud", lambda: ops.flipud(A), lambda: np.flipud(A)),
    ("rot90", lambda: ops.rot90(A, 3), lambda: np.rot90(A, 3)),
    ("hsplit", lambda: ops.hsplit(A, 2)[1], lambda: np.hsplit(A, 2)[1]),
    ("vsplit", lambda: ops.vsplit(A, [1])[1], lambda: np.vsplit(A, [1])[1]),
    ("dsplit", lambda: ops.dsplit(X3, 2)[0], lambda: np.dsplit(X3, 2)[0]),
    ("diagflat", lambda: ops.diagflat(A[:2, :2], 1), lambda: np.diagflat(A[:2, :2], 1)),
    ("isin", lambda: ops.isin(I, [0, 1, 2]), lambda: np.isin(I, [0, 1, 2])),
    ("isposinf", lambda: ops.isposinf(np.array([np.inf, -np.inf, 1.0])),
     lambda: np.isposinf(np.array([np.inf, -np.inf, 1.0]))),
    ("erfc", lambda: ops.erfc(A), lambda: 1 - _erf(A)),
    ("gcd", lambda: ops.gcd(I, J), lambda: np.gcd(I, J)),
    ("lcm", lambda: ops.lcm(I, J), lambda: np.lcm(I, J)),
    ("ldexp", lambda: ops.ldexp(A, J), lambda: np.ldexp(A, J)),
    ("geomspace", lambda: ops.geomspace(1, 1000, 4), lambda: np.geomspace(1, 1000, 4)),
    ("trapezoid", lambda: ops.trapezoid(A, dx=0.5), lambda: np.trapezoid(A, dx=0.5)),
    ("trapezoid_x", lambda: ops.trapezoid(A, x=P[0]), lambda: np.trapezoid(A, x=P[0])),
    ("vander", lambda: ops.vander(J[0], 3), lambda: np.vander(J[0], 3)),
    ("unravel_index", lambda: ops.stack(ops.unravel_index([3, 7, 11], (3, 4))),
     lambda: np.stack(np.unravel_index([3, 7, 11], (3, 4)))),
    ("corrcoef", lambda: ops.corrcoef(A), lambda: np.corrcoef(A)),
    ("cdist", lambda: ops.cdist(A, B), lambda: np.sqrt(((A[:, None] - B[None]) ** 2).sum(-1))),
    ("hamming", lambda: ops.hamming(7), lambda: np.hamming(7)),
    ("hanning", lambda: ops.hanning(6), lambda: np.hanning(6)),
    ("blackman", lambda: ops.blackman(5), lambda: np.blackman(5)),
    ("bartlett", lambda: ops.bartlett(5), lambda: np.bartlett(5)),
    ("kaiser", lambda: ops.kaiser(6, 3.0), lambda: np.kaiser(6, 3.0)),
    ("histogram_counts", lambda: ops.histogram(A.ravel(), bins=4)[0],
     lambda: np.histogram(A.ravel(), bins=4)[0]),
    ("histogram_edges", lambda: ops.histogram(A.ravel(), bins=4, range=(-2, 2))[1],
     lambda: np.histogram(A.ravel(), bins=4, range=(-2, 2))[1]),
    ("unique", lambda: ops.unique(I), lambda: np.unique(I)),
    ("unique_counts", lambda: ops.unique(I, return_counts=True)[1],
     lambda: np.unique(I, return_counts=True)[1]),
    ("switch", lambda: ops.switch(1, [lambda v: v * 2, lambda v: v + 1], A), lambda: A + 1),
    ("correlate_valid", lambda: ops.correlate(A[0], B[0, :2]),
     lambda: np.correlate(A[0], B[0, :2])),
    ("correlate_same", lambda: ops.correlate(A[0], B[0, :3], mode="same"),
     lambda: np.correlate(A[0], B[0, :3], mode="same")),
    ("correlate_full_short_first", lambda: ops.correlate(A[0, :2], B[0], mode="full"),
     lambda: np.correlate(A[0, :2], B[0], mode="full")),
    ("fft_real", lambda: ops.fft((A, B))[0], lambda: np.fft.fft(A + 1j * B).real),
    ("fft2_imag", lambda: ops.fft2((A, B))[1], lambda: np.fft.fft2(A + 1j * B).imag),
    ("ifft2_real", lambda: ops.ifft2((A, B))[0], lambda: np.fft.ifft2(A + 1j * B).real),
    ("rfft_imag", lambda: ops.rfft(A)[1], lambda: np.fft.rfft(A).imag),
    ("irfft", lambda: ops.irfft(ops.rfft(A), 4), lambda: A),
    ("segment_prod", lambda: ops.segment_prod(A, np.array([0, 0, 2]), num_segments=3),
     lambda: np.stack([A[0] * A[1], np.ones(4), A[2]])),
    ("eig_values", lambda: ops.sort(ops.real(ops.eig(SPD)[0])), lambda: np.linalg.eigvalsh(SPD)),
    ("cholesky_inverse", lambda: ops.cholesky_inverse(np.linalg.cholesky(SPD)),
     lambda: np.linalg.inv(SPD)),
    ("polar", lambda: ops.view_as_real(ops.polar(P[0], A[0])),
     lambda: np.stack([P[0] * np.cos(A[0]), P[0] * np.sin(A[0])], -1)),
    ("sparse_sigmoid", lambda: ops.sparse_sigmoid(A * 2), lambda: np.clip((A * 2 + 1) / 2, 0, 1)),
    ("sparsemax", lambda: ops.sparsemax(np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.15]])),
     lambda: np.array([[0.0, 0.0, 1.0], [0.2833333, 0.3833333, 0.3333333]])),
    ("psnr", lambda: ops.psnr(P, P + 0.1, 2.0), lambda: 20 * np.log10(2.0) - 10 * np.log10(0.01)),
    ("adaptive_average_pool", lambda: ops.adaptive_average_pool(X3[..., None], (1, 2))[..., 0],
     lambda: X3.reshape(2, 1, 3, 2, 2).mean(axis=(2, 4))),
    ("adaptive_max_pool", lambda: ops.adaptive_max_pool(X3[..., None], (3, 1))[..., 0],
     lambda: X3.max(axis=2, keepdims=True)),
]


@pytest.mark.parametrize("name,call,reference", EXTRA_CASES, ids=[c[0] for c in EXTRA_CASES])
def test_less_common_op_matches_numpy(name, call, reference):
    test_op_matches_numpy(name, call, reference)
