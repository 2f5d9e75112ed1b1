"""Depthwise and separable convolutions: ``DepthwiseConv1D``, ``DepthwiseConv2D``,
``SeparableConv1D``, ``SeparableConv2D``.

A depthwise convolution filters each input channel on its own with ``depth_multiplier`` kernels
(output channel ``c * depth_multiplier + m``); a separable convolution follows it with a 1x1
("pointwise") convolution mixing the channels. Keras shapes: depthwise kernel
``(*kernel_size, in_channels, depth_multiplier)``, pointwise kernel
``(*[1] * rank, in_channels * depth_multiplier, filters)``. The depthwise kernel is stored as
``(in_channels, depth_multiplier, *kernel_size)`` and viewed (no copy) as the grouped-convolution
weight ``(in_channels * depth_multiplier, 1, *kernel_size)``.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras import constraints, initializers, regularizers
from bigmodel.keras.layers.convolution_nd import CONV_FUNCTIONS, BaseConv, pad_spatial
from bigmodel.keras.layers.core import check_positive_int, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]


class _Depthwise(BaseConv):
    """The depthwise part: ``depthwise_kernel`` of Keras shape ``(*k, in, depth_multiplier)``."""

    _depthwise_name = "depthwise_kernel"

    def __init__(self, kernel_size: Any, depth_multiplier: int = 1,
                 depthwise_initializer: Any = "glorot_uniform", depthwise_regularizer: Any = None,
                 depthwise_constraint: Any = None, **kwargs: Any):
        super().__init__(kernel_size, **kwargs)
        self.depth_multiplier = check_positive_int(self, "depth_multiplier", depth_multiplier)
        self.depthwise_initializer = resolve(self, "depthwise_initializer", depthwise_initializer)
        self.depthwise_regularizer = resolve(self, "depthwise_regularizer", depthwise_regularizer)
        self.depthwise_constraint = resolve(self, "depthwise_constraint", depthwise_constraint)

    def _build_depthwise(self, input_shape: Shape) -> int:
        channels = self._input_channels(input_shape)
        self._in_channels = channels
        self.compute_output_shape(input_shape)
        r = self.rank
        self.add_weight(self._depthwise_name, (*self.kernel_size, channels, self.depth_multiplier),
                        self.depthwise_initializer, self.depthwise_regularizer,
                        torch_perm=(r, r + 1, *range(r)), constraint=self.depthwise_constraint)
        self.input_axes = {self._channel_axis: channels}
        return channels

    def _depthwise(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        kernel = getattr(self, self._depthwise_name)
        weight = kernel.reshape(-1, 1, *kernel.shape[2:])
        x, padding = pad_spatial(x, self.padding, self.kernel_size, self.strides,
                                 self.dilation_rate)
        return CONV_FUNCTIONS[self.rank](x, weight, bias, self.strides, padding,
                                         self.dilation_rate, kernel.shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint)}


class _DepthwiseConv(_Depthwise):
    """A depthwise convolution on its own; output channels ``in_channels * depth_multiplier``.

    Keras 3 names its kernel ``kernel`` here (``depthwise_kernel`` in the separable layers).
    """

    _depthwise_name = "kernel"

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(kernel_size, depth_multiplier=depth_multiplier,
                         depthwise_initializer=depthwise_initializer,
                         depthwise_regularizer=depthwise_regularizer,
                         depthwise_constraint=depthwise_constraint, strides=strides,
                         padding=padding, data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         bias_constraint=bias_constraint, **kwargs)

    @property
    def _out_channels(self) -> int:
        return self._in_channels * self.depth_multiplier

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._in_channels = self._input_channels(input_shape)
        return super().compute_output_shape(input_shape)

    def build(self, input_shape: Shape) -> None:
        channels = self._build_depthwise(input_shape)
        self._add_bias(channels * self.depth_multiplier)
        super().build(input_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._depthwise(x, self.bias)


class DepthwiseConv1D(_DepthwiseConv):
    """Depthwise 1-D convolution over ``(batch, steps, channels)``."""

    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    """Depthwise 2-D convolution over channels-last images."""

    rank = 2

    def __init__(self, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None,
                 dilation_rate: Any = (1, 1), **kwargs: Any):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         depth_multiplier=depth_multiplier, data_format=data_format,
                         dilation_rate=dilation_rate, **kwargs)


class _Separable(_Depthwise):
    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1,
                 depth_multiplier: int = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 depthwise_constraint: Any = None, pointwise_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(kernel_size, depth_multiplier=depth_multiplier,
                         depthwise_initializer=depthwise_initializer,
                         depthwise_regularizer=depthwise_regularizer,
                         depthwise_constraint=depthwise_constraint, strides=strides,
                         padding=padding, data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         bias_constraint=bias_constraint, **kwargs)
        self.filters = check_positive_int(self, "filters", filters)
        self.pointwise_initializer = resolve(self, "pointwise_initializer", pointwise_initializer)
        self.pointwise_regularizer = resolve(self, "pointwise_regularizer", pointwise_regularizer)
        self.pointwise_constraint = resolve(self, "pointwise_constraint", pointwise_constraint)

    @property
    def _out_channels(self) -> int:
        return self.filters

    def build(self, input_shape: Shape) -> None:
        channels = self._build_depthwise(input_shape)
        r = self.rank
        self.add_weight("pointwise_kernel",
                        (*([1] * r), channels * self.depth_multiplier, self.filters),
                        self.pointwise_initializer, self.pointwise_regularizer,
                        torch_perm=(r + 1, r, *range(r)), constraint=self.pointwise_constraint)
        self._add_bias(self.filters)
        super().build(input_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return CONV_FUNCTIONS[self.rank](self._depthwise(x, None), self.pointwise_kernel,
                                         self.bias)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint)}


class SeparableConv1D(_Separable):
    """Depthwise 1-D convolution then a pointwise (kernel size 1) convolution to ``filters``."""

    rank = 1


class SeparableConv2D(_Separable):
    """Depthwise 2-D convolution then a 1x1 convolution to ``filters`` channels.

    Args:
        filters: output channels. kernel_size, strides, dilation_rate: int or pair.
        depth_multiplier: depthwise kernels per input channel.
    """

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str | None = None,
                 dilation_rate: Any = (1, 1), **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, **kwargs)
