"""Keras 3's random colour layers: RandomGrayscale, RandomInvert, RandomHue, RandomSaturation,
RandomColorDegeneration, RandomColorJitter, RandomPosterization, RandomSharpness, Solarization.

Each follows :class:`~bigmodel.keras.layers.image_augment_base.BaseImageAugmentation`: one random
draw per image (``get_random_transformation``, the keys real Keras uses), applied by
``transform_images`` with Keras's formulas; the identity at inference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.keras.layers.color_augmentation import RandomBrightness, RandomContrast
from bigmodel.keras.layers.image_augment_base import (
    BaseImageAugmentation,
    is_number,
    to_value_range,
)
from bigmodel.keras.layers.image_augment_ops import hsv_to_rgb, rgb_to_grayscale, rgb_to_hsv

__all__ = ["RandomColorDegeneration", "RandomColorJitter", "RandomGrayscale", "RandomHue",
           "RandomInvert", "RandomPosterization", "RandomSaturation", "RandomSharpness",
           "Solarization"]

_EPSILON = 1e-7  # keras.config.epsilon()


class RandomGrayscale(BaseImageAugmentation):
    """Turns each image grey (ITU-R 601 luma copied to every channel) with probability ``factor``."""

    def __init__(self, factor: float = 0.5, data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        if not is_number(factor) or not 0 <= factor <= 1:
            self._fail(f"`factor` should be between 0 and 1. Received: factor={factor!r}")
        self.factor = factor

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        draws = self._uniform((self._batch_size(data),), 0.0, 1.0, images)
        return (draws < self.factor).view(-1, 1, 1, 1)

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            transformation = self.get_random_transformation(images)
        return torch.where(transformation.to(images.device), rgb_to_grayscale(images), images)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


class RandomInvert(BaseImageAugmentation):
    """Replaces an image by ``value_range[1] - image`` with a probability drawn in ``factor``."""

    def __init__(self, factor: Any = 1.0, value_range: Any = (0, 255), seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        self._value_range(value_range)
        self.value_range = value_range

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images, n = self._images_of(data), self._batch_size(data)
        probability = self._uniform((n,), self.factor[0], self.factor[1], images)
        threshold = self._uniform((n,), 0.0, 1.0, images)
        return {"apply_inversion": threshold < probability}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        apply = transformation["apply_inversion"].to(images.device).view(-1, 1, 1, 1)
        return torch.where(apply, self.value_range[1] - images, images)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomHue(BaseImageAugmentation):
    """Rotates hue by up to half a turn times ``factor`` (either direction), in HSV space."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        self._value_range(value_range)
        self.value_range = value_range

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images, n = self._images_of(data), self._batch_size(data)
        invert = torch.where(self._uniform((n,), 0.0, 1.0, images) > 0.5, -1.0, 1.0)
        factor = self._uniform((n,), self.factor[0], self.factor[1], images)
        return {"factor": invert * factor * 0.5}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        images = to_value_range(images, self.value_range, (0, 1))
        shift = transformation["factor"].to(images).view(-1, 1, 1)
        hsv = rgb_to_hsv(images)
        hue = hsv[..., 0] + shift
        hue = torch.where(hue > 1.0, hue - 1.0, hue)
        hue = torch.where(hue < 0.0, hue + 1.0, hue)
        rgb = hsv_to_rgb(torch.stack([hue, hsv[..., 1], hsv[..., 2]], dim=-1)).clip(0, 1)
        return to_value_range(rgb, (0, 1), self.value_range)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomSaturation(BaseImageAugmentation):
    """Scales HSV saturation by ``f / (1 - f)``, ``f`` drawn in ``factor`` (0.5 keeps it; 0 greys,
    1 saturates fully). As Keras, the HSV conversion runs on the raw pixel values."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (-1, 1))
        self.value_range = self._value_range(value_range)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        factor = self._uniform((self._batch_size(data),), self.factor[0], self.factor[1], images)
        return {"factor": factor / (1 - factor + _EPSILON)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        scale = transformation["factor"].to(images).view(-1, 1, 1)
        hsv = rgb_to_hsv(images)
        saturation = (hsv[..., 1] * scale).clip(self.value_range[0], self.value_range[1])
        return hsv_to_rgb(torch.stack([hsv[..., 0], saturation, hsv[..., 2]], dim=-1))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomColorDegeneration(BaseImageAugmentation):
    """Blends each image towards its grayscale version by a factor drawn in ``factor``."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (-1, 1))
        self.value_range = self._value_range(value_range)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        n = self._batch_size(data)
        return {"factor": self._uniform((n, 1, 1, 1), self.factor[0], self.factor[1], images)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        factor = transformation["factor"].to(images)
        images = images + factor * (rgb_to_grayscale(images) - images)
        return images.clip(self.value_range[0], self.value_range[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomPosterization(BaseImageAugmentation):
    """Keeps the ``b`` most significant bits of each 8-bit pixel, ``b`` drawn in ``factor``
    (integers 1..8; as Keras, ``randint`` excludes the upper bound of a range)."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (1, 8))
        self.value_range = self._value_range(value_range)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images, n = self._images_of(data), self._batch_size(data)
        low, high = int(self.factor[0]), int(self.factor[1])
        if low != high:
            bits = torch.randint(low, high, (n,), device=images.device,
                                 generator=self._generator(images))
        else:
            bits = torch.full((n,), low, device=images.device)
        return {"shift_factor": (8 - bits).to(torch.uint8)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        shift = transformation["shift_factor"].to(images.device, torch.uint8).view(-1, 1, 1, 1)
        pixels = to_value_range(images, self.value_range, (0, 255)).to(torch.uint8)
        pixels = torch.bitwise_left_shift(torch.bitwise_right_shift(pixels, shift), shift)
        return to_value_range(pixels.to(images.dtype), (0, 255), self.value_range)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomSharpness(BaseImageAugmentation):
    """Blends each image with a 3x3 smoothed copy: ``factor`` 0 blurs, 0.5 keeps, 1 sharpens."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        self.value_range = self._value_range(value_range)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        n = self._batch_size(data)
        return {"factor": self._uniform((n,), self.factor[0], self.factor[1], images)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        sharpness = (transformation["factor"].to(images) * 2).view(-1, 1, 1, 1)
        a, b = 1.0 / 13.0, 5.0 / 13.0
        kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=images.dtype,
                              device=images.device)
        channels = images.shape[-1]
        smoothed = F.conv2d(images.permute(0, 3, 1, 2), kernel.expand(channels, 1, 3, 3),
                            padding=1, groups=channels).permute(0, 2, 3, 1)
        images = images + (1.0 - sharpness) * (smoothed - images)
        return images.clip(self.value_range[0], self.value_range[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class Solarization(BaseImageAugmentation):
    """Adds a random amount (``addition_factor``) to every pixel, then inverts the pixels at or
    above a random threshold (``threshold_factor``), on a 0-255 scale. Draws, as Keras: an
    addition in ``[lower, upper * 255)`` and a threshold in ``[lower, upper * 255)``."""

    def __init__(self, addition_factor: Any = 0.0, threshold_factor: Any = 0.0,
                 value_range: Any = (0, 255), seed: int | None = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.addition_factor = self._factor_pair(addition_factor, "addition_factor", (0, 1),
                                                 single="upper")
        self.threshold_factor = self._factor_pair(threshold_factor, "threshold_factor", (0, 1),
                                                  single="upper")
        self.value_range = self._value_range(value_range)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images = self._images_of(data)
        shape = (self._batch_size(data), 1, 1, 1)
        add, thr = self.addition_factor, self.threshold_factor
        return {"additions": self._uniform(shape, add[0], add[1] * 255, images),
                "thresholds": self._uniform(shape, thr[0], thr[1] * 255, images)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        images = to_value_range(images, self.value_range, (0, 255))
        results = (images + transformation["additions"].to(images)).clip(0, 255)
        results = torch.where(results < transformation["thresholds"].to(images), results,
                              255 - results)
        return to_value_range(results, (0, 255), self.value_range)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range,
                "addition_factor": self.addition_factor,
                "threshold_factor": self.threshold_factor, "seed": self.seed}


class RandomColorJitter(BaseImageAugmentation):
    """RandomBrightness, RandomContrast, RandomSaturation and RandomHue in that order, each only
    when its factor is given (``None`` skips it), each with its own random draw."""

    def __init__(self, value_range: Any = (0, 255), brightness_factor: Any = None,
                 contrast_factor: Any = None, saturation_factor: Any = None,
                 hue_factor: Any = None, seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self._value_range(value_range)
        self.value_range = value_range
        self.brightness_factor, self.contrast_factor = brightness_factor, contrast_factor
        self.saturation_factor, self.hue_factor = saturation_factor, hue_factor
        common = {"value_range": value_range, "seed": seed}
        # Channels-last sub-layers: this layer hands them channels-last batches.
        self.random_brightness = (RandomBrightness(brightness_factor, **common)
                                  if brightness_factor is not None else None)
        self.random_contrast = (RandomContrast(contrast_factor, **common)
                                if contrast_factor is not None else None)
        self.random_saturation = (RandomSaturation(saturation_factor, **common)
                                  if saturation_factor is not None else None)
        self.random_hue = RandomHue(hue_factor, **common) if hue_factor is not None else None

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        for layer in (self.random_brightness, self.random_contrast):
            if layer is not None:
                images = layer(images, training=True)
        for layer in (self.random_saturation, self.random_hue):
            if layer is not None:
                images = layer.transform_images(images, layer.get_random_transformation(images))
        return images

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range,
                "brightness_factor": self.brightness_factor,
                "contrast_factor": self.contrast_factor,
                "saturation_factor": self.saturation_factor, "hue_factor": self.hue_factor,
                "seed": self.seed}
