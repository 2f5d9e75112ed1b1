"""2-D pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D.

``padding="same"`` follows TensorFlow: output size ``ceil(n / stride)``, the extra padded row/column
at the bottom/right; max pooling never picks a padded cell and average pooling averages only the
real cells of each window (so border windows average fewer values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import (
    conv_output_length,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    spatial_padding,
)
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPooling2D"]


class _Pooling2D(Layer):
    input_ndim = 4

    def __init__(self, pool_size: int | Sequence[int] = (2, 2),
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", self)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, 2, "strides", self))
        self.padding = normalize_padding(padding, self)
        self.data_format = normalize_data_format(data_format, self)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.data_format == "channels_last":
            return self.call_nchw(inputs.permute(0, 3, 1, 2), training).permute(0, 2, 3, 1)
        return self.call_nchw(inputs, training)

    def accepts_nchw(self) -> bool:
        """See ``Conv2D.accepts_nchw``."""
        return self.data_format == "channels_last" and type(self).call is _Pooling2D.call

    def call_nchw(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        """The pooling on an NCHW tensor (whatever ``data_format``), NCHW out."""
        if self.padding == "same":
            pads = spatial_padding(x.shape[2:], self.pool_size, self.strides, (1, 1))
        else:
            pads = ((0, 0), (0, 0))
        return self._pool(x, pads)

    def _pool(self, x: torch.Tensor, pads: tuple[tuple[int, int], ...]) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.data_format == "channels_last":
            batch, h, w, c = shape
        else:
            batch, c, h, w = shape
        out = [conv_output_length(n, k, self.padding, s)
               for n, k, s in zip((h, w), self.pool_size, self.strides)]
        if any(o is not None and o <= 0 for o in out):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): computed output size "
                             f"would be negative or zero. Received inputs shape={shape}, "
                             f"pool_size={self.pool_size}, strides={self.strides}, "
                             f"padding={self.padding!r}")
        if self.data_format == "channels_last":
            return (batch, out[0], out[1], c)
        return (batch, c, out[0], out[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """Maximum over ``pool_size`` windows (padded cells count as -inf)."""

    def _pool(self, x: torch.Tensor, pads: tuple[tuple[int, int], ...]) -> torch.Tensor:
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            return F.max_pool2d(x, self.pool_size, self.strides, (top, left))
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.pool_size, self.strides)


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows, counting only real (unpadded) cells."""

    def _pool(self, x: torch.Tensor, pads: tuple[tuple[int, int], ...]) -> torch.Tensor:
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            return F.avg_pool2d(x, self.pool_size, self.strides, (top, left),
                                count_include_pad=False)
        # Asymmetric: (window sum over zero-padded input) / (number of real cells in the window).
        padded = F.pad(x, (left, right, top, bottom))
        sums = F.avg_pool2d(padded, self.pool_size, self.strides)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool2d(F.pad(ones, (left, right, top, bottom)), self.pool_size,
                              self.strides)
        return sums / counts


class _GlobalPooling2D(Layer):
    input_ndim = 4

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, self)
        self.keepdims = bool(keepdims)
        self._axes = (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.keepdims:
            return tuple(1 if i in self._axes else s for i, s in enumerate(shape))
        channels = shape[3] if self.data_format == "channels_last" else shape[1]
        return (shape[0], channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over the spatial axes: ``(batch, H, W, C) -> (batch, C)``."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.mean(dim=self._axes, keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over the spatial axes: ``(batch, H, W, C) -> (batch, C)``."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.amax(dim=self._axes, keepdim=self.keepdims)
