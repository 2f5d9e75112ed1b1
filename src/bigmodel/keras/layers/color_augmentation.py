"""Keras 3's colour augmentation layers: ``RandomContrast`` and ``RandomBrightness``.

Training only (the identity at inference, as Keras); one random factor per image of a batch
``(batch, height, width, channels)`` (or for a single ``(height, width, channels)`` image);
results clipped to ``value_range``. ``seed`` makes them reproducible (a private generator).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn.augment import SeededGenerators

__all__ = ["RandomBrightness", "RandomContrast"]


class _ColorAugmentation(Layer):
    """Factor and value-range parsing, the per-image draw and the training gate."""

    factor_bounds = (-1.0, 1.0)

    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.factor = self._parse_factor(factor)
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2 or not all(
                isinstance(v, numbers.Real) for v in value_range):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): value_range must be "
                              f"a list or tuple of two numbers. Received: "
                              f"value_range={value_range!r}")
        self.value_range = sorted(value_range)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): data_format must be "
                              f"'channels_last' or 'channels_first'. Received: "
                              f"data_format={data_format!r}")
        self.data_format = data_format or "channels_last"
        self.seed = seed
        self._generators = SeededGenerators(seed)

    def _parse_factor(self, factor: Any) -> tuple[float, float]:
        low, high = self.factor_bounds
        message = (f"Layer '{self.name}' ({type(self).__name__}): the `factor` argument should be "
                   f"a number (or a list of two numbers) in the range [{low}, {high}]. "
                   f"Received: factor={factor!r}")
        if isinstance(factor, (list, tuple)):
            if len(factor) != 2 or not all(isinstance(f, numbers.Real) for f in factor) or (
                    factor[0] > high or factor[1] < low):
                raise ConfigError(message)
            lower, upper = sorted(float(f) for f in factor)
            return lower, upper
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not (
                low <= factor <= high):
            raise ConfigError(message)
        return max(-abs(float(factor)), low), abs(float(factor))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def _uniform(self, images: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One uniform draw in ``[low, high)`` per image, shaped to broadcast over it."""
        if images.dim() not in (3, 4):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) expects images of "
                             f"rank 3 or 4; received shape {tuple(images.shape)}")
        shape = (1, 1, 1) if images.dim() == 3 else (images.shape[0], 1, 1, 1)
        uniform = torch.rand(shape, dtype=images.dtype, device=images.device,
                             generator=self._generators.get(images.device))
        return low + (high - low) * uniform

    def call(self, inputs: torch.Tensor, training: bool = True) -> torch.Tensor:
        if not training:
            return inputs
        images = inputs if inputs.is_floating_point() else inputs.float()
        return self._adjust(images).clamp(self.value_range[0], self.value_range[1])

    def _adjust(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed, "data_format": self.data_format}


class RandomContrast(_ColorAugmentation):
    """``(x - mean) * c + mean`` per image and channel (``mean`` over height and width), ``c``
    drawn in ``[1 - lower, 1 + upper]``. As Keras 3, a single number ``factor`` gives
    ``(lower, upper) = (0, factor)`` (contrast raised only; give a pair for both ways)."""

    factor_bounds = (0.0, 1.0)

    def _adjust(self, images: torch.Tensor) -> torch.Tensor:
        contrast = self._uniform(images, 1.0 - self.factor[0], 1.0 + self.factor[1])
        axes = (-2, -1) if self.data_format == "channels_first" else (-3, -2)
        mean = images.mean(dim=axes, keepdim=True)
        return (images - mean) * contrast + mean


class RandomBrightness(_ColorAugmentation):
    """Adds ``delta * (value_range[1] - value_range[0])`` to every pixel of an image, ``delta``
    drawn in ``factor`` (a single number ``f`` means ``[-f, f]``)."""

    def _adjust(self, images: torch.Tensor) -> torch.Tensor:
        delta = self._uniform(images, *self.factor) * (self.value_range[1] - self.value_range[0])
        return images + delta
