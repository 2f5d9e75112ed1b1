"""The contract of Keras 3's image-preprocessing layers (``BaseImagePreprocessingLayer``).

A call draws one random transformation for the batch (``get_random_transformation(data,
training)``), then applies it (``transform_images(images, transformation, training)``); tests and
users can fix a transformation and call ``transform_images`` directly, and a transformation drawn
by real Keras (a dict of tensors with the same keys) gives the same pixels here. Layers are the
identity when ``training`` is false (a model's ``predict``), as in Keras; called eagerly without
``training`` they augment, as Keras's ``training=True`` default.

Inputs are images ``(batch, height, width, channels)`` or one ``(height, width, channels)`` image
(``data_format="channels_first"`` puts channels before height), or Keras's dict
``{"images": ..., "labels": ...}``: ``labels`` pass through ``transform_labels`` (mixed by
``MixUp`` and ``CutMix``). ``bounding_boxes`` and ``segmentation_masks`` are not supported (a
``NotSupportedError`` says so), except by ``MaxNumBoundingBoxes``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, NotSupportedError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn.augment import SeededGenerators

__all__ = ["BaseImageAugmentation", "as_tensor", "is_number", "to_value_range"]


class BaseImageAugmentation(Layer):
    """Random transformation / transform split, layout, dict inputs and argument checks."""

    #: keys of a dict input this layer transforms besides ``images`` and ``labels``
    _EXTRA_KEYS: tuple[str, ...] = ()

    def __init__(self, data_format: str | None = None, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            self._fail(f"the `data_format` argument must be one of 'channels_last', "
                       f"'channels_first'. Received: data_format={data_format!r}")
        self.data_format = data_format or "channels_last"
        self.seed = seed
        self._generators = SeededGenerators(seed)

    # ------------------------------------------------------------------ argument checks
    def _fail(self, message: str) -> None:
        raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): {message}")

    def _factor_pair(self, factor: Any, name: str, bounds: tuple[float, float],
                     single: str = "symmetric") -> tuple[float, float]:
        """Keras's factor parsing: a pair is sorted; one number ``f`` means ``(-f, f)`` clipped
        to ``bounds`` (``single="symmetric"``) or ``(0, f)`` (``single="upper"``)."""
        low, high = bounds
        message = (f"the `{name}` argument should be a number (or a list of two numbers) in the "
                   f"range [{low}, {high}]. Received: {name}={factor!r}")
        if isinstance(factor, (list, tuple)):
            if len(factor) != 2 or not all(is_number(f) for f in factor) or (
                    factor[0] > high or factor[1] < low):
                self._fail(message)
            lower, upper = sorted(factor)
            return lower, upper
        if not is_number(factor) or not low <= factor <= high:
            self._fail(message)
        if single == "upper":
            return 0, factor
        return max(-abs(factor), low), abs(factor)

    def _value_range(self, value_range: Any) -> list[float]:
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2 or not all(
                is_number(v) for v in value_range):
            self._fail(f"the `value_range` argument should be a list of two numbers. "
                       f"Received: value_range={value_range!r}")
        return sorted(value_range)

    def _choice(self, value: Any, name: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self._fail(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
        return value

    # ------------------------------------------------------------------ random draws
    def _generator(self, like: torch.Tensor) -> torch.Generator | None:
        return self._generators.get(like.device)

    def _uniform(self, shape: tuple[int, ...], low: float, high: float,
                 like: torch.Tensor) -> torch.Tensor:
        """Float32 draws in ``[low, high)`` on ``like``'s device (the layer's generator)."""
        u = torch.rand(shape, device=like.device, generator=self._generator(like))
        return low + (high - low) * u

    def _numpy_rng(self, like: torch.Tensor) -> np.random.Generator:
        """A NumPy generator seeded from the layer's torch generator (Beta / Dirichlet draws,
        which torch cannot take from a given generator)."""
        seed = torch.randint(0, 2**31 - 1, (), device=like.device, generator=self._generator(like))
        return np.random.default_rng(int(seed))

    @staticmethod
    def _images_of(data: Any) -> torch.Tensor:
        return data["images"] if isinstance(data, dict) else data

    def _batch_size(self, data: Any) -> int:
        images = self._images_of(data)
        if images.dim() not in (3, 4):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) expects images of "
                             f"rank 3 (one image) or 4 (a batch); received shape "
                             f"{tuple(images.shape)}")
        return 1 if images.dim() == 3 else images.shape[0]

    # ------------------------------------------------------------------ the Keras split
    def get_random_transformation(self, data: Any, training: bool = True,
                                  seed: Any = None) -> Any:
        """The random parameters of one call (``None`` for deterministic layers)."""
        return None

    def transform_images(self, images: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        """Apply ``transformation`` to a batch (or one image) in the layer's ``data_format``."""
        if not training:
            return images
        unbatched = images.dim() == 3
        x = _as_float(images[None] if unbatched else images)
        if self.data_format == "channels_first":
            x = x.permute(0, 2, 3, 1)
        out = self._transform(x, transformation)
        if self.data_format == "channels_first":
            out = out.permute(0, 3, 1, 2)
        out = out.contiguous()
        return out[0] if unbatched else out

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        """``images`` (B, H, W, C) float -> augmented (B, H', W', C)."""
        raise NotImplementedError  # pragma: no cover - every subclass overrides it

    def transform_labels(self, labels: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        return labels

    # ------------------------------------------------------------------ layer plumbing
    def build(self, input_shape: Any) -> None:
        shape = input_shape.get("images") if isinstance(input_shape, dict) else input_shape
        if shape is not None and len(shape) not in (3, 4):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) expects images of "
                             f"rank 3 or 4; received input shape {tuple(shape)}")
        super().build(input_shape)

    def call(self, inputs: Any, training: bool = True) -> Any:
        if not isinstance(inputs, dict):
            images = as_tensor(inputs)
            self._batch_size(images)
            transformation = self.get_random_transformation(images, training=training)
            return self.transform_images(images, transformation, training=training)
        if "images" not in inputs:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): a dict input needs "
                             f"an 'images' key; received keys {sorted(inputs)}")
        unknown = sorted(set(inputs) - {"images", "labels", *self._EXTRA_KEYS})
        if unknown:
            raise NotSupportedError(
                f"Layer '{self.name}' ({type(self).__name__}): dict inputs with {unknown} are "
                f"not supported here (only 'images' and 'labels'); received keys "
                f"{sorted(inputs)}")
        data = dict(inputs)
        data["images"] = as_tensor(data["images"])
        self._batch_size(data)
        transformation = self.get_random_transformation(data, training=training)
        out = dict(data)
        out["images"] = self.transform_images(data["images"], transformation, training=training)
        if "labels" in data:
            labels = as_tensor(data["labels"])
            unbatched = data["images"].dim() == 3
            labels = self.transform_labels(labels[None] if unbatched else labels,
                                           transformation, training=training)
            out["labels"] = labels[0] if unbatched else labels
        return self._transform_extra(out, transformation, training)

    def _transform_extra(self, data: dict[str, Any], transformation: Any,
                         training: bool) -> dict[str, Any]:
        return data

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def _as_float(images: torch.Tensor) -> torch.Tensor:
    # Keras casts to the layer's compute dtype (float32) before transforming.
    return images if images.is_floating_point() else images.float()


def to_value_range(images: torch.Tensor, source: Any, target: Any) -> torch.Tensor:
    """Linearly map pixel values from ``source`` (low, high) to ``target`` (low, high)."""
    if source[0] == target[0] and source[1] == target[1]:
        return images
    unit = (images - source[0]) / (source[1] - source[0])
    return unit * (target[1] - target[0]) + target[0]
