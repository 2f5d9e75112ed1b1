"""Layers that move or pad values without weights: RepeatVector, Permute, UpSampling1D/2D/3D,
ZeroPadding1D/2D/3D, Cropping1D/2D/3D (Keras 3 arguments, channels-last by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format, normalize_tuple
from bigmodel.keras.layers.core import check_positive_int, is_int
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["Cropping1D", "Cropping2D", "Cropping3D", "Permute", "RepeatVector", "UpSampling1D",
           "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"]


class RepeatVector(Layer):
    """``(batch, features) -> (batch, n, features)``: the input repeated ``n`` times."""

    input_ndim = 2

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n = check_positive_int(self, "n", n)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the non-batch axes; ``dims`` is 1-indexed (``(2, 1)`` swaps the first two)."""

    def __init__(self, dims: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        dims_t = tuple(dims) if isinstance(dims, (list, tuple)) else None
        if (dims_t is None or not all(is_int(d) for d in dims_t)
                or sorted(dims_t) != list(range(1, len(dims_t) + 1))):
            raise ConfigError(f"Layer '{self.name}' (Permute): invalid permutation argument "
                              f"`dims`: it must be a permutation of [1, ..., ndim - 1]. "
                              f"Received: dims={dims!r}")
        self.dims = tuple(int(d) for d in dims_t)
        self.input_ndim = len(self.dims) + 1

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.permute(0, *self.dims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}


class UpSampling1D(Layer):
    """Repeats each step ``size`` times along the steps axis."""

    input_ndim = 3

    def __init__(self, size: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.size = check_positive_int(self, "size", size)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.repeat_interleave(self.size, dim=1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        steps = None if input_shape[1] is None else input_shape[1] * self.size
        return (input_shape[0], steps, input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size}


class _UpSampling(Layer):
    """Repeats each cell ``size`` times along each of the ``rank`` spatial axes."""

    rank = 2

    def __init__(self, size: Any, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_ndim = self.rank + 2
        self.size = normalize_tuple(size, self.rank, "size", self)
        self.data_format = normalize_data_format(data_format, self)
        first = 1 if self.data_format == "channels_last" else 2
        self._axes = tuple(range(first, first + self.rank))

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        for axis, factor in zip(self._axes, self.size):
            inputs = inputs.repeat_interleave(factor, dim=axis)
        return inputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        for axis, factor in zip(self._axes, self.size):
            shape[axis] = None if shape[axis] is None else shape[axis] * factor
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format}


class UpSampling2D(_UpSampling):
    """Scales images up by ``size`` (rows, cols): ``"nearest"`` repeats pixels, ``"bilinear"``
    interpolates with half-pixel centres (TensorFlow's and ``F.interpolate``'s convention)."""

    def __init__(self, size: Any = (2, 2), data_format: str | None = None,
                 interpolation: str = "nearest", **kwargs: Any):
        super().__init__(size, data_format, **kwargs)
        if interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"Layer '{self.name}' (UpSampling2D): `interpolation` must be one "
                              f"of 'nearest', 'bilinear', 'bicubic'. Received: "
                              f"interpolation={interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.interpolation == "nearest":
            return super().call(inputs, training)
        last = self.data_format == "channels_last"
        x = inputs.permute(0, 3, 1, 2) if last else inputs
        out = F.interpolate(x, scale_factor=self.size, mode=self.interpolation,
                            align_corners=False)
        return out.permute(0, 2, 3, 1) if last else out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "interpolation": self.interpolation}


class UpSampling3D(_UpSampling):
    """Scales volumes up by ``size`` (depth, rows, cols), repeating cells (Keras has no
    interpolation option here)."""

    rank = 3

    def __init__(self, size: Any = (2, 2, 2), data_format: str | None = None, **kwargs: Any):
        super().__init__(size, data_format, **kwargs)


def _pairs(layer: Layer, value: Any, name: str, rank: int) -> tuple[tuple[int, int], ...]:
    """int -> same on every side; (a, b) -> per axis (rank 2) or (before, after) (rank 1);
    ((a, b), (c, d)) -> explicit."""
    message = (f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` should be an int, a tuple "
               f"of {rank if rank > 1 else 2} ints, or a tuple of {rank} tuples of 2 ints. "
               f"Received: {name}={value!r}")
    if is_int(value):
        pairs = ((value, value),) * rank
    elif rank == 1 and isinstance(value, (list, tuple)) and len(value) == 2:
        pairs = (tuple(value),)
    elif isinstance(value, (list, tuple)) and len(value) == rank and all(is_int(v) for v in value):
        pairs = tuple((v, v) for v in value)
    elif (isinstance(value, (list, tuple)) and len(value) == rank
          and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value)):
        pairs = tuple(tuple(v) for v in value)
    else:
        raise ConfigError(message)
    if not all(is_int(v) and v >= 0 for pair in pairs for v in pair):
        raise ConfigError(message)
    return tuple((int(a), int(b)) for a, b in pairs)


class _SpatialEdges(Layer):
    """ZeroPadding / Cropping: ``amounts`` per spatial axis, (before, after)."""

    rank = 2
    argument = "padding"
    sign = 1  # +1 pads, -1 crops

    def __init__(self, amounts: Any, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_ndim = self.rank + 2
        self.amounts = _pairs(self, amounts, self.argument, self.rank)
        self.data_format = normalize_data_format(data_format, self)

    def _axes(self) -> range:
        return range(1, self.rank + 1) if self.data_format == "channels_last" else range(
            2, self.rank + 2)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.sign < 0:
            self.compute_output_shape(tuple(inputs.shape))  # a crop larger than the input
        flat: list[int] = []
        axes = list(self._axes())
        for axis in range(inputs.dim() - 1, 0, -1):  # F.pad lists the last axis first
            before, after = self.amounts[axes.index(axis)] if axis in axes else (0, 0)
            flat += [self.sign * before, self.sign * after]
        return F.pad(inputs, flat)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        for axis, (before, after) in zip(self._axes(), self.amounts):
            if shape[axis] is not None:
                shape[axis] += self.sign * (before + after)
                if shape[axis] <= 0:
                    raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): "
                                     f"{self.argument}={self.amounts} leaves nothing of an input "
                                     f"of shape {tuple(input_shape)}")
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), self.argument: [list(p) for p in self.amounts],
                  "data_format": self.data_format}
        if self.rank == 1:
            config[self.argument] = list(self.amounts[0])
            config.pop("data_format")
        return config


class ZeroPadding1D(_SpatialEdges):
    """Adds zeros at the start and end of the steps axis: ``padding`` int or (before, after)."""

    rank = 1

    def __init__(self, padding: Any = 1, **kwargs: Any):
        super().__init__(padding, **kwargs)


class ZeroPadding2D(_SpatialEdges):
    """Adds rows/columns of zeros: ``padding`` int, (rows, cols) or ((top, bottom), (left, right))."""

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any):
        super().__init__(padding, data_format, **kwargs)


class Cropping1D(_SpatialEdges):
    """Removes steps at the start and end: ``cropping`` int or (before, after)."""

    rank = 1
    argument = "cropping"
    sign = -1

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any):
        super().__init__(cropping, **kwargs)


class Cropping2D(_SpatialEdges):
    """Removes rows/columns: ``cropping`` int, (rows, cols) or ((top, bottom), (left, right))."""

    argument = "cropping"
    sign = -1

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(cropping, data_format, **kwargs)


class ZeroPadding3D(_SpatialEdges):
    """Adds zeros around volumes: ``padding`` int, (depth, rows, cols) or three (before, after)
    pairs."""

    rank = 3

    def __init__(self, padding: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(padding, data_format, **kwargs)


class Cropping3D(_SpatialEdges):
    """Removes cells of volumes: ``cropping`` int, (depth, rows, cols) or three (before, after)
    pairs."""

    rank = 3
    argument = "cropping"
    sign = -1

    def __init__(self, cropping: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(cropping, data_format, **kwargs)
