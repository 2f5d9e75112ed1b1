"""Conv2D, and the argument/padding helpers shared with the pooling layers.

Images are channels-last ``(batch, height, width, channels)``. ``x.permute(0, 3, 1, 2)`` of a
contiguous NHWC tensor is an NCHW *view* in ``torch.channels_last`` memory format, which the CPU
(oneDNN) and GPU convolution kernels take without a copy; the kernel is stored in the same memory
format, and the NCHW result (channels_last again) permuted back is a contiguous NHWC tensor.

``padding="same"`` follows TensorFlow/Keras: output size ``ceil(n / stride)``, total padding
``max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)`` split with the extra row/column at the
bottom/right. Symmetric cases use the convolution's own padding; asymmetric ones pad explicitly.

Convolution or cross-correlation? Like Keras, PyTorch and every deep-learning library, Conv2D
computes the cross-correlation ``y(i, j) = sum_{p,q} x(i + p, j + q) w(p, q)`` (plus bias, summed
over input channels). The textbook convolution ``y(i, j) = sum_{p,q} x(i - p, j - q) w(p, q)`` is the
same operation with the kernel flipped in both spatial axes: ``conv(x, w) == corr(x, w[::-1, ::-1])``.
Because the kernel is learned, the two are equally expressive; only imported kernels (e.g. a
hand-made filter written for the textbook form) need flipping. ``tests/test_keras_conv_pool.py``
checks both statements against SciPy's ``correlate2d`` and ``convolve2d``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers import channel_specs
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import (
    PreActivationMixin,
    cast_inputs,
    check_positive_int,
    is_int,
    resolve,
)
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["Conv2D", "conv_output_length", "normalize_data_format", "normalize_padding",
           "normalize_tuple", "same_padding"]


# ------------------------------------------------------------------------------- helpers
def normalize_tuple(value: Any, n: int, name: str, layer: Layer,
                    allow_zero: bool = False) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints -> a tuple of ``n`` ints (> 0, or >= 0 if allow_zero)."""
    prefix = f"Layer '{layer.name}' ({type(layer).__name__}): "
    message = f"{prefix}the `{name}` argument must be a tuple of {n} integers. Received {name}={value!r}"
    if is_int(value):
        values: tuple[Any, ...] = (value,) * n
    elif isinstance(value, (list, tuple)) and len(value) == n:
        values = tuple(value)
    else:
        raise ConfigError(message)
    if not all(is_int(v) for v in values):
        raise ConfigError(message)
    bad = {v for v in values if (v < 0 if allow_zero else v <= 0)}
    if bad:
        requirement = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{message}, including values {bad} that do not satisfy "
                          f"`value {requirement}`")
    return tuple(int(v) for v in values)


def normalize_padding(value: Any, layer: Layer) -> str:
    padding = value.lower() if isinstance(value, str) else value
    if padding not in ("valid", "same"):
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): the `padding` argument "
                          f"must be one of 'valid', 'same'. Received: padding={value!r}")
    return padding


def normalize_data_format(value: Any, layer: Layer) -> str:
    if value is None:
        return "channels_last"
    fmt = value.lower() if isinstance(value, str) else value
    if fmt not in ("channels_last", "channels_first"):
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): the `data_format` "
                          f"argument must be one of 'channels_last', 'channels_first'. "
                          f"Received: data_format={value!r}")
    return fmt


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) of one spatial axis; the extra cell goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_output_length(size: int | None, kernel: int, padding: str, stride: int,
                       dilation: int = 1) -> int | None:
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def spatial_padding(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                    dilation: Sequence[int]) -> tuple[tuple[int, int], ...]:
    return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(sizes, kernel, strides, dilation))


# ------------------------------------------------------------------------------- Conv2D
class Conv2D(PreActivationMixin, Layer):
    """2-D convolution (cross-correlation, as in Keras) over channels-last images.

    Args:
        filters: number of output channels.
        kernel_size: int or (height, width).
        strides: int or (height, width); strides > 1 cannot be combined with dilation > 1 (Keras).
        padding: ``"valid"`` or ``"same"`` (TensorFlow semantics, see module docstring).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: int or (height, width).
        groups: input and output channels are split into this many groups.

    The kernel's Keras shape is ``(kh, kw, in_channels // groups, filters)``; it is stored as
    ``(filters, in_channels // groups, kh, kw)`` in channels_last memory format.
    """

    input_ndim = 4
    # The protocols of bigmodel.compress (structured pruning, quantization).
    channel_spec = channel_specs.CONV2D
    quantized_weight = "kernel"
    is_convolution = True

    def __init__(self, filters: int, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = (1, 1), padding: str = "valid",
                 data_format: str | None = None, dilation_rate: int | Sequence[int] = (1, 1),
                 groups: int = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = check_positive_int(self, "filters", filters)
        self.groups = check_positive_int(self, "groups", groups)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", self)
        self.strides = normalize_tuple(strides, 2, "strides", self)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", self)
        self.padding = normalize_padding(padding, self)
        self.data_format = normalize_data_format(data_format, self)
        if self.filters % self.groups:
            raise ConfigError(f"Layer '{self.name}' (Conv2D): the number of filters must be evenly "
                              f"divisible by the number of groups. Received: groups={self.groups}, "
                              f"filters={self.filters}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"Layer '{self.name}' (Conv2D): `strides > 1` not supported in "
                              f"conjunction with `dilation_rate > 1`. Received: "
                              f"strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.kernel_constraint = resolve(self, "kernel_constraint", kernel_constraint)
        self.bias_constraint = resolve(self, "bias_constraint", bias_constraint)
        self.activation = resolve(self, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self.register_parameter("bias", None)  # replaced in build() when use_bias

    def _spatial(self, shape: Shape) -> tuple[Any, Any]:
        return (shape[1], shape[2]) if self.data_format == "channels_last" else (shape[2], shape[3])

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ShapeError(f"Layer '{self.name}' (Conv2D): the channel dimension of the inputs "
                             f"should be defined. Found None. Full input shape received: "
                             f"{tuple(input_shape)}")
        if channels % self.groups:
            raise ShapeError(f"Layer '{self.name}' (Conv2D): the number of input channels must be "
                             f"evenly divisible by the number of groups. Received groups="
                             f"{self.groups}, but the input has {channels} channels (full input "
                             f"shape is {tuple(input_shape)})")
        self.compute_output_shape(input_shape)  # raises if the image is smaller than the kernel
        kh, kw = self.kernel_size
        self.add_weight("kernel", (kh, kw, channels // self.groups, self.filters),
                        self.kernel_initializer, self.kernel_regularizer, torch_perm=(3, 2, 0, 1),
                        constraint=self.kernel_constraint)
        with torch.no_grad():  # same memory format as the NHWC activations: no hidden copy
            # Not .contiguous(memory_format=...): with one input channel (a grayscale first layer)
            # the shape is ambiguous, .contiguous keeps NCHW strides, and oneDNN then runs the
            # whole stack in NCHW whenever the input's strides are ambiguous too (3-6x slower
            # pooling, extra copies). empty_like always gives true channels_last strides.
            kernel = self.kernel.data
            self.kernel.data = torch.empty_like(
                kernel, memory_format=torch.channels_last).copy_(kernel)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                            constraint=self.bias_constraint)
        self.input_axes = {self._channel_axis: channels}
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False,
             logits: bool = False) -> torch.Tensor:
        if self.data_format == "channels_last":
            # NCHW view of the NHWC batch (channels_last memory) in, NHWC view of the result out;
            # an element-wise activation acts on the fresh NCHW result (in place for relu), any
            # other on the NHWC result (softmax normalises the channel axis, -1).
            if logits or activations.is_elementwise(self.activation):
                return self.call_nchw(inputs.permute(0, 3, 1, 2), training, logits).permute(
                    0, 2, 3, 1)
            z = self.call_nchw(inputs.permute(0, 3, 1, 2), training, logits=True)
            return self.activation(z.permute(0, 2, 3, 1))
        return self.call_nchw(inputs, training, logits)

    def accepts_nchw(self) -> bool:
        """Whether :meth:`call_nchw` is this layer's ``call`` minus the layout permutes (a
        ``Sequential`` then chains such layers in NCHW and permutes once at each end)."""
        return (self.data_format == "channels_last" and type(self).call is Conv2D.call
                and activations.is_elementwise(self.activation))

    def call_nchw(self, inputs: torch.Tensor, training: bool = False,
                  logits: bool = False) -> torch.Tensor:
        """The convolution on an NCHW tensor (whatever ``data_format``), NCHW out; the
        activation acts on that NCHW tensor (channels_last layers use this path only for an
        element-wise activation, see :meth:`accepts_nchw`)."""
        x = cast_inputs(inputs, self.kernel)
        padding: tuple[int, int] = (0, 0)
        if self.padding == "same":
            (top, bottom), (left, right) = spatial_padding(
                x.shape[2:], self.kernel_size, self.strides, self.dilation_rate)
            if top == bottom and left == right:
                padding = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        z = F.conv2d(x, self.kernel, self.bias, self.strides, padding, self.dilation_rate,
                     self.groups)
        return z if logits else activations.activate_fresh(self.activation, z)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        sizes = self._spatial(shape)
        out = [conv_output_length(n, k, self.padding, s, d) for n, k, s, d in
               zip(sizes, self.kernel_size, self.strides, self.dilation_rate)]
        if any(o is not None and o <= 0 for o in out):
            raise ShapeError(f"Layer '{self.name}' (Conv2D): computed output size would be "
                             f"negative or zero. Received inputs shape={shape}, kernel shape="
                             f"{(*self.kernel_size, shape[self._channel_axis], self.filters)}, "
                             f"dilation_rate={self.dilation_rate}, padding={self.padding!r}")
        if self.data_format == "channels_last":
            return (shape[0], out[0], out[1], self.filters)
        return (shape[0], self.filters, out[0], out[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}

