"""Convolution and pooling ``keras.ops`` on channels-last tensors (Keras layouts).

``data_format=None`` means ``keras.config.image_data_format()`` (``"channels_last"``); kernels are
``(*window, in_channels, out_channels)`` as in Keras; ``"same"`` padding is TensorFlow's (the extra
pixel after), so results equal Keras's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import config
from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor, to_tensors
from bigmodel.keras.ops.node import keras_op


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)


def _channels_first(x: torch.Tensor, data_format: str | None) -> torch.Tensor:
    data_format = data_format or config.image_data_format()
    return torch.movedim(x, -1, 1) if data_format == "channels_last" else x


def _channels_back(x: torch.Tensor, data_format: str | None) -> torch.Tensor:
    data_format = data_format or config.image_data_format()
    return torch.movedim(x, 1, -1) if data_format == "channels_last" else x


def same_padding(size: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...],
                  dilation: tuple[int, ...]) -> list[int]:
    """TensorFlow "same" padding as ``F.pad`` pairs (last axis first); the extra pixel goes after."""
    pads: list[int] = []
    for n, k, s, d in reversed(list(zip(size, window, strides, dilation))):
        effective = (k - 1) * d + 1
        total = max((math.ceil(n / s) - 1) * s + effective - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _check_padding(padding: str) -> str:
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
    return padding


@keras_op()
def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
         data_format: str | None = None, dilation_rate: Any = 1) -> torch.Tensor:
    """N-D convolution (1-3 spatial axes); ``kernel`` is ``(*window, in / groups, out)``."""
    x, w = to_tensors(inputs, kernel, dtype=as_float(inputs).dtype)
    spatial = x.dim() - 2
    x = _channels_first(x, data_format)
    groups = x.shape[1] // w.shape[-2]
    strides, dilation = _tuple(strides, spatial), _tuple(dilation_rate, spatial)
    if _check_padding(padding) == "same":
        x = F.pad(x, same_padding(tuple(x.shape[2:]), tuple(w.shape[:spatial]), strides, dilation))
    weight = torch.movedim(torch.movedim(w, -1, 0), -1, 1)  # (out, in/groups, *window)
    fn = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
    return _channels_back(fn(x, weight, stride=strides, dilation=dilation, groups=groups),
                          data_format)


@keras_op()
def depthwise_conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                   data_format: str | None = None, dilation_rate: Any = 1) -> torch.Tensor:
    """Depthwise convolution; ``kernel`` is ``(*window, in_channels, multiplier)``."""
    w = convert_to_tensor(kernel)
    full = w.reshape(*w.shape[:-2], 1, w.shape[-2] * w.shape[-1])
    return conv(inputs, full, strides, padding, data_format, dilation_rate)


def _pool(kind: str, inputs: Any, pool_size: Any, strides: Any, padding: str,
          data_format: str | None) -> torch.Tensor:
    x = as_float(inputs)
    spatial = x.dim() - 2
    window = _tuple(pool_size, spatial)
    strides = window if strides is None else _tuple(strides, spatial)
    x = _channels_first(x, data_format)
    pads = [0] * (2 * spatial)
    if _check_padding(padding) == "same":
        pads = same_padding(tuple(x.shape[2:]), window, strides, (1,) * spatial)
    if kind == "max":
        x = F.pad(x, pads, value=-math.inf)
        out = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[spatial - 1](x, window, strides)
    else:  # padded positions do not count in the average (as TensorFlow/Keras)
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[spatial - 1]
        ones = F.pad(torch.ones_like(x[:1, :1]), pads)
        out = fn(F.pad(x, pads), window, strides) / fn(ones, window, strides)
    return _channels_back(out, data_format)


@keras_op()
def max_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
             data_format: str | None = None) -> torch.Tensor:
    """Max pooling over 1-3 spatial axes."""
    return _pool("max", inputs, pool_size, strides, padding, data_format)


@keras_op()
def average_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None) -> torch.Tensor:
    """Average pooling over 1-3 spatial axes (padding excluded from the averages)."""
    return _pool("average", inputs, pool_size, strides, padding, data_format)


@keras_op()
def separable_conv(inputs: Any, depthwise_kernel: Any, pointwise_kernel: Any, strides: Any = 1,
                   padding: str = "valid", data_format: str | None = None,
                   dilation_rate: Any = 1) -> torch.Tensor:
    """Depthwise convolution followed by a 1x1 (pointwise) convolution."""
    depthwise = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format,
                               dilation_rate)
    return conv(depthwise, pointwise_kernel, 1, "valid", data_format, 1)


def _transpose_crop(n: int, k: int, s: int, padding: str, output_padding: int | None
                    ) -> tuple[int, int]:
    """(start, length) of Keras's transposed-convolution output inside the unpadded full one."""
    if output_padding is None:
        before = 0 if padding == "valid" else max(k - s, 0) // 2
        length = n * s + max(k - s, 0) if padding == "valid" else n * s
    else:
        before = 0 if padding == "valid" else k // 2
        length = (n - 1) * s + k - 2 * before + output_padding
    return before, length


@keras_op()
def conv_transpose(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                   output_padding: Any = None, data_format: str | None = None,
                   dilation_rate: Any = 1) -> torch.Tensor:
    """Transposed convolution; ``kernel`` is ``(*window, out_channels, in_channels)`` (Keras).

    Output length per axis, as Keras: ``valid``: ``n * s + max(k - s, 0)``; ``same``: ``n * s``;
    with ``output_padding``: ``(n - 1) * s + k - 2 * pad + output_padding``.
    """
    x, w = to_tensors(inputs, kernel, dtype=as_float(inputs).dtype)
    spatial = x.dim() - 2
    padding = _check_padding(padding)
    x = _channels_first(x, data_format)
    strides, dilation = _tuple(strides, spatial), _tuple(dilation_rate, spatial)
    out_pads = [None] * spatial if output_padding is None else list(
        _tuple(output_padding, spatial))
    weight = torch.movedim(torch.movedim(w, -1, 0), -1, 1)  # (in, out, *window)
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[spatial - 1]
    out = fn(x, weight, stride=strides, dilation=dilation)  # length (n - 1) * s + k per axis
    for axis in range(spatial):
        k = (w.shape[axis] - 1) * dilation[axis] + 1
        before, length = _transpose_crop(x.shape[2 + axis], k, strides[axis], padding,
                                         out_pads[axis])
        out = out.narrow(2 + axis, before, min(length, out.shape[2 + axis] - before))
        missing = length - out.shape[2 + axis]
        if missing > 0:  # stride larger than the window: zeros at the end
            out = F.pad(out, [0, 0] * (spatial - 1 - axis) + [0, missing])
    return _channels_back(out, data_format)


@keras_op()
def depth_to_space(x: Any, block_size: int, data_format: str = "channels_last") -> torch.Tensor:
    """Move channel blocks into ``block_size x block_size`` spatial blocks (TensorFlow order)."""
    x = convert_to_tensor(x)
    if data_format == "channels_last":
        n, h, w, c = x.shape
        out = x.reshape(n, h, w, block_size, block_size, c // block_size ** 2)
        return out.permute(0, 1, 3, 2, 4, 5).reshape(n, h * block_size, w * block_size, -1)
    return F.pixel_shuffle(x, block_size)


@keras_op()
def space_to_depth(x: Any, block_size: int, data_format: str = "channels_last") -> torch.Tensor:
    """Move ``block_size x block_size`` spatial blocks into channels (TensorFlow order)."""
    x = convert_to_tensor(x)
    if data_format == "channels_last":
        n, h, w, c = x.shape
        out = x.reshape(n, h // block_size, block_size, w // block_size, block_size, c)
        return out.permute(0, 1, 3, 2, 4, 5).reshape(n, h // block_size, w // block_size, -1)
    return F.pixel_unshuffle(x, block_size)


def _adaptive(kind: str, inputs: Any, output_size: Any, data_format: str | None) -> torch.Tensor:
    x = as_float(inputs)
    spatial = x.dim() - 2
    size = _tuple(output_size, spatial)
    fns = ((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)
           if kind == "average" else
           (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d))
    out = fns[spatial - 1](_channels_first(x, data_format), size)
    return _channels_back(out, data_format)


@keras_op()
def adaptive_average_pool(inputs: Any, output_size: Any, data_format: str | None = None
                          ) -> torch.Tensor:
    """Average pooling to a fixed ``output_size`` (window bounds as PyTorch's adaptive pools)."""
    return _adaptive("average", inputs, output_size, data_format)


@keras_op()
def adaptive_max_pool(inputs: Any, output_size: Any, data_format: str | None = None
                      ) -> torch.Tensor:
    """Max pooling to a fixed ``output_size`` (window bounds as PyTorch's adaptive pools)."""
    return _adaptive("max", inputs, output_size, data_format)


# ------------------------------------------------------------------------------ im2col / col2im
def _pair_of(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if (len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair)
            or min(pair) < minimum):
        raise ConfigError(f"keras.ops.{op}: {name} must be an int >= {minimum} or a pair of "
                          f"them; received {name}={value!r}")
    return pair  # type: ignore[return-value]


@keras_op()
def unfold(x: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> torch.Tensor:
    """Sliding ``(kH, kW)`` blocks of a channels-first ``(N, C, H, W)`` batch (im2col).

    Returns:
        ``(N, C * kH * kW, L)``, L the number of blocks (rows then columns).

    Raises:
        ShapeError: ``x`` not 4-D. ConfigError: a size that is not an int or a pair of ints.
    """
    x = as_float(x)
    if x.dim() != 4:
        raise ShapeError(f"keras.ops.unfold: x must be 4-D (N, C, H, W); received shape "
                         f"{tuple(x.shape)}")
    return F.unfold(x, _pair_of("unfold", "kernel_size", kernel_size, 1),
                    dilation=_pair_of("unfold", "dilation", dilation, 1),
                    padding=_pair_of("unfold", "padding", padding, 0),
                    stride=_pair_of("unfold", "stride", stride, 1))


@keras_op()
def fold(x: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> torch.Tensor:
    """The inverse of :func:`unfold` (col2im): blocks summed back into ``(N, C, oH, oW)``.

    Raises:
        ShapeError: ``x`` not 3-D ``(N, C * kH * kW, L)`` or not matching the sizes.
        ConfigError: a size that is not an int or a pair of ints.
    """
    x = as_float(x)
    if x.dim() != 3:
        raise ShapeError(f"keras.ops.fold: x must be 3-D (N, C * kH * kW, L); received shape "
                         f"{tuple(x.shape)}")
    sizes = dict(output_size=_pair_of("fold", "output_size", output_size, 1),
                 kernel_size=_pair_of("fold", "kernel_size", kernel_size, 1),
                 dilation=_pair_of("fold", "dilation", dilation, 1),
                 padding=_pair_of("fold", "padding", padding, 0),
                 stride=_pair_of("fold", "stride", stride, 1))
    try:
        return F.fold(x, **sizes)
    except RuntimeError as error:
        raise ShapeError(f"keras.ops.fold: x of shape {tuple(x.shape)} does not fit {sizes}: "
                         f"{error}") from error
