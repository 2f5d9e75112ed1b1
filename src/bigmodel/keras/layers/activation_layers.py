"""Activation layers with arguments: ReLU, LeakyReLU, ELU, PReLU, Softmax (Keras 3 defaults)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import is_int, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]


def _non_negative(layer: Layer, name: str, value: Any, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0):
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): {name} cannot be None "
                          f"or a negative value. Received: {name}={value!r}")
    return float(value)


class ReLU(Layer):
    """``max(x, 0)`` with Keras's options: ``negative_slope`` below ``threshold``, capped at
    ``max_value``."""

    supports_masking = True

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_value = _non_negative(self, "max_value", max_value, allow_none=True)
        self.negative_slope = _non_negative(self, "negative_slope", negative_slope)
        self.threshold = _non_negative(self, "threshold", threshold)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return activations.relu(inputs, negative_slope=self.negative_slope,
                                max_value=self.max_value, threshold=self.threshold)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(Layer):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below (default 0.3, Keras's; the
    ``activations.leaky_relu`` function defaults to 0.2). ``alpha=`` is Keras 2's name."""

    supports_masking = True

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(self, "negative_slope", negative_slope)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below."""

    supports_masking = True

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise ConfigError(f"Layer '{self.name}' (ELU): `alpha` must be a number. "
                              f"Received: alpha={alpha!r}")
        self.alpha = float(alpha)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return F.elu(inputs, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """``max(x, 0) + alpha * min(x, 0)`` with a learned ``alpha`` of shape ``input_shape[1:]``
    (size 1 along ``shared_axes``, 1-indexed non-batch axes)."""

    supports_masking = True

    def __init__(self, alpha_initializer: Any = "Zeros", alpha_regularizer: Any = None,
                 alpha_constraint: Any = None, shared_axes: int | Sequence[int] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha_initializer = resolve(self, "alpha_initializer", alpha_initializer)
        self.alpha_regularizer = resolve(self, "alpha_regularizer", alpha_regularizer)
        self.alpha_constraint = resolve(self, "alpha_constraint", alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(is_int(a) and a >= 1 for a in axes):
                raise ConfigError(f"Layer '{self.name}' (PReLU): `shared_axes` must hold "
                                  f"non-batch axes (integers >= 1). Received: "
                                  f"shared_axes={shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape: Shape) -> None:
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis > len(shape):
                raise ShapeError(f"Layer '{self.name}' (PReLU): shared axis {axis} is out of "
                                 f"range for an input of shape {tuple(input_shape)}")
            shape[axis - 1] = 1
        if any(s is None for s in shape):
            raise ShapeError(f"Layer '{self.name}' (PReLU): every non-shared axis must have a "
                             f"known size. Received input shape {tuple(input_shape)} with "
                             f"shared_axes={self.shared_axes}")
        self.add_weight("alpha", shape, self.alpha_initializer, self.alpha_regularizer,
                        constraint=self.alpha_constraint)
        self.input_ndim = len(input_shape)
        self.input_axes = {i + 1: s for i, s in enumerate(shape) if i + 1 not in
                           (self.shared_axes or ())}
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return F.relu(inputs) - self.alpha * F.relu(-inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes}


class Softmax(Layer):
    """Softmax over ``axis`` (an int or a list of axes). A ``mask`` (broadcastable to the
    input; True or > 0.5 = keep) gives masked positions probability 0, as in Keras."""

    supports_masking = True

    def __init__(self, axis: int | Sequence[int] = -1, **kwargs: Any):
        super().__init__(**kwargs)
        valid = is_int(axis) or (isinstance(axis, (list, tuple)) and len(axis) > 0
                                 and all(is_int(a) for a in axis))
        if not valid:
            raise ConfigError(f"Layer '{self.name}' (Softmax): `axis` must be an int or a list "
                              f"of ints. Received: axis={axis!r}")
        self.axis: int | list[int] = int(axis) if is_int(axis) else [int(a) for a in axis]

    def call(self, inputs: torch.Tensor, training: bool = False,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            mask = torch.as_tensor(mask, device=inputs.device)
            if mask.dim() > inputs.dim() or any(
                    m != 1 and m != i for m, i in zip(mask.shape[::-1], inputs.shape[::-1])):
                raise ShapeError(f"Layer '{self.name}' (Softmax): the `mask` must be "
                                 f"broadcastable to `inputs`. Received: inputs.shape="
                                 f"{tuple(inputs.shape)}, mask.shape={tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                mask = mask > 0.5
            inputs = torch.where(mask, inputs, torch.full_like(inputs, -1e9))
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        if len(axes) == 1:
            outputs = torch.softmax(inputs, dim=axes[0])
        else:
            outputs = torch.exp(inputs - torch.logsumexp(inputs, dim=axes, keepdim=True))
        if mask is not None:
            outputs = torch.where(mask, outputs, torch.zeros_like(outputs))
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
