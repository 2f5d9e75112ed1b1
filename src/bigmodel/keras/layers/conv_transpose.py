"""Transposed convolutions: ``Conv1DTranspose``, ``Conv2DTranspose`` and ``Conv3DTranspose``.

A transposed convolution spreads each input cell over a ``kernel_size`` window of the output,
``stride`` cells apart (the gradient of a convolution with respect to its input). Keras's kernel
shape is ``(*kernel_size, filters, in_channels)``; it is stored as ``(in_channels, filters,
*kernel_size)``, the layout of ``F.conv_transposeNd``.

Output size per spatial axis (Keras 3 / TensorFlow / JAX semantics), with ``k`` the dilated
kernel size ``(kernel - 1) * dilation + 1``:

- ``"valid"``: ``(n - 1) * s + max(k, s)``, or ``(n - 1) * s + k + output_padding``;
- ``"same"``: ``n * s``, or ``(n - 1) * s + k % 2 + output_padding``.

PyTorch's own ``padding``/``output_padding`` cannot express every one of these windows (it crops
symmetrically), so the layer computes the full output ``(n - 1) * s + k`` and then crops (or
zero-extends) each side by the amounts Keras's JAX backend uses; the bias is added afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.keras.layers.convolution import normalize_tuple
from bigmodel.keras.layers.convolution_nd import KernelConv
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "transpose_crops",
           "transpose_output_length"]


def _jax_padding(kernel: int, stride: int, dilation: int, padding: str,
                 output_padding: int | None) -> tuple[int, int]:
    """(left, right) padding of the stride-dilated input, as Keras's JAX backend computes it."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, k - 1)
    return left, total - left


def transpose_crops(kernel: int, stride: int, dilation: int, padding: str,
                    output_padding: int | None) -> tuple[int, int]:
    """Cells to remove from each end of the full transposed output (negative: zeros to add)."""
    k = (kernel - 1) * dilation + 1
    left, right = _jax_padding(kernel, stride, dilation, padding, output_padding)
    return k - 1 - left, k - 1 - right


def transpose_output_length(size: int | None, kernel: int, stride: int, dilation: int,
                            padding: str, output_padding: int | None) -> int | None:
    if size is None:
        return None
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return (size - 1) * stride + k + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + k % 2 + output_padding


class _ConvTranspose(KernelConv):
    _conv = staticmethod(F.conv_transpose1d)

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, data_format: str | None = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
        self.output_padding: tuple[int, ...] | None = (
            None if output_padding is None
            else normalize_tuple(output_padding, self.rank, "output_padding", self,
                                 allow_zero=True))

    def _output_paddings(self) -> Sequence[int | None]:
        return self.output_padding or (None,) * self.rank

    def _spatial_output(self, sizes: Sequence[int | None]) -> list[int | None]:
        return [transpose_output_length(n, k, s, d, self.padding, op) for n, k, s, d, op in
                zip(sizes, self.kernel_size, self.strides, self.dilation_rate,
                    self._output_paddings())]

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        perm = (self.rank + 1, self.rank, *range(self.rank))  # (*k, f, in) -> (in, f, *k)
        self.add_weight("kernel", (*self.kernel_size, self.filters, channels),
                        self.kernel_initializer, self.kernel_regularizer, torch_perm=perm,
                        constraint=self.kernel_constraint)
        self._add_bias(self.filters)
        self.input_axes = {self._channel_axis: channels}
        super().build(input_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._conv(x, self.kernel, None, self.strides, 0, 0, 1, self.dilation_rate)
        crops = [transpose_crops(k, s, d, self.padding, op) for k, s, d, op in
                 zip(self.kernel_size, self.strides, self.dilation_rate, self._output_paddings())]
        if any(c for pair in crops for c in pair):
            # F.pad with negative amounts crops; positive ones add zeros. Last axis first.
            z = F.pad(z, [-c for pair in reversed(crops) for c in pair])
        if self.bias is not None:
            z = z + self.bias.reshape(1, -1, *([1] * self.rank))
        return z

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_padding": (
            None if self.output_padding is None else list(self.output_padding))}


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution over ``(batch, steps, channels)``; see the module docstring."""

    rank = 1
    _conv = staticmethod(F.conv_transpose1d)


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution over channels-last images; see the module docstring.

    Args:
        filters: output channels. kernel_size, strides, dilation_rate: int or pair.
        padding: ``"valid"`` or ``"same"``. output_padding: None, int or pair.
    """

    rank = 2
    _conv = staticmethod(F.conv_transpose2d)

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", output_padding: Any = None,
                 data_format: str | None = None, dilation_rate: Any = (1, 1), **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, **kwargs)


class Conv3DTranspose(_ConvTranspose):
    """Transposed 3-D convolution over ``(batch, depth, height, width, channels)`` volumes; see
    the module docstring (arguments as Conv2DTranspose's, ints or triples)."""

    rank = 3
    _conv = staticmethod(F.conv_transpose3d)

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1, 1),
                 padding: str = "valid", data_format: str | None = None,
                 output_padding: Any = None, dilation_rate: Any = (1, 1, 1), **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, **kwargs)
