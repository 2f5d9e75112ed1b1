"""``keras.ops`` from Keras's ``math`` module: segment reductions, top-k, erf, rsqrt, sequences."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, InputTypeError
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


# ------------------------------------------------------------------------ short-time Fourier transform
def _stft_window(op: str, window: Any, sequence_length: int, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor | None:
    if window is None:
        return None
    if isinstance(window, str):
        makers = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        if window not in makers:
            raise ConfigError(f"keras.ops.{op}: window must be 'hann', 'hamming', a tensor or "
                              f"None; received window={window!r}")
        return makers[window](sequence_length, periodic=True, dtype=dtype, device=device)
    win = convert_to_tensor(window).to(dtype=dtype, device=device)
    if win.dim() != 1 or win.shape[0] != sequence_length:
        raise ConfigError(f"keras.ops.{op}: window must have shape (sequence_length,) = "
                          f"({sequence_length},); received shape {tuple(win.shape)}")
    return win


def _check_stft_sizes(op: str, sequence_length: Any, sequence_stride: Any,
                      fft_length: Any) -> None:
    for name, value in (("sequence_length", sequence_length),
                        ("sequence_stride", sequence_stride), ("fft_length", fft_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"keras.ops.{op}: {name} must be a positive integer; received "
                              f"{name}={value!r}")
    if fft_length < sequence_length:
        raise ConfigError(f"keras.ops.{op}: fft_length must be >= sequence_length; received "
                          f"sequence_length={sequence_length}, fft_length={fft_length}")


@keras_op()
def stft(x: Any, sequence_length: int, sequence_stride: int, fft_length: int,
         window: Any = "hann", center: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Short-time Fourier transform along the last axis of a float signal.

    Args:
        x: float32/float64 signal ``(..., samples)``.
        sequence_length: frame (window) length; sequence_stride: hop between frames.
        fft_length: FFT size (>= ``sequence_length``; the window is centred in it).
        window: ``"hann"``, ``"hamming"`` (periodic), a ``(sequence_length,)`` tensor or None.
        center: reflect-pad ``fft_length // 2`` samples on both sides so frame ``t`` is
            centred at ``t * sequence_stride``.

    Returns:
        ``(real, imag)``, each ``(..., frames, fft_length // 2 + 1)``.

    Raises:
        InputTypeError: ``x`` not float32/float64. ConfigError: bad sizes or window.
    """
    _check_stft_sizes("stft", sequence_length, sequence_stride, fft_length)
    x = convert_to_tensor(x)
    if x.dtype not in (torch.float32, torch.float64):
        raise InputTypeError(f"keras.ops.stft: x must be float32 or float64; received "
                             f"{str(x.dtype).replace('torch.', '')}")
    win = _stft_window("stft", window, sequence_length, x.dtype, x.device)
    if win is None:
        win = torch.ones(sequence_length, dtype=x.dtype, device=x.device)
    *batch, samples = x.shape
    spectrum = torch.stft(x.reshape(-1, samples), n_fft=fft_length, hop_length=sequence_stride,
                          win_length=sequence_length, window=win, center=center,
                          return_complex=True)  # (B, bins, frames)
    spectrum = spectrum.reshape(*batch, *spectrum.shape[-2:]).transpose(-2, -1)
    return _pair(spectrum)


@keras_op()
def istft(x: Any, sequence_length: int, sequence_stride: int, fft_length: int,
          length: int | None = None, window: Any = "hann", center: bool = True) -> torch.Tensor:
    """Inverse of :func:`stft` (same arguments): the signal from ``(real, imag)`` frames.

    With ``sequence_length == fft_length``, ``center`` and a window, this is torch's ``istft``
    (divided by the summed squared windows); otherwise, as Keras, each frame's inverse FFT is
    multiplied by the window divided by the sum of the squared windows overlapping it
    (TensorFlow's ``inverse_stft_window_fn``) and the frames are overlap-added.

    Args:
        x: ``(real, imag)``, each ``(..., frames, fft_length // 2 + 1)``.
        length: the output length (cut or zero-padded); default: all samples.

    Returns:
        The signal ``(..., samples)``.

    Raises:
        ConfigError: bad sizes or window; ValueError: ``x`` not a (real, imag) pair.
    """
    _check_stft_sizes("istft", sequence_length, sequence_stride, fft_length)
    spectrum = _complex(x)
    if spectrum.dim() < 2:
        raise ConfigError(f"keras.ops.istft: x must have rank >= 2 (frames, bins); received "
                          f"shape {tuple(spectrum.shape)}")
    dtype = spectrum.real.dtype
    win = _stft_window("istft", window, sequence_length, dtype, spectrum.device)
    *batch, frames, bins = spectrum.shape
    flat = spectrum.reshape(-1, frames, bins)
    if sequence_length == fft_length and center and win is not None:
        out = torch.istft(flat.transpose(-2, -1), n_fft=fft_length, hop_length=sequence_stride,
                          win_length=sequence_length, window=win, center=True, length=length)
        return out.reshape(*batch, out.shape[-1])
    frames_time = torch.fft.irfft(flat, n=fft_length)  # (B, frames, fft_length)
    if win is not None:
        left = (fft_length - sequence_length) // 2
        win = F.pad(win, (left, fft_length - sequence_length - left))
        # the squared windows that overlap each sample, summed over the hop's period
        period = -(-fft_length // sequence_stride) * sequence_stride
        squares = F.pad(win.square(), (0, period - fft_length)).reshape(-1, sequence_stride)
        denominator = squares.sum(0).repeat(period // sequence_stride)[:fft_length]
        frames_time = frames_time * (win / denominator)
    total = fft_length + sequence_stride * (frames - 1)
    signal = F.fold(frames_time.transpose(1, 2), output_size=(1, total),
                    kernel_size=(1, fft_length), stride=(1, sequence_stride))[:, 0, 0]
    start = fft_length // 2 if center else 0
    if length is not None:
        signal = signal[:, start:start + length]
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    elif center:
        signal = signal[:, start:total - fft_length // 2]
    return signal.reshape(*batch, signal.shape[-1])
