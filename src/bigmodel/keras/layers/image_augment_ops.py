"""Pixel arithmetic of the Keras 3 image-augmentation layers (private to ``keras.layers``).

``keras.ops.image`` has the public versions of these operations, but ``keras.ops`` builds on
``keras.layers`` (its graph nodes are layers), so layers cannot import it; these small
channels-last kernels follow the same formulas of Keras 3's torch backend
(``keras/src/backend/torch/image.py``), and the layers' tests check them against real Keras:
grayscale weights ``0.2989, 0.587, 0.114``; HSV conversion as dm_pix; sampling with SciPy's fill
modes (``reflect`` is ``d c b a | a b c d | d c b a``, ``mirror`` is ``d c b | a b c d | c b a``);
projective transforms reading input position ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``
with ``k = c0 x + c1 y + 1`` for output position ``(x, y)``.

Every function takes float batches ``(batch, height, width, channels)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ["FILL_MODES", "INTERPOLATIONS", "gaussian_blur", "homography", "hsv_to_rgb",
           "map_coordinates", "projective_transform", "rgb_to_grayscale", "rgb_to_hsv"]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def rgb_to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` -> ``(B, H, W, 1)`` luma (ITU-R 601 weights); one channel is kept."""
    if images.shape[-1] == 1:
        return images
    r, g, b = images.unbind(dim=-1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-1)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """RGB -> HSV (hue, saturation in [0, 1]; value in the input's scale)."""
    eps = torch.finfo(images.dtype).eps
    images = torch.where(images.abs() < eps, torch.zeros_like(images), images)
    r, g, b = images.unbind(dim=-1)
    value = torch.maximum(torch.maximum(r, g), b)
    spread = value - torch.minimum(torch.minimum(r, g), b)
    one = torch.ones_like(value)
    saturation = torch.where(value > 0, spread / torch.where(value > 0, value, one),
                             torch.zeros_like(value))
    norm = 1.0 / (6.0 * torch.where(spread > 0, spread, one))
    hue = torch.where(value == g, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0)
    hue = torch.where(value == r, norm * (g - b), hue)
    hue = torch.where(spread > 0, hue, torch.zeros_like(hue)) + (hue < 0.0).to(hue.dtype)
    return torch.stack([hue, saturation, value], dim=-1)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """HSV -> RGB, the inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = images.unbind(dim=-1)
    dh = torch.remainder(hue, 1.0) * 6.0
    dr = torch.clip((dh - 3.0).abs() - 1.0, 0.0, 1.0)
    dg = torch.clip(2.0 - (dh - 2.0).abs(), 0.0, 1.0)
    db = torch.clip(2.0 - (dh - 4.0).abs(), 0.0, 1.0)
    grey = 1.0 - saturation
    return torch.stack([value * (grey + saturation * d) for d in (dr, dg, db)], dim=-1)


def gaussian_blur(images: torch.Tensor, kernel_size: tuple[int, int],
                  sigma: torch.Tensor) -> torch.Tensor:
    """Depthwise Gaussian blur with zero padding ``kernel_size[0] // 2`` (as Keras's torch backend).

    Args:
        images: ``(B, H, W, C)`` floats.
        kernel_size: odd ``(size_y, size_x)``; as Keras, the kernel is the outer product of a
            ``size[1]`` kernel with ``sigma[1]`` and a ``size[0]`` kernel with ``sigma[0]``.
        sigma: two standard deviations.

    Returns:
        ``(B, H, W, C)`` blurred images.
    """
    def kernel_1d(size: int, std: torch.Tensor) -> torch.Tensor:
        x = torch.arange(size, dtype=images.dtype, device=images.device) - (size - 1) / 2
        kernel = torch.exp(-0.5 * (x / std) ** 2)
        return kernel / kernel.sum()

    sigma = torch.as_tensor(sigma, dtype=images.dtype, device=images.device)
    kernel = torch.outer(kernel_1d(kernel_size[1], sigma[1]), kernel_1d(kernel_size[0], sigma[0]))
    channels = images.shape[-1]
    kernel = kernel.view(1, 1, kernel_size[0], kernel_size[1]).expand(channels, 1, -1, -1)
    out = F.conv2d(images.permute(0, 3, 1, 2), kernel, padding=int(kernel_size[0] // 2),
                   groups=channels)
    return out.permute(0, 2, 3, 1)


def _fix_index(index: torch.Tensor, size: int, fill_mode: str) -> torch.Tensor:
    if fill_mode in ("constant", "nearest"):
        return index.clamp(0, size - 1)
    if fill_mode == "wrap":
        return torch.remainder(index, size)

    def mirror(i: torch.Tensor, n: int) -> torch.Tensor:
        s = n - 1  # half-wavelength of a triangular wave
        return ((i + s) % (2 * s) - s).abs() if s > 0 else torch.zeros_like(i)

    if fill_mode == "mirror":
        return mirror(index, size)
    return torch.div(mirror(2 * index + 1, 2 * size + 1) - 1, 2, rounding_mode="floor")


def map_coordinates(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                    order: int = 1, fill_mode: str = "constant",
                    fill_value: float = 0.0) -> torch.Tensor:
    """Sample each image at fractional positions (SciPy ``map_coordinates`` semantics).

    Args:
        images: ``(B, H, W, C)``.
        rows, cols: ``(B, H_out, W_out)`` input row / column to read for each output pixel.
        order: 0 (nearest; ``torch.round``, halves to even) or 1 (bilinear).
        fill_mode: ``constant`` (``fill_value`` outside), ``nearest``, ``wrap``, ``reflect`` or
            ``mirror``.

    Returns:
        ``(B, H_out, W_out, C)``.
    """
    batch, height, width, channels = images.shape
    if order == 0:
        row_nodes = [(torch.round(rows).long(), None)]
        col_nodes = [(torch.round(cols).long(), None)]
    else:
        r0, c0 = torch.floor(rows), torch.floor(cols)
        row_nodes = [(r0.long(), 1 - (rows - r0)), (r0.long() + 1, rows - r0)]
        col_nodes = [(c0.long(), 1 - (cols - c0)), (c0.long() + 1, cols - c0)]
    flat = images.reshape(batch, height * width, channels)
    out = torch.zeros((*rows.shape, channels), dtype=images.dtype, device=images.device)
    for r, wr in row_nodes:
        for c, wc in col_nodes:
            index = _fix_index(r, height, fill_mode) * width + _fix_index(c, width, fill_mode)
            values = torch.gather(flat, 1, index.reshape(batch, -1, 1).expand(-1, -1, channels))
            values = values.reshape(*rows.shape, channels)
            if fill_mode == "constant":
                inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
                values = torch.where(inside.unsqueeze(-1), values,
                                     torch.full_like(values, fill_value))
            weight = 1.0 if wr is None else (wr * wc).unsqueeze(-1)
            out = out + weight * values
    return out


def projective_transform(images: torch.Tensor, transform: torch.Tensor,
                         interpolation: str = "bilinear", fill_mode: str = "constant",
                         fill_value: float = 0.0) -> torch.Tensor:
    """Resample ``images`` (B, H, W, C) through ``transform`` (B, 8): ``a0 a1 a2 b0 b1 b2 c0 c1``."""
    batch, height, width, _ = images.shape
    t = transform.to(images.dtype)
    y, x = torch.meshgrid(torch.arange(height, dtype=images.dtype, device=images.device),
                          torch.arange(width, dtype=images.dtype, device=images.device),
                          indexing="ij")
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, i].view(batch, 1, 1) for i in range(8))
    k = c0 * x + c1 * y + 1.0
    cols = (a0 * x + a1 * y + a2) / k
    rows = (b0 * x + b1 * y + b2) / k
    return map_coordinates(images, rows, cols, 0 if interpolation == "nearest" else 1,
                           fill_mode, fill_value)


def homography(start_points: torch.Tensor, end_points: torch.Tensor) -> torch.Tensor:
    """The ``(B, 8)`` projective transform mapping each of the four ``end_points`` (x, y) of an
    output image to the ``start_points`` of the input (``(B, 4, 2)`` each)."""
    rows, target = [], []
    for i in range(4):
        ex, ey = end_points[:, i, 0], end_points[:, i, 1]
        sx, sy = start_points[:, i, 0], start_points[:, i, 1]
        one, zero = torch.ones_like(ex), torch.zeros_like(ex)
        rows.append(torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], dim=-1))
        rows.append(torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], dim=-1))
        target += [sx, sy]
    return torch.linalg.solve(torch.stack(rows, dim=1), torch.stack(target, dim=-1))
