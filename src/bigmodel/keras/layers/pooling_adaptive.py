"""Adaptive pooling: AdaptiveAveragePooling1D/2D/3D and AdaptiveMaxPooling1D/2D/3D.

The output has a fixed spatial size ``output_size`` whatever the input's. Along an axis of ``n``
cells pooled to ``m``, output cell ``i`` reduces input cells ``floor(i * n / m)`` to
``ceil((i + 1) * n / m) - 1`` (windows may overlap by one cell when ``m`` does not divide ``n``).
That is Keras 3's definition (its NumPy / JAX backends compute these windows; its torch backend
calls ``torch.nn.functional.adaptive_{avg,max}_pool{1,2,3}d``, which use the same windows), so
the layers here call torch's functions too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format, normalize_tuple
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
           "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D"]


class _AdaptivePooling(Layer):
    """Pools the ``rank`` spatial axes to ``output_size`` (subclasses set ``rank`` and
    ``_pool``, a channels-first torch function).

    Args:
        output_size: int (the same size on every spatial axis) or a ``rank``-tuple of ints > 0.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Raises:
        ConfigError: ``output_size`` not an int > 0 or a tuple of ``rank`` of them; an unknown
            ``data_format``.
    """

    rank = 1

    def __init__(self, output_size: Any, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_ndim = self.rank + 2
        self.output_size = normalize_tuple(output_size, self.rank, "output_size", self)
        self.data_format = normalize_data_format(data_format, self)

    @staticmethod
    def _pool(x: torch.Tensor, output_size: tuple[int, ...]) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.data_format == "channels_last":
            return self._pool(inputs.movedim(-1, 1), self.output_size).movedim(1, -1)
        return self._pool(inputs, self.output_size)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.data_format == "channels_last":
            return (shape[0], *self.output_size, shape[-1])
        return (shape[0], shape[1], *self.output_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_size": list(self.output_size),
                "data_format": self.data_format}


class AdaptiveAveragePooling1D(_AdaptivePooling):
    """Mean over adaptive windows of ``(batch, steps, channels)``: ``steps -> output_size``."""

    rank = 1
    _pool = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAveragePooling2D(_AdaptivePooling):
    """Mean over adaptive windows of images: ``(H, W) -> output_size``."""

    rank = 2
    _pool = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAveragePooling3D(_AdaptivePooling):
    """Mean over adaptive windows of volumes: ``(D, H, W) -> output_size``."""

    rank = 3
    _pool = staticmethod(F.adaptive_avg_pool3d)


class AdaptiveMaxPooling1D(_AdaptivePooling):
    """Maximum over adaptive windows of ``(batch, steps, channels)``."""

    rank = 1
    _pool = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPooling2D(_AdaptivePooling):
    """Maximum over adaptive windows of images."""

    rank = 2
    _pool = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPooling3D(_AdaptivePooling):
    """Maximum over adaptive windows of volumes."""

    rank = 3
    _pool = staticmethod(F.adaptive_max_pool3d)
