"""``RecurrentConv2D``: the recurrent convolutional layer of Liang & Hu (2015) on the Keras surface.

Keras has no such layer; this one follows the Keras conventions (channels-last images, Keras weight
shapes, initializer/regularizer arguments, ``get_config``) and computes exactly
:class:`bigmodel.nn.rcl.RecurrentConv2d`::

    z(0) = conv(u, kernel) + bias                       x(t) = g(relu(z(t)))
    z(t) = conv(u, kernel) + conv(x(t-1), recurrent_kernel) + bias     (t = 1 .. steps)

with ``'same'`` padding (odd kernels) and ``g`` the local response normalization
(``normalization="lrn"``, the paper) or the identity (``normalization=None``). For batch
normalization per step use the plain-PyTorch ``RecurrentConv2d(norm="batch")``.

Weights in Keras order: ``kernel (kh, kw, in_channels, filters)``, ``recurrent_kernel
(rh, rw, filters, filters)``, ``bias (filters,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format, normalize_tuple
from bigmodel.keras.layers.core import cast_inputs, check_positive_int, is_int, resolve
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn.rcl import default_lrn_size, recurrent_conv2d

__all__ = ["RecurrentConv2D"]


class RecurrentConv2D(Layer):
    """Recurrent convolutional layer: ``steps`` unfolded iterations with shared kernels.

    Args:
        filters: feature maps of the layer and of its recurrent state.
        kernel_size: feed-forward kernel, int or (height, width), odd.
        steps: recurrent iterations ``T >= 0`` (0: a convolution + ReLU + normalization).
        recurrent_kernel_size: recurrent kernel, odd; defaults to ``kernel_size``.
        normalization: ``"lrn"`` (default) or ``None``.
        lrn_size: LRN neighbourhood; defaults to ``filters // 8 + 1``.
        lrn_alpha, lrn_beta: LRN constants (0.001, 0.75).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Output shape: the input's spatial size with ``filters`` channels.
    """

    input_ndim = 4

    def __init__(self, filters: int, kernel_size: int | Sequence[int], steps: int = 3,
                 recurrent_kernel_size: int | Sequence[int] | None = None,
                 normalization: str | None = "lrn", lrn_size: int | None = None,
                 lrn_alpha: float = 1e-3, lrn_beta: float = 0.75, data_format: str | None = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = check_positive_int(self, "filters", filters)
        self.kernel_size = self._odd(normalize_tuple(kernel_size, 2, "kernel_size", self),
                                     "kernel_size")
        self.recurrent_kernel_size = (self.kernel_size if recurrent_kernel_size is None else
                                      self._odd(normalize_tuple(recurrent_kernel_size, 2,
                                                                "recurrent_kernel_size", self),
                                                "recurrent_kernel_size"))
        if not is_int(steps) or steps < 0:
            raise ConfigError(f"Layer '{self.name}' (RecurrentConv2D): `steps` must be an integer "
                              f">= 0. Received: steps={steps!r}")
        if normalization not in ("lrn", None):
            raise ConfigError(f"Layer '{self.name}' (RecurrentConv2D): `normalization` must be "
                              f"'lrn' or None (per-step batch normalization: bigmodel.nn.rcl."
                              f"RecurrentConv2d(norm='batch')). Received: "
                              f"normalization={normalization!r}")
        self.steps = int(steps)
        self.normalization = normalization
        self.lrn_size = (default_lrn_size(self.filters) if lrn_size is None else
                         check_positive_int(self, "lrn_size", lrn_size))
        self.lrn_alpha = float(lrn_alpha)
        self.lrn_beta = float(lrn_beta)
        self.data_format = normalize_data_format(data_format, self)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.recurrent_initializer = resolve(self, "recurrent_initializer", recurrent_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.recurrent_regularizer = resolve(self, "recurrent_regularizer", recurrent_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self.register_parameter("bias", None)

    def _odd(self, size: tuple[int, ...], name: str) -> tuple[int, int]:
        if size[0] % 2 == 0 or size[1] % 2 == 0:
            raise ConfigError(f"Layer '{self.name}' (RecurrentConv2D): `{name}` must be odd in both "
                              f"axes, since the recurrent state is convolved with 'same' padding "
                              f"that needs a centred kernel. Received: {name}={size}")
        return (int(size[0]), int(size[1]))

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ShapeError(f"Layer '{self.name}' (RecurrentConv2D): the channel dimension of the "
                             f"inputs should be defined. Found None. Full input shape received: "
                             f"{tuple(input_shape)}")
        self.add_weight("kernel", (*self.kernel_size, channels, self.filters),
                        self.kernel_initializer, self.kernel_regularizer, torch_perm=(3, 2, 0, 1))
        self.add_weight("recurrent_kernel", (*self.recurrent_kernel_size, self.filters,
                                             self.filters),
                        self.recurrent_initializer, self.recurrent_regularizer,
                        torch_perm=(3, 2, 0, 1))
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)
        self.input_axes = {self._channel_axis: channels}
        super().build(input_shape)

    def _normalize(self, step: int, z: torch.Tensor) -> torch.Tensor:
        z = F.relu(z)
        if self.normalization == "lrn":
            z = F.local_response_norm(z, self.lrn_size, self.lrn_alpha, self.lrn_beta, k=1.0)
        return z

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = cast_inputs(inputs, self.kernel)
        if self.data_format == "channels_last":
            x = x.permute(0, 3, 1, 2)  # NCHW view
        out = recurrent_conv2d(x, self.kernel, self.recurrent_kernel, self.bias, self.steps,
                               self._normalize)
        return out.permute(0, 2, 3, 1) if self.data_format == "channels_last" else out

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.data_format == "channels_last":
            return (*shape[:3], self.filters)
        return (shape[0], self.filters, *shape[2:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "steps": self.steps,
                "recurrent_kernel_size": list(self.recurrent_kernel_size),
                "normalization": self.normalization, "lrn_size": self.lrn_size,
                "lrn_alpha": self.lrn_alpha, "lrn_beta": self.lrn_beta,
                "data_format": self.data_format, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}
