"""1-D pooling over ``(batch, steps, channels)``: MaxPooling1D, AveragePooling1D,
GlobalAveragePooling1D, GlobalMaxPooling1D.

``padding="same"`` follows TensorFlow (output ``ceil(n / stride)``, the extra padded cell at the
end; max pooling never picks a padded cell, average pooling averages only real cells), as the 2-D
layers do. GlobalAveragePooling1D averages only the unmasked steps when a timestep mask arrives.
"""

from __future__ import annotations

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
    same_padding,
)
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "MaxPooling1D"]


class _Pooling1D(Layer):
    input_ndim = 3

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, 1, "pool_size", self)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, 1, "strides", self))
        self.padding = normalize_padding(padding, self)
        self.data_format = normalize_data_format(data_format, self)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs.transpose(1, 2) if self.data_format == "channels_last" else inputs
        before, after = (same_padding(x.shape[2], self.pool_size[0], self.strides[0])
                         if self.padding == "same" else (0, 0))
        out = self._pool(x, before, after)
        return out.transpose(1, 2) if self.data_format == "channels_last" else out

    def _pool(self, x: torch.Tensor, before: int, after: int) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        steps = shape[1] if self.data_format == "channels_last" else shape[2]
        out = conv_output_length(steps, self.pool_size[0], self.padding, self.strides[0])
        if out is not None and out <= 0:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): computed output size "
                             f"would be negative or zero. Received inputs shape={shape}, "
                             f"pool_size={self.pool_size}, strides={self.strides}, "
                             f"padding={self.padding!r}")
        if self.data_format == "channels_last":
            return (shape[0], out, shape[2])
        return (shape[0], shape[1], out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "padding": self.padding, "strides": list(self.strides),
                "data_format": self.data_format}


class MaxPooling1D(_Pooling1D):
    """Maximum over windows of ``pool_size`` steps (padded cells count as -inf)."""

    def _pool(self, x, before, after):
        if before != after:
            x = F.pad(x, (before, after), value=float("-inf"))
            before = 0
        return F.max_pool1d(x, self.pool_size, self.strides, before)


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps, counting only real (unpadded) cells."""

    def _pool(self, x, before, after):
        if before == after:
            return F.avg_pool1d(x, self.pool_size, self.strides, before, count_include_pad=False)
        sums = F.avg_pool1d(F.pad(x, (before, after)), self.pool_size, self.strides)
        ones = torch.ones((1, 1, x.shape[2]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool1d(F.pad(ones, (before, after)), self.pool_size, self.strides)
        return sums / counts


class _GlobalPooling1D(Layer):
    input_ndim = 3

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, self)
        self.keepdims = bool(keepdims)
        self._steps_axis = 1 if self.data_format == "channels_last" else 2

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.keepdims:
            return tuple(1 if i == self._steps_axis else s for i, s in enumerate(shape))
        return (shape[0], shape[3 - self._steps_axis])

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the steps axis: ``(batch, steps, features) -> (batch, features)``; with a
    ``(batch, steps)`` mask, the mean of the unmasked steps only."""

    supports_masking = True

    def call(self, inputs: torch.Tensor, training: bool = False,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return inputs.mean(dim=self._steps_axis, keepdim=self.keepdims)
        weights = mask.to(inputs.dtype).unsqueeze(3 - self._steps_axis)
        return ((inputs * weights).sum(dim=self._steps_axis, keepdim=self.keepdims)
                / weights.sum(dim=self._steps_axis, keepdim=self.keepdims))


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Maximum over the steps axis: ``(batch, steps, features) -> (batch, features)``."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.amax(dim=self._steps_axis, keepdim=self.keepdims)
