"""``keras.ops.image`` geometry: affine / perspective / elastic warps, ``map_coordinates``,
``scale_and_translate``, ``crop_images`` and ``pad_images`` (exported by :mod:`.image`)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, NotSupportedError, ShapeError
from bigmodel.keras.ops.dtypes import convert_to_tensor
from bigmodel.keras.ops.image_filters import gaussian_blur
from bigmodel.keras.ops.image_layout import (
    FILL_MODES,
    INTERPOLATIONS,
    check_choice,
    fix_index,
    float_images,
    from_nchw,
    interpolation_nodes,
    ranked_images,
    sample_2d,
    to_nchw,
)
from bigmodel.keras.ops.node import keras_op


def _pixel_grid(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=like.dtype, device=like.device),
                            torch.arange(w, dtype=like.dtype, device=like.device), indexing="ij")
    return ys, xs


def _warp(images: torch.Tensor, transforms: torch.Tensor, order: int, fill_mode: str,
          fill_value: float) -> torch.Tensor:
    """Output pixel (x, y) of each ``(n, c, h, w)`` image reads the input at
    ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``, ``k = c0 x + c1 y + 1``; integer
    images are sampled in float32 and rounded back to their dtype, as Keras."""
    n, _, h, w = images.shape
    work = images if images.is_floating_point() else images.to(torch.float32)
    transforms = transforms.to(work.dtype)
    ys, xs = _pixel_grid(h, w, transforms)
    t = transforms.reshape(n, 8, 1, 1)
    k = t[:, 6] * xs + t[:, 7] * ys + 1.0
    x_in = (t[:, 0] * xs + t[:, 1] * ys + t[:, 2]) / k
    y_in = (t[:, 3] * xs + t[:, 4] * ys + t[:, 5]) / k
    out = sample_2d(work, y_in, x_in, order, fill_mode, fill_value)
    return out if images.is_floating_point() else torch.round(out).to(images.dtype)


@keras_op("image.affine_transform")
def affine_transform(images: Any, transform: Any, interpolation: str = "bilinear",
                     fill_mode: str = "constant", fill_value: float = 0,
                     data_format: str | None = None) -> torch.Tensor:
    """Images warped by ``transform = [a0, a1, a2, b0, b1, b2, c0, c1]`` (one, or one per image):
    the output pixel ``(x, y)`` reads the input at ``((a0 x + a1 y + a2) / k,
    (b0 x + b1 y + b2) / k)``, ``k = c0 x + c1 y + 1``.

    Args:
        interpolation: ``"nearest"`` or ``"bilinear"``.
        fill_mode: ``"constant"`` (``fill_value``), ``"nearest"``, ``"wrap"``, ``"mirror"``,
            ``"reflect"``: what points outside the input read.

    Raises:
        ConfigError: an unknown interpolation / fill mode. ShapeError: a transform that is not
        ``(8,)`` or ``(batch, 8)``, or images not rank 3/4.
    """
    check_choice("affine_transform", "interpolation", interpolation, INTERPOLATIONS)
    check_choice("affine_transform", "fill_mode", fill_mode, FILL_MODES)
    x, unbatched, last = to_nchw(ranked_images("affine_transform", convert_to_tensor(images)),
                                 data_format)
    transform = convert_to_tensor(transform).to(device=x.device, dtype=torch.float32)
    if transform.dim() == 1:
        transform = transform.unsqueeze(0)
    if transform.dim() != 2 or transform.shape[1] != 8 or transform.shape[0] not in (1, len(x)):
        raise ShapeError(f"keras.ops.image.affine_transform: transform must be (8,) or (batch, "
                         f"8); received shape {tuple(transform.shape)} for {len(x)} images")
    out = _warp(x, transform.expand(len(x), 8), INTERPOLATIONS[interpolation], fill_mode,
                fill_value)
    return from_nchw(out, unbatched, last)


def _homography(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The 8 coefficients mapping each ``end`` corner to its ``start`` corner, ``(n, 8)``."""
    rows, targets = [], []
    for i in range(4):
        (sx, sy), (ex, ey) = start[:, i].unbind(-1), end[:, i].unbind(-1)
        one, zero = torch.ones_like(ex), torch.zeros_like(ex)
        rows.append(torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], -1))
        rows.append(torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], -1))
        targets += [sx, sy]
    system = torch.stack(rows, 1).to(torch.float64)
    return torch.linalg.solve(system, torch.stack(targets, 1).to(torch.float64))


@keras_op("image.perspective_transform")
def perspective_transform(images: Any, start_points: Any, end_points: Any,
                          interpolation: str = "bilinear", fill_value: float = 0,
                          data_format: str | None = None) -> torch.Tensor:
    """Images warped so that the four ``start_points`` ``(x, y)`` land on ``end_points``.

    Args:
        start_points, end_points: ``(4, 2)`` or ``(batch, 4, 2)`` corner coordinates.

    Raises:
        ShapeError: points not ``(4, 2)`` / ``(batch, 4, 2)`` or of different shapes.
        ConfigError: an unknown interpolation.
    """
    check_choice("perspective_transform", "interpolation", interpolation, INTERPOLATIONS)
    x, unbatched, last = to_nchw(ranked_images("perspective_transform",
                                               convert_to_tensor(images)), data_format)
    start, end = convert_to_tensor(start_points), convert_to_tensor(end_points)
    for name, points in (("start_points", start), ("end_points", end)):
        if points.dim() not in (2, 3) or tuple(points.shape[-2:]) != (4, 2):
            raise ShapeError(f"keras.ops.image.perspective_transform: {name} must be (4, 2) or "
                             f"(batch, 4, 2); received shape {tuple(points.shape)}")
    if start.shape != end.shape:
        raise ShapeError(f"keras.ops.image.perspective_transform: start_points and end_points "
                         f"differ in shape: {tuple(start.shape)} and {tuple(end.shape)}")
    if start.dim() == 2:
        start, end = start.unsqueeze(0), end.unsqueeze(0)
    coefficients = _homography(start.to(x.device), end.to(x.device)).expand(len(x), 8)
    out = _warp(x, coefficients, INTERPOLATIONS[interpolation], "constant", fill_value)
    return from_nchw(out, unbatched, last)


@keras_op("image.map_coordinates")
def map_coordinates(inputs: Any, coordinates: Any, order: int, fill_mode: str = "constant",
                    fill_value: float = 0) -> torch.Tensor:
    """``inputs`` read at real-valued ``coordinates`` (``scipy.ndimage.map_coordinates``).

    Args:
        inputs: an array of any rank ``r``.
        coordinates: ``r`` arrays (or one ``(r, ...)`` array) of the same shape: the point
            where each output element reads.
        order: 0 (nearest) or 1 (linear).
        fill_mode: ``"constant"``, ``"nearest"``, ``"wrap"``, ``"mirror"``, ``"reflect"``.

    Returns:
        An array shaped like one coordinate array, in ``inputs``' dtype (rounded for integers).

    Raises:
        ShapeError: not one coordinate array per axis of ``inputs``.
        NotSupportedError: ``order`` > 1. ConfigError: an unknown fill mode.
    """
    check_choice("map_coordinates", "fill_mode", fill_mode, FILL_MODES)
    if order not in (0, 1):
        raise NotSupportedError(f"keras.ops.image.map_coordinates: order must be 0 or 1 (as in "
                                f"Keras); received order={order!r}")
    data = convert_to_tensor(inputs)
    coords = [convert_to_tensor(c).to(data.device) for c in coordinates]
    if len(coords) != data.dim() or not coords or coords[0].dim() < 1:
        raise ShapeError(f"keras.ops.image.map_coordinates: coordinates must hold one array "
                         f"(rank >= 1) per axis of inputs ({data.dim()}); received "
                         f"{len(coords)}")
    work = torch.float64 if data.dtype == torch.float64 else torch.float32
    values = data.to(work).reshape(-1)
    strides = [math.prod(data.shape[i + 1:]) for i in range(data.dim())]
    device = data.device
    out = torch.zeros(coords[0].shape, dtype=work, device=device)
    nodes = [interpolation_nodes(c.to(work), order) for c in coords]

    def accumulate(axis: int, flat: torch.Tensor, weight: Any, inside: Any) -> None:
        nonlocal out
        if axis == data.dim():
            picked = values[flat]
            if fill_mode == "constant":
                picked = torch.where(inside, picked, torch.as_tensor(fill_value, dtype=work))
            out = out + weight * picked
            return
        size = data.shape[axis]
        for index, node_weight in nodes[axis]:
            valid = (index >= 0) & (index < size)
            accumulate(axis + 1, flat + fix_index(index, size, fill_mode) * strides[axis],
                       weight * node_weight, inside & valid)

    accumulate(0, torch.zeros(coords[0].shape, dtype=torch.long, device=device), 1.0,
               torch.ones(coords[0].shape, dtype=torch.bool, device=device))
    if not data.is_floating_point():
        out = torch.round(out)
    return out.to(data.dtype)


@keras_op("image.elastic_transform")
def elastic_transform(images: Any, alpha: float = 20.0, sigma: float = 5.0,
                      interpolation: str = "bilinear", fill_mode: str = "reflect",
                      fill_value: float = 0.0, seed: Any = None,
                      data_format: str | None = None) -> torch.Tensor:
    """Images distorted by a smooth random displacement field: per-pixel normal noise times
    ``sigma``, blurred by a Gaussian of ``sigma`` (kernel ``int(6 sigma) | 1``), times ``alpha``.

    Args:
        seed: an int (the same field for the same seed) or None.

    Raises:
        ConfigError: an unknown interpolation / fill mode.
    """
    check_choice("elastic_transform", "interpolation", interpolation, INTERPOLATIONS)
    check_choice("elastic_transform", "fill_mode", fill_mode, FILL_MODES)
    x, unbatched, last = to_nchw(float_images("elastic_transform", convert_to_tensor(images)),
                                 data_format)
    n, _, h, w = x.shape
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    # drawn on the CPU (a seeded CPU generator gives the same field on every device)
    noise = torch.randn((2, n, h, w, 1), generator=generator, dtype=x.dtype).to(x.device)
    noise = noise * float(sigma)
    size = int(6 * float(sigma)) | 1
    field = torch.stack([gaussian_blur(part, (size, size), (sigma, sigma),
                                       data_format="channels_last")[..., 0] for part in noise])
    ys, xs = _pixel_grid(h, w, x)
    out = sample_2d(x, ys + alpha * field[1], xs + alpha * field[0],
                    INTERPOLATIONS[interpolation], fill_mode, fill_value)
    return from_nchw(out, unbatched, last)


def _resample_kernel(method: str, x: torch.Tensor) -> torch.Tensor:
    if method == "linear":
        return torch.clamp(1 - x.abs(), min=0)
    if method == "cubic":  # Keys, a = -0.5
        x = x.abs()
        near = ((1.5 * x - 2.5) * x) * x + 1.0
        far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
        return torch.where(x >= 2.0, 0.0, torch.where(x >= 1.0, far, near))
    radius = 3.0 if method == "lanczos3" else 5.0
    x = x.abs()
    safe = torch.where(x != 0, x, 1.0)
    value = radius * torch.sin(math.pi * x) * torch.sin(math.pi * x / radius) / (math.pi ** 2
                                                                                  * safe ** 2)
    return torch.where(x > radius, 0.0, torch.where(x > 1e-3, value, 1.0))


_METHODS = {"linear": "linear", "bilinear": "linear", "trilinear": "linear", "triangle": "linear",
            "cubic": "cubic", "bicubic": "cubic", "tricubic": "cubic", "lanczos3": "lanczos3",
            "lanczos5": "lanczos5"}


@keras_op("image.scale_and_translate")
def scale_and_translate(images: Any, output_shape: Any, scale: Any, translation: Any,
                        spatial_dims: Any, method: str, antialias: bool = True) -> torch.Tensor:
    """Resampling of the ``spatial_dims`` axes to ``output_shape``: output sample ``i`` of an
    axis reads input position ``(i + 0.5 - translation) / scale - 0.5`` (``jax.image``).

    Args:
        output_shape: the full output shape. scale, translation: one per spatial dim.
        method: ``"linear"``, ``"cubic"``, ``"lanczos3"``, ``"lanczos5"`` (or bi-/tri- names).
        antialias: widen the kernel by ``1 / scale`` when downsampling.

    Raises:
        ConfigError: an unknown method; ShapeError: scale / translation not one per dim.
    """
    check_choice("scale_and_translate", "method", method, _METHODS)
    kernel = _METHODS[method]
    x = convert_to_tensor(images)
    dims = [int(d) % x.dim() for d in spatial_dims]
    scale = convert_to_tensor(scale).reshape(-1).to(device=x.device, dtype=torch.float32)
    translation = convert_to_tensor(translation).reshape(-1).to(device=x.device, dtype=torch.float32)
    if len(scale) != len(dims) or len(translation) != len(dims):
        raise ShapeError(f"keras.ops.image.scale_and_translate: scale and translation need one "
                         f"value per spatial dim ({len(dims)}); received {len(scale)} and "
                         f"{len(translation)}")
    out = x.to(torch.float32) if not x.is_floating_point() else x
    for i, dim in enumerate(dims):
        size_in, size_out = x.shape[dim], int(output_shape[dim])
        inverse = 1.0 / scale[i]
        widen = torch.clamp(inverse, min=1.0) if antialias else torch.ones((), device=x.device)
        grid_out = torch.arange(size_out, dtype=torch.float32, device=x.device)
        positions = ((grid_out + 0.5) * inverse
                     - translation[i] * inverse - 0.5)
        grid_in = torch.arange(size_in, dtype=torch.float32, device=x.device)
        distance = positions[None, :] - grid_in[:, None]
        weights = _resample_kernel(kernel, distance.abs() / widen)  # (in, out)
        total = weights.sum(0, keepdim=True)
        weights = torch.where(total.abs() > 1000.0 * torch.finfo(torch.float32).eps,
                              weights / torch.where(total != 0, total, 1.0), 0.0)
        inside = (positions >= -0.5) & (positions <= size_in - 0.5)
        weights = torch.where(inside[None, :], weights, 0.0).to(out.dtype)
        out = torch.movedim(torch.tensordot(out, weights, dims=([dim], [0])), -1, dim)
    if not x.is_floating_point():
        out = torch.clamp(torch.round(out), x.min(), x.max()).to(x.dtype)
    return out


def _sides(op: str, kind: str, first: Any, second: Any, target: Any, size: int,
           names: tuple[str, str, str]) -> tuple[int, int]:
    """(amount at the start, amount at the end) of one axis from two of three arguments."""
    given = [v for v in (first, second, target) if v is not None]
    if len(given) != 2:
        raise ConfigError(f"keras.ops.image.{op}: give exactly two of {', '.join(names)}; "
                          f"received {names[0]}={first}, {names[1]}={second}, "
                          f"{names[2]}={target}")
    for name, value in zip(names, (first, second, target)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ConfigError(f"keras.ops.image.{op}: {name} must be an int >= 0; received "
                              f"{name}={value!r}")
    sign = 1 if kind == "pad" else -1
    if first is None:
        first = sign * (target - size) - second
    if second is None:
        second = sign * (target - size) - first
    for name, value in zip(names[:2], (first, second)):
        if value < 0:
            raise ConfigError(f"keras.ops.image.{op}: {name} comes out {value} for size {size} "
                              f"and {names[2]}={target}; it must be >= 0")
    if kind == "crop" and first + second > size:
        raise ConfigError(f"keras.ops.image.{op}: cropping {first} + {second} is more than the "
                          f"size {size}")
    return first, second


@keras_op("image.pad_images")
def pad_images(images: Any, top_padding: int | None = None, left_padding: int | None = None,
               bottom_padding: int | None = None, right_padding: int | None = None,
               target_height: int | None = None, target_width: int | None = None,
               data_format: str | None = None) -> torch.Tensor:
    """Images padded with zeros; per axis give two of (start padding, end padding, target size).

    Raises:
        ConfigError: not exactly two of each triple, or a negative amount.
    """
    x, unbatched, last = to_nchw(_any_images("pad_images", images), data_format)
    top, bottom = _sides("pad_images", "pad", top_padding, bottom_padding, target_height,
                         x.shape[2], ("top_padding", "bottom_padding", "target_height"))
    left, right = _sides("pad_images", "pad", left_padding, right_padding, target_width,
                         x.shape[3], ("left_padding", "right_padding", "target_width"))
    return from_nchw(F.pad(x, (left, right, top, bottom)), unbatched, last)


@keras_op("image.crop_images")
def crop_images(images: Any, top_cropping: int | None = None, left_cropping: int | None = None,
                bottom_cropping: int | None = None, right_cropping: int | None = None,
                target_height: int | None = None, target_width: int | None = None,
                data_format: str | None = None) -> torch.Tensor:
    """Images cropped; per axis give two of (start cropping, end cropping, target size).

    Raises:
        ConfigError: not exactly two of each triple, a negative amount, or more than the image.
    """
    x, unbatched, last = to_nchw(_any_images("crop_images", images), data_format)
    top, bottom = _sides("crop_images", "crop", top_cropping, bottom_cropping, target_height,
                         x.shape[2], ("top_cropping", "bottom_cropping", "target_height"))
    left, right = _sides("crop_images", "crop", left_cropping, right_cropping, target_width,
                         x.shape[3], ("left_cropping", "right_cropping", "target_width"))
    out = x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]
    return from_nchw(out, unbatched, last)


def _any_images(op: str, images: Any) -> torch.Tensor:
    x = convert_to_tensor(images)
    if x.dim() not in (3, 4):
        raise ShapeError(f"keras.ops.image.{op}: images must be 3-D (one image) or 4-D (a "
                         f"batch); received shape {tuple(x.shape)}")
    return x
