"""Named weight initializers for plain ``nn`` models (the names a Keras user passes as strings).

``initialize(tensor, name, fan_in, fan_out)`` fills ``tensor`` in place. Fans are given explicitly
because a PyTorch weight's layout is not Keras's: an ``nn.Linear`` weight ``(out, in)`` has
``fan_in = in``; an embedding table ``(vocab, d)`` has, as in Keras, ``fan_in = vocab``.

Names and their meaning (Keras 3 defaults where Keras has the name):

=====================================  ============================================================
``random_truncated_normal_with_mean``  Normal(mean 0, stddev 0.02) with values beyond two standard
                                       deviations redrawn: the truncated normal of BERT / the
                                       Tensor2Tensor Transformer (the seed program's name).
``truncated_normal``                   Normal(0, 0.05) truncated at two standard deviations.
``random_normal``                      Normal(0, 0.05).
``random_uniform`` / ``uniform``       Uniform(-0.05, 0.05).
``glorot_uniform`` / ``xavier_uniform``  Uniform(+-sqrt(6 / (fan_in + fan_out))).
``glorot_normal``                      truncated Normal(0, sqrt(2 / (fan_in + fan_out))).
``he_uniform`` / ``he_normal``         ``sqrt(6 / fan_in)`` / truncated ``sqrt(2 / fan_in)``.
``lecun_uniform`` / ``lecun_normal``   ``sqrt(3 / fan_in)`` / truncated ``sqrt(1 / fan_in)``.
``orthogonal``                         a (semi-)orthogonal matrix.
``zeros`` / ``ones``                   constants.
=====================================  ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bigmodel.errors import ConfigError, UnknownNameError

__all__ = ["INITIALIZERS", "TRUNCATED_STD", "channels_last_fans", "check_initializer", "identity_",
           "fourier_kernel", "initialize", "orthogonal_", "scaled_variance", "truncated_normal_",
           "variance_scaling_"]

# Standard deviation of the standard normal truncated to [-2, 2] (dividing by it keeps the target
# variance after truncation, as Keras's variance-scaling initializers do).
TRUNCATED_STD = 0.87962566103423978

_FAN_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


def channels_last_fans(shape: Sequence[int], input_axes: Sequence[int] | None = None,
                       output_axes: Sequence[int] | None = None) -> tuple[int, int]:
    """Fan-in/fan-out of a channels-last weight shape (Keras's layout: ``(in, out)`` kernels,
    ``(*spatial, in, out)`` convolution kernels).

    Args:
        shape: the weight's shape.
        input_axes, output_axes: when both are given, the fans are the products of those axes'
            sizes (Keras 3.13+'s explicit fan axes).

    Returns:
        ``(fan_in, fan_out)``: rank 0 -> (1, 1); rank 1 -> (n, n); rank 2 -> (in, out); rank > 2
        -> (in * receptive_field, out * receptive_field), the receptive field being the product of
        all but the last two sizes.
    """
    shape = tuple(int(s) for s in shape)
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[axis] for axis in input_axes),
                math.prod(shape[axis] for axis in output_axes))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def scaled_variance(fan_in: float, fan_out: float, scale: float = 1.0, mode: str = "fan_in") -> float:
    """``scale / max(1, n)``, ``n`` = ``fan_in``, ``fan_out`` or their mean (``fan_avg``): the
    variance of Glorot (``1, fan_avg``), He (``2, fan_in``) and LeCun (``1, fan_in``).

    Raises:
        ConfigError: an unknown mode.
    """
    if mode not in _FAN_MODES:
        raise ConfigError(f"Invalid `mode` argument: expected one of {set(_FAN_MODES)}. "
                          f"Received: mode={mode!r}")
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    return scale / max(1.0, n)


_CDF_AT_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))  # standard normal CDF at +2


@torch.no_grad()
def truncated_normal_(tensor: torch.Tensor, mean: float = 0.0, stddev: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` with Normal(mean, stddev) truncated to two standard deviations; returns it.

    By the inverse CDF of a uniform draw: the same method (and, for one generator state, the same
    values) as ``nn.init.trunc_normal_``, written out because that function is about ten times
    slower on the CPU in torch 2.13.
    """
    tensor.uniform_(1.0 - 2.0 * _CDF_AT_2, 2.0 * _CDF_AT_2 - 1.0, generator=generator)
    tensor.erfinv_().mul_(stddev * math.sqrt(2.0)).add_(mean)
    return tensor.clamp_(mean - 2.0 * stddev, mean + 2.0 * stddev)


@torch.no_grad()
def variance_scaling_(tensor: torch.Tensor, fan_in: float, fan_out: float, scale: float = 1.0,
                      mode: str = "fan_in", distribution: str = "truncated_normal",
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` with samples of variance :func:`scaled_variance`; returns it.

    ``distribution``: ``"truncated_normal"`` (the standard deviation divided by
    :data:`TRUNCATED_STD` so that the truncated samples keep the variance), ``"untruncated_normal"``
    or ``"uniform"`` (limit ``sqrt(3 * variance)``).

    Raises:
        ConfigError: an unknown mode or distribution.
    """
    variance = scaled_variance(fan_in, fan_out, scale, mode)
    if distribution == "truncated_normal":
        return truncated_normal_(tensor, 0.0, math.sqrt(variance) / TRUNCATED_STD, generator)
    if distribution == "untruncated_normal":
        return tensor.normal_(0.0, math.sqrt(variance), generator=generator)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return tensor.uniform_(-limit, limit, generator=generator)
    raise ConfigError("Invalid `distribution` argument: expected one of "
                      f"{set(_DISTRIBUTIONS)}. Received: distribution={distribution!r}")


@torch.no_grad()
def orthogonal_(tensor: torch.Tensor, gain: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` (rank >= 2) with a (semi-)orthogonal matrix times ``gain``; returns it.

    The tensor is seen as ``(prod(shape[:-1]), shape[-1])``: orthonormal columns when it is tall,
    rows when wide. From the QR decomposition of a float64 standard normal matrix, made unique by
    the signs of ``R``'s diagonal (Saxe et al. 2014, as Keras).

    Raises:
        ConfigError: a tensor of rank < 2.
    """
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ConfigError("The tensor to initialize must be at least two-dimensional. "
                          f"Received: shape={shape} of rank {len(shape)}.")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = torch.empty(max(rows, cols), min(rows, cols), dtype=torch.float64)
    flat.normal_(0.0, 1.0, generator=generator)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique decomposition
    if rows < cols:
        q = q.T
    return tensor.copy_((gain * q).reshape(shape))


@torch.no_grad()
def identity_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Fill a 2-D ``tensor`` with ``gain`` times the identity (ones on the diagonal of a
    rectangular one); returns it.

    Raises:
        ConfigError: a tensor that is not 2-D.
    """
    if tensor.ndim != 2:
        raise ConfigError("Identity matrix initializer can only be used for 2D matrices. "
                          f"Received: shape={tuple(tensor.shape)} of rank {tensor.ndim}.")
    return tensor.copy_(gain * torch.eye(*tensor.shape, dtype=tensor.dtype))


def fourier_kernel(side: str, frame_length: int, bins: int, window: torch.Tensor | None = None,
                   scaling: str | None = None) -> torch.Tensor:
    """The ``(frame_length, 1, bins)`` kernel of a convolutional short-time Fourier transform:
    ``cos`` (``side="real"``) or ``sin`` (``"imag"``) of ``-2 pi t f / ((bins - 1) * 2)`` for
    sample ``t`` and frequency bin ``f``, times ``window`` divided by its L2 norm
    (``scaling="density"``) or its sum (``"spectrum"``).

    Computed in float32 in Keras's order of operations (``keras.initializers.STFT``), so both
    give the same bits.
    """
    time = torch.arange(frame_length, dtype=torch.float32).reshape(frame_length, 1, 1)
    freq = torch.arange(bins, dtype=torch.float32).reshape(1, 1, bins) / ((bins - 1) * 2)
    args = (-2 * time) * freq * torch.arccos(torch.tensor(-1.0))
    kernel = torch.cos(args) if side == "real" else torch.sin(args)
    if window is None:
        return kernel
    window = window.to(torch.float32).reshape(frame_length, 1, 1)
    if scaling == "density":
        return kernel * window / torch.sqrt(window.square().sum())
    if scaling == "spectrum":
        return kernel * window / window.abs().sum()
    return kernel * window


def _scaled(mode: str, scale: float, distribution: str) -> Callable[[torch.Tensor, int, int], None]:
    def fill(tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
        variance_scaling_(tensor, fan_in, fan_out, scale, mode, distribution)
    return fill


INITIALIZERS: dict[str, Callable[[torch.Tensor, int, int], None]] = {
    "random_truncated_normal_with_mean": lambda t, i, o: truncated_normal_(t, 0.0, 0.02),
    "truncated_normal": lambda t, i, o: truncated_normal_(t, 0.0, 0.05),
    "random_normal": lambda t, i, o: nn.init.normal_(t, 0.0, 0.05),
    "random_uniform": lambda t, i, o: nn.init.uniform_(t, -0.05, 0.05),
    "glorot_uniform": _scaled("fan_avg", 1.0, "uniform"),
    "glorot_normal": _scaled("fan_avg", 1.0, "truncated_normal"),
    "he_uniform": _scaled("fan_in", 2.0, "uniform"),
    "he_normal": _scaled("fan_in", 2.0, "truncated_normal"),
    "lecun_uniform": _scaled("fan_in", 1.0, "uniform"),
    "lecun_normal": _scaled("fan_in", 1.0, "truncated_normal"),
    "orthogonal": lambda t, i, o: orthogonal_(t),
    "zeros": lambda t, i, o: nn.init.zeros_(t),
    "ones": lambda t, i, o: nn.init.ones_(t),
}
_ALIASES = {"uniform": "random_uniform", "normal": "random_normal", "xavier_uniform": "glorot_uniform",
            "xavier_normal": "glorot_normal", "zero": "zeros", "one": "ones"}


def check_initializer(name: str, argument: str = "initializer", owner: str = "") -> str:
    """The canonical name for ``name``.

    Raises:
        UnknownNameError: not a known initializer (names the argument and lists the known names).
    """
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in INITIALIZERS:
        where = f"{owner}: " if owner else ""
        raise UnknownNameError(f"{where}unknown initializer {name!r} for '{argument}'; known: "
                               f"{', '.join([*INITIALIZERS, *_ALIASES])}")
    return key


@torch.no_grad()
def initialize(tensor: torch.Tensor, name: str, fan_in: int = 1, fan_out: int = 1) -> torch.Tensor:
    """Fill ``tensor`` in place with initializer ``name`` (see the module table); returns it."""
    INITIALIZERS[check_initializer(name)](tensor, fan_in, fan_out)
    return tensor
