"""Shared by the ``keras.ops.image`` modules: image batch layouts, argument checks and sampling.

Keras image ops take one image ``(h, w, c)`` or a batch ``(n, h, w, c)`` (channels last, or
channels first by ``data_format``); here they compute on ``(n, c, h, w)``. Sampling at real-valued
coordinates follows Keras (and ``scipy.ndimage.map_coordinates``): order 0 rounds to the nearest
pixel, order 1 interpolates linearly; points outside the image take ``fill_value``
(``"constant"``) or the pixel the fill mode reflects them to.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.keras import config

#: Keras's interpolation names for the sampling ops -> spline order
INTERPOLATIONS = {"nearest": 0, "bilinear": 1}
FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def check_choice(op: str, name: str, value: Any, choices: Any) -> None:
    """Raise ConfigError naming ``keras.ops.image.<op>`` and ``name`` if ``value`` is not one
    of ``choices``."""
    if value not in choices:
        raise ConfigError(f"keras.ops.image.{op}: {name} must be one of {sorted(choices)}; "
                          f"received {name}={value!r}")


def ranked_images(op: str, images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """``images`` itself, checked to be one image (rank 3) or a batch (rank 4).

    Raises:
        ShapeError: another rank, naming ``keras.ops.image.<op>``.
    """
    if images.dim() not in (3, 4):
        raise ShapeError(f"keras.ops.image.{op}: {name} must be 3-D (one image) or 4-D (a "
                         f"batch); received shape {tuple(images.shape)}")
    return images


def float_images(op: str, images: Any, name: str = "images") -> torch.Tensor:
    """``images`` as a float tensor of rank 3 or 4.

    Raises:
        ShapeError: another rank. InputTypeError: an integer or bool tensor.
    """
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    ranked_images(op, x, name)
    if not x.is_floating_point():
        raise InputTypeError(f"keras.ops.image.{op}: {name} must be a float tensor; received "
                             f"{str(x.dtype).replace('torch.', '')}")
    return x


def channels_last(data_format: str | None) -> bool:
    """Whether ``data_format`` (default: ``keras.config.image_data_format()``) is channels last."""
    fmt = data_format or config.image_data_format()
    if fmt not in ("channels_last", "channels_first"):
        raise ConfigError(f"data_format must be 'channels_last' or 'channels_first'; received "
                          f"data_format={data_format!r}")
    return fmt == "channels_last"


def to_nchw(images: torch.Tensor, data_format: str | None) -> tuple[torch.Tensor, bool, bool]:
    """``(n, c, h, w)`` view of a rank-3/4 batch, whether it was unbatched, whether channels
    last (for :func:`from_nchw`)."""
    unbatched = images.dim() == 3
    if unbatched:
        images = images.unsqueeze(0)
    last = channels_last(data_format)
    return (images.permute(0, 3, 1, 2) if last else images), unbatched, last


def from_nchw(images: torch.Tensor, unbatched: bool, last: bool) -> torch.Tensor:
    """The inverse of :func:`to_nchw`."""
    if last:
        images = images.permute(0, 2, 3, 1)
    return images[0] if unbatched else images


def _mirror(index: torch.Tensor, size: int) -> torch.Tensor:
    period = size - 1
    if period == 0:
        return torch.zeros_like(index)
    return torch.abs((index + period) % (2 * period) - period)


def fix_index(index: torch.Tensor, size: int, fill_mode: str) -> torch.Tensor:
    """Integer ``index`` brought inside ``[0, size)`` as ``fill_mode`` says (``"constant"``
    clips: the caller masks those points)."""
    if fill_mode == "wrap":
        return index % size
    if fill_mode == "mirror":  # d c b | a b c d | c b a
        return _mirror(index, size)
    if fill_mode == "reflect":  # c b a | a b c d | d c b
        return torch.div(_mirror(2 * index + 1, 2 * size + 1) - 1, 2, rounding_mode="floor")
    return index.clamp(0, size - 1)


def interpolation_nodes(coordinate: torch.Tensor,
                        order: int) -> list[tuple[torch.Tensor, torch.Tensor | float]]:
    """``[(integer index, weight), ...]`` of the pixels a coordinate reads along one axis."""
    if order == 0:
        return [(torch.round(coordinate).long(), 1.0)]
    lower = torch.floor(coordinate)
    upper_weight = coordinate - lower
    return [(lower.long(), 1 - upper_weight), (lower.long() + 1, upper_weight)]


def sample_2d(images: torch.Tensor, y: torch.Tensor, x: torch.Tensor, order: int,
              fill_mode: str, fill_value: float) -> torch.Tensor:
    """Pixels of ``images`` ``(n, c, h, w)`` read at ``(y, x)``, each ``(n, h', w')``.

    Returns:
        ``(n, c, h', w')`` in the dtype of ``images``.
    """
    n, c, h, w = images.shape
    flat = images.reshape(n, c, h * w)
    out = torch.zeros((n, c, *y.shape[1:]), dtype=images.dtype, device=images.device)
    for row, row_weight in interpolation_nodes(y, order):
        for col, col_weight in interpolation_nodes(x, order):
            index = fix_index(row, h, fill_mode) * w + fix_index(col, w, fill_mode)
            values = torch.gather(flat, 2, index.reshape(n, 1, -1).expand(n, c, -1))
            values = values.reshape(out.shape)
            if fill_mode == "constant":
                inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
                values = torch.where(inside.unsqueeze(1), values,
                                     torch.as_tensor(fill_value, dtype=values.dtype))
            weight = row_weight * col_weight
            if isinstance(weight, torch.Tensor):
                weight = weight.unsqueeze(1).to(values.dtype)
            out = out + weight * values
    return out
