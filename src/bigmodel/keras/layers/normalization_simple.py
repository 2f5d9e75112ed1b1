"""Per-sample normalizations without running statistics: ``UnitNormalization``,
``RMSNormalization`` and ``GroupNormalization`` (Keras 3 names, arguments, defaults and weights)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["GroupNormalization", "RMSNormalization", "UnitNormalization"]


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


class GroupNormalization(Layer):
    """Normalizes each sample over groups of channels: the ``axis`` channels are split into
    ``groups`` groups, each normalized by its mean and (biased) variance over the group's channels
    and all other non-batch axes, then ``gamma`` / ``beta`` per channel.

    Args:
        groups: number of groups (divides the channels; -1: one group per channel).
        axis: the channel axis (default the last).
        epsilon: added to the variance (default 1e-3).
        center, scale: learn ``beta`` / ``gamma`` (shape ``(channels,)``).
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: as Keras.

    Raises:
        ConfigError: ``groups`` not a positive int (or -1), a bad ``epsilon``.
        ShapeError: the channels are unknown, fewer than ``groups`` or not a multiple of it.
    """

    supports_masking = True

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or not (
                groups > 0 or groups == -1):
            raise ConfigError(f"Layer '{self.name}' (GroupNormalization): groups must be a "
                              f"positive int or -1. Received: groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ConfigError(f"Layer '{self.name}' (GroupNormalization): axis must be an int. "
                              f"Received: axis={axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon < 0:
            raise ConfigError(f"Layer '{self.name}' (GroupNormalization): epsilon must be a "
                              f"non-negative number. Received: epsilon={epsilon!r}")
        self.groups, self.axis, self.epsilon = groups, axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        for argument, value in (("beta_initializer", beta_initializer),
                                ("gamma_initializer", gamma_initializer),
                                ("beta_regularizer", beta_regularizer),
                                ("gamma_regularizer", gamma_regularizer),
                                ("beta_constraint", beta_constraint),
                                ("gamma_constraint", gamma_constraint)):
            setattr(self, argument, resolve(self, argument, value))
        self.register_parameter("gamma", None)
        self.register_parameter("beta", None)

    def build(self, input_shape: Shape) -> None:
        self._axis = _axes(self, self.axis, input_shape)[0]
        channels = input_shape[self._axis]
        if channels is None:
            raise ShapeError(f"Layer '{self.name}' (GroupNormalization): axis {self.axis} of the "
                             f"input must have a known size; input shape {tuple(input_shape)}")
        groups = channels if self.groups == -1 else self.groups
        if channels < groups or channels % groups:
            raise ShapeError(f"Layer '{self.name}' (GroupNormalization): the number of groups "
                             f"({groups}) must divide the number of channels ({channels}) and "
                             f"not exceed it")
        self.groups = groups  # Keras writes the resolved count back too
        if self.scale:
            self.add_weight("gamma", (channels,), self.gamma_initializer, self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center:
            self.add_weight("beta", (channels,), self.beta_initializer, self.beta_regularizer,
                            constraint=self.beta_constraint)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _axes(self, self.axis, input_shape)
        return tuple(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.float()
        moved = x.movedim(self._axis, -1)  # (batch, ..., channels)
        channels = moved.shape[-1]
        grouped = moved.reshape(moved.shape[0], -1, self.groups, channels // self.groups)
        var, mean = torch.var_mean(grouped, dim=(1, 3), keepdim=True, correction=0)
        out = ((grouped - mean) * torch.rsqrt(var + self.epsilon)).reshape(moved.shape)
        if self.gamma is not None:
            out = out * self.gamma
        if self.beta is not None:
            out = out + self.beta
        return out.movedim(-1, self._axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups, "axis": self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}
