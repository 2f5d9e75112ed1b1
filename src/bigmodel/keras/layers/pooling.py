"""2-D and 3-D pooling layers: MaxPooling2D/3D, AveragePooling2D/3D, GlobalAveragePooling2D/3D,
GlobalMaxPooling2D/3D (one rank-generic implementation; the 1-D layers are in pooling1d.py).

``padding="same"`` follows TensorFlow: output size ``ceil(n / stride)``, the extra padded cell of
each axis at the end (bottom/right/back); max pooling never picks a padded cell and average
pooling averages only the real cells of each window (so border windows average fewer values).
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

__all__ = ["AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling2D",
           "GlobalAveragePooling3D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling2D",
           "MaxPooling3D"]

# F.{max,avg}_poolNd by the number of spatial axes.
_MAX_POOL = {2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}

Pads = tuple[tuple[int, int], ...]


def _flat(pads: Pads) -> list[int]:
    """(before, after) per spatial axis -> F.pad's list (last axis first)."""
    return [p for before_after in reversed(pads) for p in before_after]


class _Pooling(Layer):
    """Windowed pooling over the ``rank`` spatial axes (subclasses set ``rank`` and ``_pool``)."""

    rank = 2

    def __init__(self, pool_size: int | Sequence[int] = 2,
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_ndim = self.rank + 2
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", self)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, self.rank, "strides", self))
        self.padding = normalize_padding(padding, self)
        self.data_format = normalize_data_format(data_format, self)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.data_format == "channels_last":
            return self.call_nchw(inputs.movedim(-1, 1), training).movedim(1, -1)
        return self.call_nchw(inputs, training)

    def accepts_nchw(self) -> bool:
        """See ``Conv2D.accepts_nchw`` (images only)."""
        return (self.rank == 2 and self.data_format == "channels_last"
                and type(self).call is _Pooling.call)

    def call_nchw(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        """The pooling on a channels-first tensor (whatever ``data_format``), channels-first
        out."""
        if self.padding == "same":
            pads = spatial_padding(x.shape[2:], self.pool_size, self.strides, (1,) * self.rank)
        else:
            pads = ((0, 0),) * self.rank
        return self._pool(x, pads)

    def _pool(self, x: torch.Tensor, pads: Pads) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        last = self.data_format == "channels_last"
        sizes = shape[1:-1] if last else shape[2:]
        out = [conv_output_length(n, k, self.padding, s)
               for n, k, s in zip(sizes, self.pool_size, self.strides)]
        if any(o is not None and o <= 0 for o in out):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): computed output size "
                             f"would be negative or zero. Received inputs shape={shape}, "
                             f"pool_size={self.pool_size}, strides={self.strides}, "
                             f"padding={self.padding!r}")
        return (shape[0], *out, shape[-1]) if last else (shape[0], shape[1], *out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class _MaxPooling(_Pooling):
    """Maximum over ``pool_size`` windows (padded cells count as -inf)."""

    def _pool(self, x: torch.Tensor, pads: Pads) -> torch.Tensor:
        pool = _MAX_POOL[self.rank]
        if all(before == after for before, after in pads):
            return pool(x, self.pool_size, self.strides, tuple(before for before, _ in pads))
        return pool(F.pad(x, _flat(pads), value=float("-inf")), self.pool_size, self.strides)


class _AveragePooling(_Pooling):
    """Mean over ``pool_size`` windows, counting only real (unpadded) cells."""

    def _pool(self, x: torch.Tensor, pads: Pads) -> torch.Tensor:
        pool = _AVG_POOL[self.rank]
        if all(before == after for before, after in pads):
            return pool(x, self.pool_size, self.strides, tuple(before for before, _ in pads),
                        count_include_pad=False)
        # Asymmetric: (window sum over zero-padded input) / (number of real cells in the window).
        sums = pool(F.pad(x, _flat(pads)), self.pool_size, self.strides)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        counts = pool(F.pad(ones, _flat(pads)), self.pool_size, self.strides)
        return sums / counts


class MaxPooling2D(_MaxPooling):
    """Maximum over ``pool_size`` windows of images (padded cells count as -inf)."""

    def __init__(self, pool_size: int | Sequence[int] = (2, 2),
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_AveragePooling):
    """Mean over ``pool_size`` windows of images, counting only real (unpadded) cells."""

    def __init__(self, pool_size: int | Sequence[int] = (2, 2),
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class MaxPooling3D(_MaxPooling):
    """Maximum over ``pool_size`` windows of ``(batch, depth, height, width, channels)``
    volumes."""

    rank = 3

    def __init__(self, pool_size: int | Sequence[int] = (2, 2, 2),
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling3D(_AveragePooling):
    """Mean over ``pool_size`` windows of volumes (``pool_size`` is required, as in Keras)."""

    rank = 3

    def __init__(self, pool_size: int | Sequence[int],
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(Layer):
    """Reduces the ``rank`` spatial axes (subclasses set ``rank`` and ``call``)."""

    rank = 2

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_ndim = self.rank + 2
        self.data_format = normalize_data_format(data_format, self)
        self.keepdims = bool(keepdims)
        first = 1 if self.data_format == "channels_last" else 2
        self._axes = tuple(range(first, first + self.rank))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.keepdims:
            return tuple(1 if i in self._axes else s for i, s in enumerate(shape))
        channels = shape[-1] if self.data_format == "channels_last" else shape[1]
        return (shape[0], channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class _GlobalAverage(_GlobalPooling):
    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.mean(dim=self._axes, keepdim=self.keepdims)


class _GlobalMax(_GlobalPooling):
    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.amax(dim=self._axes, keepdim=self.keepdims)


class GlobalAveragePooling2D(_GlobalAverage):
    """Mean over the spatial axes: ``(batch, H, W, C) -> (batch, C)``."""


class GlobalMaxPooling2D(_GlobalMax):
    """Maximum over the spatial axes: ``(batch, H, W, C) -> (batch, C)``."""


class GlobalAveragePooling3D(_GlobalAverage):
    """Mean over the spatial axes: ``(batch, D, H, W, C) -> (batch, C)``."""

    rank = 3


class GlobalMaxPooling3D(_GlobalMax):
    """Maximum over the spatial axes: ``(batch, D, H, W, C) -> (batch, C)``."""

    rank = 3
