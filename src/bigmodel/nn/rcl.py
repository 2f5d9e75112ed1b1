"""The recurrent convolutional layer (RCL) of Liang & Hu, "Recurrent Convolutional Neural Network for
Object Recognition" (CVPR 2015).

A unit at position ``(i, j)`` of feature map ``k`` receives the layer's (static) input ``u`` through a
feed-forward kernel and the layer's own previous state through a recurrent kernel::

    z(t) = w_f * u + w_r * x(t - 1) + b          (t = 1 .. T; '*' is a 'same' cross-correlation)
    z(0) = w_f * u + b
    x(t) = g(f(z(t)))                             f = ReLU, g = local response normalization

unfolded for ``T`` steps with the same ``w_f``, ``w_r`` and ``b`` at every step; the layer outputs
``x(T)``. With ``T = 0`` it is a plain convolution followed by ReLU and the normalization. The feed-
forward term does not change over the steps, so it is computed once.

Normalization ``g`` (the ``norm`` argument):

* ``"lrn"`` (the paper): ``g(f)_k = f_k / (1 + alpha / N * sum_{k' near k} f_k'^2) ** beta`` over
  ``N`` neighbouring feature maps (``N = K / 8 + 1`` for ``K`` maps, ``alpha = 0.001``,
  ``beta = 0.75``); zero maps are assumed beyond the edges. Applied after the ReLU.
* ``"batch"``: batch normalization of ``z(t)`` *before* the ReLU, one ``BatchNorm2d`` per step
  (the statistics of ``z(0)`` and ``z(T)`` differ, so sharing one set of running averages across
  steps would mis-normalize at inference).
* ``None``: ReLU only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe

__all__ = ["NORMS", "RecurrentConv2d", "default_lrn_size", "recurrent_conv2d"]

NORMS = ("lrn", "batch", None)


def default_lrn_size(channels: int) -> int:
    """The paper's LRN neighbourhood ``N = K / 8 + 1`` (integer division) for ``K`` feature maps."""
    return channels // 8 + 1


def odd_pair(value: int | Sequence[int], name: str, owner: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{owner}: '{name}' must be an int or a pair of ints; received {value!r}")
    if min(pair) < 1:
        raise ConfigError(f"{owner}: '{name}' must be positive; received {value!r}")
    if pair[0] % 2 == 0 or pair[1] % 2 == 0:
        raise ConfigError(f"{owner}: '{name}' must be odd: the layer's state is convolved with "
                          f"'same' padding at every step, which needs a centred kernel; "
                          f"received {value!r}")
    return pair


def recurrent_conv2d(x: torch.Tensor, weight: torch.Tensor, recurrent_weight: torch.Tensor,
                     bias: torch.Tensor | None, steps: int, normalize) -> torch.Tensor:
    """Unrolled RCL on NCHW tensors (the functional core shared with the Keras layer).

    Args:
        x: input ``(B, C_in, H, W)``.
        weight: feed-forward kernel ``(C_out, C_in, kh, kw)``, odd sizes.
        recurrent_weight: recurrent kernel ``(C_out, C_out, rh, rw)``, odd sizes.
        bias: ``(C_out,)`` or None.
        steps: ``T >= 0``.
        normalize: ``(step, z) -> x``: the nonlinearity and normalization of step ``t`` applied to
            the pre-activation ``z(t)``.

    Returns:
        ``x(T)`` of shape ``(B, C_out, H, W)``.
    """
    padding = (weight.shape[2] // 2, weight.shape[3] // 2)
    recurrent_padding = (recurrent_weight.shape[2] // 2, recurrent_weight.shape[3] // 2)
    feedforward = F.conv2d(x, weight, bias, padding=padding)  # (B, C_out, H, W), same every step
    state = normalize(0, feedforward)
    for step in range(1, steps + 1):
        z = feedforward + F.conv2d(state, recurrent_weight, None, padding=recurrent_padding)
        state = normalize(step, z)
    return state


class RecurrentConv2d(nn.Module):
    """Recurrent convolutional layer: ``T`` unfolded steps of feed-forward + recurrent convolution.

    Args:
        in_channels: channels of the input.
        out_channels: ``K``, feature maps of the layer (and of its recurrent state).
        kernel_size: feed-forward kernel, odd (``'same'`` padding keeps ``H, W``).
        recurrent_kernel_size: recurrent kernel, odd; defaults to ``kernel_size``.
        steps: ``T >= 0`` recurrent iterations (the paper's default is 3).
        norm: ``"lrn"`` (default, the paper), ``"batch"`` or ``None``; see the module docstring.
        lrn_size: LRN neighbourhood ``N``; defaults to ``out_channels // 8 + 1``.
        lrn_alpha, lrn_beta: LRN constants (paper: 0.001 and 0.75).
        bias: learn the bias ``b``.

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.

    Raises:
        ConfigError: a non-positive size, an even kernel, ``steps < 0``, or an unknown ``norm``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3,
                 recurrent_kernel_size: int | Sequence[int] | None = None, steps: int = 3,
                 norm: str | None = "lrn", lrn_size: int | None = None, lrn_alpha: float = 1e-3,
                 lrn_beta: float = 0.75, bias: bool = True) -> None:
        super().__init__()
        owner = "RecurrentConv2d"
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{owner}: '{name}' must be a positive int; received {value!r}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ConfigError(f"{owner}: 'steps' must be an int >= 0 (0 = a plain convolution); "
                              f"received {steps!r}")
        if norm not in NORMS:
            raise ConfigError(f"{owner}: 'norm' must be one of 'lrn', 'batch', None; "
                              f"received {norm!r}")
        if lrn_size is None:
            lrn_size = default_lrn_size(out_channels)
        if not isinstance(lrn_size, int) or isinstance(lrn_size, bool) or lrn_size < 1:
            raise ConfigError(f"{owner}: 'lrn_size' must be a positive int; received {lrn_size!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = odd_pair(kernel_size, "kernel_size", owner)
        self.recurrent_kernel_size = (self.kernel_size if recurrent_kernel_size is None else
                                      odd_pair(recurrent_kernel_size, "recurrent_kernel_size",
                                                owner))
        self.steps = steps
        self.norm = norm
        self.lrn_size = lrn_size
        self.lrn_alpha = float(lrn_alpha)
        self.lrn_beta = float(lrn_beta)

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.recurrent_weight = nn.Parameter(
            torch.empty(out_channels, out_channels, *self.recurrent_kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # One BatchNorm per unfolded step: z(0) and z(T) have different statistics.
        self.batch_norms = (nn.ModuleList(nn.BatchNorm2d(out_channels) for _ in range(steps + 1))
                            if norm == "batch" else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels (the Keras default) and a zero bias."""
        nn.init.xavier_uniform_(self.weight)
        nn.init.xavier_uniform_(self.recurrent_weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _normalize(self, step: int, z: torch.Tensor) -> torch.Tensor:
        if self.norm == "batch":
            return F.relu(self.batch_norms[step](z))
        z = F.relu(z)
        if self.norm == "lrn":
            z = F.local_response_norm(z, self.lrn_size, self.lrn_alpha, self.lrn_beta, k=1.0)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``x(T)`` of shape ``(B, out_channels, H, W)``.

        Raises:
            InputTypeError: not a floating-point tensor.
            ShapeError: not 4-D or the wrong number of channels.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise InputTypeError(f"RecurrentConv2d expects a floating-point tensor; received "
                                 f"{describe(x)}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"RecurrentConv2d expects input (B, {self.in_channels}, H, W); "
                             f"received {describe(x)}")
        return recurrent_conv2d(x, self.weight, self.recurrent_weight, self.bias, self.steps,
                                self._normalize)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"recurrent_kernel_size={self.recurrent_kernel_size}, steps={self.steps}, "
                f"norm={self.norm!r}")
