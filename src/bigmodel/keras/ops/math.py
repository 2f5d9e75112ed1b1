"""``keras.ops`` from Keras's ``math`` module: segment reductions, top-k, erf, rsqrt, sequences."""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor
from bigmodel.keras.ops.node import keras_op


def _segment(reduce: str, data: Any, segment_ids: Any, num_segments: int | None) -> torch.Tensor:
    data = convert_to_tensor(data)
    ids = convert_to_tensor(segment_ids, device=data.device).long()
    count = int(ids.max().item()) + 1 if num_segments is None else int(num_segments)
    valid = (ids >= 0) & (ids < count)  # out-of-range ids are dropped, as in Keras
    data, ids = data[valid], ids[valid]
    out = torch.zeros((count, *data.shape[1:]), dtype=data.dtype, device=data.device)
    index = ids.reshape(-1, *([1] * (data.dim() - 1))).expand_as(data)
    # Empty segments: 0 for sums, the dtype's lowest/highest value for max/min (as Keras/TF).
    return out.scatter_reduce(0, index, data, reduce=reduce, include_self=(reduce == "sum"))


@keras_op()
def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> torch.Tensor:  # noqa: A002 - Keras's name
    """Sum of the rows of ``data`` in each segment (``segment_ids`` along axis 0)."""
    return _segment("sum", data, segment_ids, num_segments)


@keras_op()
def segment_max(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> torch.Tensor:  # noqa: A002
    """Maximum of the rows of ``data`` in each segment (-inf, or the lowest int, when empty)."""
    data = convert_to_tensor(data)
    out = _segment("amax", data, segment_ids, num_segments)
    low = -torch.inf if data.is_floating_point() else torch.iinfo(data.dtype).min
    counts = _segment("sum", torch.ones(data.shape[0], dtype=torch.int32, device=data.device),
                      segment_ids, out.shape[0])
    empty = (counts == 0).reshape(-1, *([1] * (data.dim() - 1)))
    return torch.where(empty, torch.full_like(out, low), out)


@keras_op()
def segment_min(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> torch.Tensor:  # noqa: A002
    """Minimum of the rows of ``data`` in each segment."""
    return -segment_max(-convert_to_tensor(data), segment_ids, num_segments)


@keras_op()
def top_k(x: Any, k: int, sorted: bool = True) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002
    """The ``k`` largest values along the last axis and their indices (int64, as Keras's torch
    backend returns them)."""
    values, indices = torch.topk(convert_to_tensor(x), k, dim=-1, sorted=sorted)
    return values, indices


@keras_op()
def in_top_k(targets: Any, predictions: Any, k: int) -> torch.Tensor:
    """Whether each target class is among the ``k`` highest ``predictions`` of its row (bool)."""
    predictions = as_float(predictions)
    targets = convert_to_tensor(targets, device=predictions.device).long()
    target_score = torch.gather(predictions, 1, targets.unsqueeze(1))
    higher = (predictions > target_score).sum(dim=1)
    return higher < k


@keras_op()
def erf(x: Any) -> torch.Tensor:
    """Gauss error function."""
    return torch.erf(as_float(x))


@keras_op()
def erfinv(x: Any) -> torch.Tensor:
    """Inverse error function."""
    return torch.erfinv(as_float(x))


@keras_op()
def rsqrt(x: Any) -> torch.Tensor:
    """1 / sqrt(x)."""
    return torch.rsqrt(as_float(x))


@keras_op()
def logdet(x: Any) -> torch.Tensor:
    """log(det(x)) of (batches of) positive-definite matrices."""
    return torch.logdet(as_float(x))


@keras_op()
def extract_sequences(x: Any, sequence_length: int, sequence_stride: int) -> torch.Tensor:
    """Frames of the last axis: ``(..., num_frames, sequence_length)``."""
    return convert_to_tensor(x).unfold(-1, sequence_length, sequence_stride)


@keras_op()
def segment_prod(data: Any, segment_ids: Any, num_segments: int | None = None,
                 sorted: bool = False) -> torch.Tensor:  # noqa: A002
    """Product of the rows of ``data`` in each segment (1 for empty segments)."""
    data = convert_to_tensor(data)
    ids = convert_to_tensor(segment_ids, device=data.device).long()
    count = int(ids.max().item()) + 1 if num_segments is None else int(num_segments)
    valid = (ids >= 0) & (ids < count)
    data, ids = data[valid], ids[valid]
    out = torch.ones((count, *data.shape[1:]), dtype=data.dtype, device=data.device)
    index = ids.reshape(-1, *([1] * (data.dim() - 1))).expand_as(data)
    return out.scatter_reduce(0, index, data, reduce="prod", include_self=True)


# ------------------------------------------------------------------------------ Fourier transforms
# Keras passes complex values as a (real, imaginary) pair of float tensors.
def _complex(x: Any) -> torch.Tensor:
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(f"expected a (real, imaginary) pair of tensors; received "
                         f"{type(x).__name__}")
    real, imag = (as_float(v) for v in x)
    if real.shape != imag.shape:
        raise ValueError(f"real and imaginary parts must have the same shape; received "
                         f"{tuple(real.shape)} and {tuple(imag.shape)}")
    return torch.complex(real, imag.to(real.dtype))


def _pair(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.real(z).contiguous(), torch.imag(z).contiguous()


@keras_op()
def fft(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """FFT along the last axis of a (real, imaginary) pair; returns such a pair."""
    return _pair(torch.fft.fft(_complex(x)))


@keras_op()
def fft2(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D FFT over the last two axes of a (real, imaginary) pair."""
    return _pair(torch.fft.fft2(_complex(x)))


@keras_op()
def ifft2(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse 2-D FFT over the last two axes of a (real, imaginary) pair."""
    return _pair(torch.fft.ifft2(_complex(x)))


@keras_op()
def rfft(x: Any, fft_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FFT of a real signal along the last axis: the ``fft_length // 2 + 1`` non-negative
    frequencies as a (real, imaginary) pair."""
    return _pair(torch.fft.rfft(as_float(x), n=fft_length))


@keras_op()
def irfft(x: Any, fft_length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`rfft`: a real signal from a (real, imaginary) pair."""
    return torch.fft.irfft(_complex(x), n=fft_length)
