"""Keras 3's random geometric and blur layers: RandomCrop, RandomShear, RandomPerspective,
RandomGaussianBlur, RandomElasticTransform.

Each follows :class:`~bigmodel.keras.layers.image_augment_base.BaseImageAugmentation` (random draw
-> ``transform_images``, identity at inference) with the resampling rules of Keras's torch backend
(:mod:`~bigmodel.keras.layers.image_augment_ops`). As Keras 3.15, ``RandomCrop`` returns its input
uncropped at inference (its declared output shape is the crop size).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.layers.image_augment_base import BaseImageAugmentation, is_number
from bigmodel.keras.layers.image_augment_ops import (
    FILL_MODES,
    INTERPOLATIONS,
    gaussian_blur,
    homography,
    map_coordinates,
    projective_transform,
)
from bigmodel.keras.layers.preprocessing import resize_images
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["RandomCrop", "RandomElasticTransform", "RandomGaussianBlur", "RandomPerspective",
           "RandomShear"]


class RandomCrop(BaseImageAugmentation):
    """Crops one random ``height`` x ``width`` window (the same for the whole batch); an image
    smaller than the window is centre-cropped to its aspect ratio and resized (bilinear)."""

    def __init__(self, height: int, width: int, seed: int | None = None,
                 data_format: str | None = None, name: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, name=name, **kwargs)
        for arg, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self._fail(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        self.height, self.width = height, width

    def _axes(self) -> tuple[int, int]:
        return (-2, -1) if self.data_format == "channels_first" else (-3, -2)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        self._batch_size(data)
        h_axis, w_axis = self._axes()
        in_h, in_w = images.shape[h_axis], images.shape[w_axis]
        if training and in_h > self.height and in_w > self.width:
            # Keras: int(uniform(0, size - crop + 1)), one offset pair for the batch
            h_start = int(self._uniform((), 0.0, in_h - self.height + 1.0, images))
            w_start = int(self._uniform((), 0.0, in_w - self.width + 1.0, images))
            return h_start, w_start
        crop_h = max(min(in_h, int(float(in_w * self.height) / self.width)), 1)
        crop_w = max(min(in_w, int(float(in_h * self.width) / self.height)), 1)
        return int(float(in_h - crop_h) / 2), int(float(in_w - crop_w) / 2)

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        top, left = (int(v) for v in transformation)
        out = images[:, top:top + self.height, left:left + self.width, :]
        if out.shape[1:3] != (self.height, self.width):
            resized = resize_images(out.permute(0, 3, 1, 2), (self.height, self.width))
            out = resized.permute(0, 2, 3, 1)
        return out

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        h_axis, w_axis = self._axes()
        shape[h_axis], shape[w_axis] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "seed": self.seed}


class _Resampling(BaseImageAugmentation):
    """Argument checks for layers that resample pixels."""

    def _interpolation(self, interpolation: str) -> str:
        return self._choice(interpolation, "interpolation", INTERPOLATIONS)


class RandomShear(_Resampling):
    """Shears each image by ``x_factor`` / ``y_factor`` (fractions; a number ``f`` means
    ``(-f, f)``), one draw per image, reading input ``(x + sx * y, sy * x + y)``."""

    def __init__(self, x_factor: Any = 0.0, y_factor: Any = 0.0, interpolation: str = "bilinear",
                 fill_mode: str = "reflect", fill_value: float = 0.0,
                 data_format: str | None = None, seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.x_factor = self._shear_range(x_factor, "x_factor")
        self.y_factor = self._shear_range(y_factor, "y_factor")
        self.fill_mode = self._choice(fill_mode, "fill_mode", FILL_MODES)
        self.interpolation = self._interpolation(interpolation)
        self.fill_value = fill_value

    def _shear_range(self, factor: Any, name: str) -> tuple[float, float]:
        """A number ``f`` in [0, 1] means ``(-f, f)``; a pair is sorted. Keras 3.15 refuses the
        negative pair its own ``get_config`` writes; it is accepted here (in [-1, 1])."""
        if is_number(factor) and 0 <= factor <= 1:
            return -factor, factor
        if isinstance(factor, (list, tuple)) and len(factor) == 2 and all(
                is_number(f) and -1 <= f <= 1 for f in factor):
            lower, upper = sorted(factor)
            return lower, upper
        self._fail(f"the `{name}` argument should be a number (or a list of two numbers) in the "
                   f"range [0, 1.0]. Received: {name}={factor!r}")
        raise AssertionError  # unreachable: _fail raises

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images, n = self._images_of(data), self._batch_size(data)
        invert = torch.where(self._uniform((n, 1), 0.0, 1.0, images) > 0.5, -1.0, 1.0)
        shear_y = self._uniform((n, 1), self.y_factor[0], self.y_factor[1], images)
        shear_x = self._uniform((n, 1), self.x_factor[0], self.x_factor[1], images)
        return {"shear_factor": torch.cat([shear_x, shear_y], dim=1) * invert,
                "input_shape": tuple(images.shape)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        shear = transformation["shear_factor"].to(images)
        one, zero = torch.ones_like(shear[:, 0]), torch.zeros_like(shear[:, 0])
        matrix = torch.stack([one, shear[:, 0], zero, shear[:, 1], one, zero, zero, zero], dim=1)
        return projective_transform(images, matrix, self.interpolation, self.fill_mode,
                                    self.fill_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "x_factor": self.x_factor, "y_factor": self.y_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}


class RandomPerspective(_Resampling):
    """With a probability drawn in ``factor``, moves the four corners of an image by up to
    ``scale / 2`` of their coordinates and warps it accordingly (``fill_value`` outside)."""

    def __init__(self, factor: Any = 1.0, scale: float = 1.0, interpolation: str = "bilinear",
                 fill_value: float = 0.0, seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        if not is_number(scale) or not 0.0 <= scale <= 1.0:
            self._fail(f"the `scale` argument should be a number in the range [0,1]. "
                       f"Received: scale={scale!r}")
        self.scale, self.fill_value = scale, fill_value
        self.interpolation = self._interpolation(interpolation)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images, n = self._images_of(data), self._batch_size(data)
        h_axis, w_axis = (-2, -1) if self.data_format == "channels_first" else (-3, -2)
        height, width = images.shape[h_axis], images.shape[w_axis]
        probability = self._uniform((n,), self.factor[0], self.factor[1], images)
        apply = self._uniform((n,), 0.0, 1.0, images) < probability
        moves = self._uniform((n, 4, 2), -0.5 * self.scale, 0.5 * self.scale, images)
        start = torch.tensor([[[0.0, 0.0], [width - 1, 0.0], [0.0, height - 1],
                               [width - 1, height - 1]]], device=images.device).repeat(n, 1, 1)
        return {"apply_perspective": apply, "start_points": start,
                "end_points": start + start * moves, "input_shape": tuple(images.shape)}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        start = transformation["start_points"].to(images)
        end = transformation["end_points"].to(images)
        out = projective_transform(images, homography(start, end), self.interpolation,
                                   "constant", self.fill_value)
        apply = transformation["apply_perspective"].to(images.device).view(-1, 1, 1, 1)
        return torch.where(apply, out, images)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_value": self.fill_value,
                "seed": self.seed}


class RandomGaussianBlur(BaseImageAugmentation):
    """With a probability drawn in ``factor``, blurs an image with a Gaussian kernel of
    ``kernel_size`` and standard deviations drawn in ``sigma`` (one pair per batch)."""

    def __init__(self, factor: Any = 1.0, kernel_size: Any = 3, sigma: Any = 1.0,
                 value_range: Any = (0, 255), data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        sizes = kernel_size if isinstance(kernel_size, (list, tuple)) else (kernel_size,) * 2
        if len(sizes) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0
                                      and k % 2 == 1 for k in sizes):
            self._fail(f"kernel_size must be an odd number (or two). "
                       f"Received: kernel_size={kernel_size!r}")
        self.kernel_size = tuple(sizes)
        self.sigma = self._factor_pair(sigma, "sigma", (0, 1))
        self._value_range(value_range)
        self.value_range = value_range

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images, n = self._images_of(data), self._batch_size(data)
        probability = self._uniform((n,), self.factor[0], self.factor[1], images)
        apply = self._uniform((n,), 0.0, 1.0, images) < probability
        blur = self._uniform((2,), self.sigma[0], self.sigma[1], images) + 1e-6
        return {"should_apply_blur": apply, "blur_factor": blur}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        blurred = gaussian_blur(images, self.kernel_size, transformation["blur_factor"])
        apply = transformation["should_apply_blur"].to(images.device).view(-1, 1, 1, 1)
        return torch.where(apply, blurred, images).clip(*sorted(self.value_range))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "kernel_size": self.kernel_size,
                "sigma": self.sigma, "value_range": self.value_range, "seed": self.seed}


class RandomElasticTransform(_Resampling):
    """Elastic distortion (Simard et al.): with a probability drawn in ``factor``, every pixel
    moves by Gaussian noise smoothed with ``sigma = 0.05 * min(H, W) * s`` and scaled by
    ``alpha = 0.1 * max(H, W) * s``, ``s`` drawn in ``scale``.

    The transformation may carry ``"noise"`` (``(2, B, H, W)`` standard normal draws for the row
    and column displacements); without it the layer draws them (Keras draws them inside
    ``keras.ops.image.elastic_transform`` from torch's global generator).
    """

    def __init__(self, factor: Any = 1.0, scale: Any = 1.0, interpolation: str = "bilinear",
                 fill_mode: str = "reflect", fill_value: float = 0.0,
                 value_range: Any = (0, 255), seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        self.scale = self._factor_pair(scale, "scale", (0, 1))
        self.interpolation = self._interpolation(interpolation)
        self.fill_mode = self._choice(fill_mode, "fill_mode", (*FILL_MODES, "mirror"))
        self.fill_value = fill_value
        self._value_range(value_range)
        self.value_range = value_range

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training or self.scale[1] == 0 or self.factor[1] == 0:
            return None
        images, n = self._images_of(data), self._batch_size(data)
        probability = self._uniform((n,), self.factor[0], self.factor[1], images)
        apply = self._uniform((n,), 0.0, 1.0, images) < probability
        distortion = self._uniform((), self.scale[0], self.scale[1], images)
        h_axis, w_axis = (-2, -1) if self.data_format == "channels_first" else (-3, -2)
        shape = (2, n, images.shape[h_axis], images.shape[w_axis])
        noise = torch.randn(shape, device=images.device, generator=self._generator(images))
        return {"apply_transform": apply, "distortion_factor": distortion, "seed": self.seed,
                "noise": noise}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        batch, height, width, _ = images.shape
        factor = float(transformation["distortion_factor"])
        alpha = max(height, width) * 0.1 * factor
        sigma = min(height, width) * 0.05 * factor
        size = int(6 * sigma) | 1
        noise = transformation.get("noise")
        if noise is None:
            noise = torch.randn((2, batch, height, width), device=images.device,
                                generator=self._generator(images))
        noise = noise.to(images) * sigma
        sigmas = torch.tensor([sigma, sigma], dtype=images.dtype)
        dx, dy = (gaussian_blur(part.unsqueeze(-1), (size, size), sigmas)[..., 0]
                  for part in noise)
        y, x = torch.meshgrid(torch.arange(height, device=images.device),
                              torch.arange(width, device=images.device), indexing="ij")
        out = map_coordinates(images, y + alpha * dy, x + alpha * dx,
                              0 if self.interpolation == "nearest" else 1, self.fill_mode,
                              self.fill_value)
        apply = transformation["apply_transform"].to(images.device).view(-1, 1, 1, 1)
        return torch.where(apply, out, images).clip(*sorted(self.value_range))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "value_range": self.value_range,
                "seed": self.seed}
