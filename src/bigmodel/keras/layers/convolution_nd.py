"""What the convolution family shares (argument checks, padding, weight creation), and
``Conv1D`` / ``Conv3D``.

Keras shapes: a 1-D input is ``(batch, steps, channels)`` (channels-last) and the Conv1D kernel
is ``(kernel_size, in_channels // groups, filters)``, stored as ``(filters, in // groups, k)``
for ``F.conv1d``. ``padding`` is ``"valid"``, ``"same"`` (TensorFlow: the extra cell after) or,
for Conv1D only, ``"causal"`` (``dilation * (k - 1)`` zeros before, none after: output step t
sees inputs up to t only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import (
    conv_output_length,
    normalize_data_format,
    normalize_tuple,
    same_padding,
)
from bigmodel.keras.layers.core import PreActivationMixin, cast_inputs, check_positive_int, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["CONV_FUNCTIONS", "BaseConv", "Conv1D", "Conv3D", "GroupedConv", "pad_spatial"]

# F.convNd by the number of spatial axes.
CONV_FUNCTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

def pad_spatial(x: torch.Tensor, padding: str, kernel: Sequence[int], strides: Sequence[int],
                dilation: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``x`` (channels-first, spatial axes last) padded for ``padding``, and the symmetric padding
    left to the convolution itself (asymmetric TensorFlow padding is applied here explicitly)."""
    rank = len(kernel)
    if padding == "valid":
        return x, (0,) * rank
    if padding == "causal":
        return F.pad(x, (dilation[0] * (kernel[0] - 1), 0)), (0,)
    pads = [same_padding(n, k, s, d) for n, k, s, d in
            zip(x.shape[2:], kernel, strides, dilation)]
    if all(before == after for before, after in pads):
        return x, tuple(before for before, _ in pads)
    flat = [p for before_after in reversed(pads) for p in before_after]  # F.pad: last axis first
    return F.pad(x, flat), (0,) * rank


class BaseConv(PreActivationMixin, Layer):
    """Shared arguments of Conv1D / Conv1DTranspose / Conv2DTranspose / separable convolutions.

    Subclasses set ``rank`` and ``_kind`` and implement ``build``, ``_forward`` (channels-first
    tensor in and out, no activation) and ``_spatial_output``.
    """

    rank = 1
    paddings: tuple[str, ...] = ("valid", "same")

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, activation: Any = None,
                 use_bias: bool = True, bias_initializer: Any = "zeros",
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.input_ndim = self.rank + 2
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", self)
        self.strides = normalize_tuple(strides, self.rank, "strides", self)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", self)
        value = padding.lower() if isinstance(padding, str) else padding
        if value not in self.paddings:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): the `padding` "
                              f"argument must be one of {', '.join(map(repr, self.paddings))}. "
                              f"Received: padding={padding!r}")
        self.padding = value
        self.data_format = normalize_data_format(data_format, self)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): `strides > 1` not "
                              f"supported in conjunction with `dilation_rate > 1`. Received: "
                              f"strides={self.strides} and dilation_rate={self.dilation_rate}")
        if not isinstance(use_bias, bool):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): `use_bias` must be a "
                              f"bool. Received: use_bias={use_bias!r}")
        self.activation = resolve(self, "activation", activation)
        self.use_bias = use_bias
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.bias_constraint = resolve(self, "bias_constraint", bias_constraint)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self.register_parameter("bias", None)  # replaced in build() when use_bias

    # ----------------------------------------------------------------------------- helpers
    def _input_channels(self, input_shape: Shape) -> int:
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): the channel dimension "
                             f"of the inputs should be defined. Found None. Full input shape "
                             f"received: {tuple(input_shape)}")
        return int(channels)

    def _add_bias(self, size: int) -> None:
        if self.use_bias:
            self.add_weight("bias", (size,), self.bias_initializer, self.bias_regularizer,
                            constraint=self.bias_constraint)

    def _spatial(self, shape: Shape) -> tuple[Any, ...]:
        shape = tuple(shape)
        return shape[1:-1] if self.data_format == "channels_last" else shape[2:]

    @property
    def _out_channels(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _spatial_output(self, sizes: Sequence[int | None]) -> list[int | None]:
        padding = "same" if self.padding == "causal" else self.padding  # both give ceil(n / s)
        return [conv_output_length(n, k, padding, s, d)
                for n, k, s, d in zip(sizes, self.kernel_size, self.strides, self.dilation_rate)]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        out = self._spatial_output(self._spatial(shape))
        if any(o is not None and o <= 0 for o in out):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): computed output size "
                             f"would be negative or zero. Received inputs shape={shape}, "
                             f"kernel_size={self.kernel_size}, dilation_rate="
                             f"{self.dilation_rate}, padding={self.padding!r}")
        if self.data_format == "channels_last":
            return (shape[0], *out, self._out_channels)
        return (shape[0], self._out_channels, *out)

    # ----------------------------------------------------------------------------- call
    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, inputs: torch.Tensor, training: bool = False,
             logits: bool = False) -> torch.Tensor:
        reference = next(iter(self.parameters()))
        x = cast_inputs(inputs, reference)
        if self.data_format == "channels_last":
            x = x.movedim(-1, 1)
        z = self._forward(x)
        if self.data_format == "channels_last":
            z = z.movedim(1, -1)
        return z if logits else self.activation(z)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                # Keras's convolutions write it even when None (the base Layer only when set).
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}


class KernelConv(BaseConv):
    """A convolution with one ``kernel`` (Conv1D, the transposed convolutions)."""

    def __init__(self, filters: int, kernel_size: Any, *, kernel_initializer: Any,
                 kernel_regularizer: Any, kernel_constraint: Any, **kwargs: Any):
        super().__init__(kernel_size, **kwargs)
        self.filters = check_positive_int(self, "filters", filters)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.kernel_constraint = resolve(self, "kernel_constraint", kernel_constraint)

    @property
    def _out_channels(self) -> int:
        return self.filters

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint)}


class GroupedConv(KernelConv):
    """A convolution of any rank with ``groups`` (Conv1D, Conv3D; Conv2D has its own NHWC path).

    Args:
        filters: number of output channels.
        kernel_size, strides, dilation_rate: int or a ``rank``-tuple; strides > 1 cannot be
            combined with dilation_rate > 1.
        padding: ``"valid"``, ``"same"`` (and ``"causal"`` for Conv1D).
        groups: input and output channels are split into this many groups.

    The kernel's Keras shape is ``(*kernel_size, in_channels // groups, filters)``; it is stored
    as ``(filters, in_channels // groups, *kernel_size)`` for ``F.convNd``.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: Any = None, use_bias: bool = True,
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
        self.groups = check_positive_int(self, "groups", groups)
        if self.filters % self.groups:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): the number of "
                              f"filters must be evenly divisible by the number of groups. "
                              f"Received: groups={self.groups}, filters={self.filters}")

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): the number of input "
                             f"channels must be evenly divisible by the number of groups. "
                             f"Received groups={self.groups}, but the input has {channels} "
                             f"channels (full input shape is {tuple(input_shape)})")
        self.compute_output_shape(input_shape)
        rank = self.rank
        self.add_weight("kernel", (*self.kernel_size, channels // self.groups, self.filters),
                        self.kernel_initializer, self.kernel_regularizer,
                        torch_perm=(rank + 1, rank, *range(rank)),  # (*k, in, f) -> (f, in, *k)
                        constraint=self.kernel_constraint)
        self._add_bias(self.filters)
        self.input_axes = {self._channel_axis: channels}
        super().build(input_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x, padding = pad_spatial(x, self.padding, self.kernel_size, self.strides,
                                 self.dilation_rate)
        return CONV_FUNCTIONS[self.rank](x, self.kernel, self.bias, self.strides, padding,
                                         self.dilation_rate, self.groups)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups}


class Conv1D(GroupedConv):
    """1-D convolution (cross-correlation) over ``(batch, steps, channels)`` sequences; see
    :class:`GroupedConv` (``padding`` may also be ``"causal"``)."""

    rank = 1
    paddings = ("valid", "same", "causal")


class Conv3D(GroupedConv):
    """3-D convolution over ``(batch, depth, height, width, channels)`` volumes (channels-first:
    ``(batch, channels, depth, height, width)``); see :class:`GroupedConv`."""

    rank = 3

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1, 1),
                 padding: str = "valid", data_format: str | None = None,
                 dilation_rate: Any = (1, 1, 1), **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, **kwargs)
