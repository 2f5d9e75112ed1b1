"""Per-sample normalizations without statistics: ``UnitNormalization`` and ``RMSNormalization``
(Keras 3 names, arguments, defaults and weights)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["RMSNormalization", "UnitNormalization"]


def _axis_argument(layer: Layer, axis: Any) -> int | list[int]:
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, int) and not isinstance(a, bool) for a in axis):
        return list(axis)
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): invalid value for `axis`: "
                      f"expected an int or a list/tuple of ints. Received: axis={axis!r}")


def _axes(layer: Layer, axis: int | list[int], shape: Shape) -> list[int]:
    """``axis`` as sorted non-negative axes of ``shape``, never the batch axis."""
    raw = axis if isinstance(axis, list) else [axis]
    rank = len(shape)
    if any(not -rank <= a < rank for a in raw) or any(a % rank == 0 for a in raw):
        raise ShapeError(f"Layer '{layer.name}' ({type(layer).__name__}): axis {axis} is out of "
                         f"bounds for input shape {tuple(shape)} (axis 0 is the batch axis)")
    return sorted(a % rank for a in raw)


class UnitNormalization(Layer):
    """Each sample divided by its L2 norm over ``axis``: ``x / sqrt(max(sum(x**2), 1e-12))``.

    Args:
        axis: an int or a list of ints (not the batch axis).

    Raises:
        ConfigError: ``axis`` is not an int or a list of ints.
        ShapeError: ``axis`` is out of bounds for the input.
    """

    supports_masking = True

    def __init__(self, axis: int | Sequence[int] = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _axis_argument(self, axis)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _axes(self, self.axis, input_shape)
        return tuple(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.float()
        axes = _axes(self, self.axis, tuple(x.shape))
        return x * torch.rsqrt(x.square().sum(dim=axes, keepdim=True).clamp(min=1e-12))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class RMSNormalization(Layer):
    """``x / sqrt(mean(x**2 over axis) + epsilon) * scale``, ``scale`` a weight over ``axis``
    (initialized to ones).

    Args:
        axis: an int or a list of ints (not the batch axis); sizes must be known at build.
        epsilon: added to the mean square (default 1e-6, Keras's).

    Raises:
        ConfigError: a bad ``axis`` or a negative ``epsilon``.
        ShapeError: ``axis`` out of bounds or of unknown size.
    """

    supports_masking = True

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _axis_argument(self, axis)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon < 0:
            raise ConfigError(f"Layer '{self.name}' (RMSNormalization): epsilon must be a "
                              f"non-negative number. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.register_parameter("scale", None)

    def build(self, input_shape: Shape) -> None:
        self._axes = _axes(self, self.axis, input_shape)
        shape = tuple(input_shape[a] for a in self._axes)
        if None in shape:
            raise ShapeError(f"Layer '{self.name}' (RMSNormalization): the normalized axes "
                             f"{self.axis} must have known sizes; input shape "
                             f"{tuple(input_shape)}")
        self.add_weight("scale", shape, "ones")
        # scale broadcast over the input: sizes on the normalized axes, 1 elsewhere
        self._broadcast = [input_shape[i] if i in self._axes else 1
                           for i in range(len(input_shape))]
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _axes(self, self.axis, input_shape)
        return tuple(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.float()
        mean_square = x.square().mean(dim=self._axes, keepdim=True)
        return x * torch.rsqrt(mean_square + self.epsilon) * self.scale.reshape(self._broadcast)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
