"""Keras image-augmentation layers: RandomFlip, RandomTranslation, RandomRotation, RandomZoom,
RandomErasing.

Each wraps the batch-wise module of :mod:`bigmodel.nn.augment`: channels-last images
``(batch, height, width, channels)`` (or one ``(height, width, channels)`` image) are viewed as NCHW,
augmented, and returned channels-last. The layers act only in training (``training=True`` or the
module in ``train()`` mode) and are the identity at inference, as in Keras. ``seed`` makes them
reproducible (a private generator per layer).

``RandomErasing`` follows Zhong et al. (2017) with the arguments of ``nn.augment.RandomErasing``
(``probability``, ``scale``, ``ratio``, ``value``); it is not a Keras core layer.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn import augment

__all__ = ["RandomErasing", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]


class _ImageAugmentation(Layer):
    """Plumbing shared by the wrappers: layout conversion and the training gate."""

    min_ndim = 3

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): the `data_format` "
                              f"argument must be one of 'channels_last', 'channels_first'. "
                              f"Received: data_format={data_format!r}")
        self.data_format = data_format or "channels_last"
        self.augment: augment.Augmentation

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) > 4:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) expects images of rank 3 "
                             f"or 4; received input shape {tuple(input_shape)}")
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = True) -> torch.Tensor:
        if not training:
            return inputs
        if self.data_format == "channels_first":
            return self.augment.transform(inputs)
        images = inputs.movedim(-1, -3)  # (..., H, W, C) -> (..., C, H, W), a view
        out = self.augment.transform(images).movedim(-3, -1)
        return out.contiguous()

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.augment.seed,
                "data_format": self.data_format}


class RandomFlip(_ImageAugmentation):
    """Randomly flips images: ``mode`` is ``"horizontal"``, ``"vertical"`` or
    ``"horizontal_and_vertical"`` (each direction with probability 1/2)."""

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.augment = augment.RandomFlip(mode=mode, seed=seed)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.augment.mode}


class RandomTranslation(_ImageAugmentation):
    """Randomly shifts images by fractions of their height and width (see ``nn.augment``)."""

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.augment = augment.RandomTranslation(height_factor, width_factor, fill_mode,
                                                 interpolation, seed, fill_value)

    def get_config(self) -> dict[str, Any]:
        a = self.augment
        return {**super().get_config(), "height_factor": _jsonable(self.height_factor),
                "width_factor": _jsonable(self.width_factor), "fill_mode": a.fill_mode,
                "interpolation": a.interpolation, "fill_value": a.fill_value}


class RandomRotation(_ImageAugmentation):
    """Randomly rotates images by a fraction ``factor`` of a full turn (positive: counter-clockwise)."""

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.factor = factor
        self.augment = augment.RandomRotation(factor, fill_mode, interpolation, seed, fill_value)

    def get_config(self) -> dict[str, Any]:
        a = self.augment
        return {**super().get_config(), "factor": _jsonable(self.factor),
                "fill_mode": a.fill_mode, "interpolation": a.interpolation,
                "fill_value": a.fill_value}


class RandomZoom(_ImageAugmentation):
    """Randomly zooms images (positive factors zoom out, negative zoom in)."""

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.augment = augment.RandomZoom(height_factor, width_factor, fill_mode, interpolation,
                                          seed, fill_value)

    def get_config(self) -> dict[str, Any]:
        a = self.augment
        return {**super().get_config(), "height_factor": _jsonable(self.height_factor),
                "width_factor": _jsonable(self.width_factor), "fill_mode": a.fill_mode,
                "interpolation": a.interpolation, "fill_value": a.fill_value}


class RandomErasing(_ImageAugmentation):
    """Random Erasing (Zhong et al.): with probability ``probability`` a random rectangle covering
    a ``scale`` fraction of the image, aspect ratio in ``ratio``, is set to ``value``."""

    def __init__(self, probability: float = 0.5, scale: Any = (0.02, 0.33),
                 ratio: Any = (0.3, 3.3), value: Any = 0.0, seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.augment = augment.RandomErasing(probability, scale, ratio, value, seed)

    def get_config(self) -> dict[str, Any]:
        a = self.augment
        return {**super().get_config(), "probability": a.probability, "scale": list(a.scale),
                "ratio": list(a.ratio), "value": _jsonable(a.value)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
