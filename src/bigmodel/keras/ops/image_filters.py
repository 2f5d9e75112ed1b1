"""``keras.ops.image`` filters and colour: ``gaussian_blur``, ``sobel_edges``, ``ssim``,
``rgb_to_hsv`` / ``hsv_to_rgb`` and ``extract_patches_3d`` (exported by :mod:`.image`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.ops.convolution import same_padding
from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor
from bigmodel.keras.ops.image_layout import channels_last, float_images, from_nchw, to_nchw
from bigmodel.keras.ops.node import keras_op


def _gaussian_1d(size: int, sigma: Any, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (x / torch.as_tensor(sigma, dtype=dtype)) ** 2)
    return kernel / kernel.sum()


def _pair(op: str, name: str, value: Any) -> tuple[Any, Any]:
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2:
        raise ConfigError(f"keras.ops.image.{op}: {name} must be a number or a pair; received "
                          f"{name}={value!r}")
    return pair


@keras_op("image.gaussian_blur")
def gaussian_blur(images: Any, kernel_size: Any = (3, 3), sigma: Any = (1.0, 1.0),
                  data_format: str | None = None) -> torch.Tensor:
    """Images convolved with a Gaussian (zero padding, same size), each channel on its own.

    As in Keras, the kernel is ``outer(g(kernel_size[1], sigma[1]), g(kernel_size[0],
    sigma[0]))``: ``sigma[0]`` acts along the width, ``sigma[1]`` along the height.

    Raises:
        ConfigError: a kernel size that is not a positive odd int (or pair of them).
    """
    sizes = _pair("gaussian_blur", "kernel_size", kernel_size)
    sigmas = _pair("gaussian_blur", "sigma", sigma)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or s % 2 == 0 for s in sizes):
        raise ConfigError(f"keras.ops.image.gaussian_blur: kernel_size must be positive odd "
                          f"ints; received kernel_size={kernel_size!r}")
    x, unbatched, last = to_nchw(float_images("gaussian_blur", convert_to_tensor(images)),
                                 data_format)
    kernel = torch.outer(_gaussian_1d(sizes[1], sigmas[1], x.dtype),
                         _gaussian_1d(sizes[0], sigmas[0], x.dtype))
    channels = x.shape[1]
    weight = kernel.to(x.device).expand(channels, 1, *kernel.shape)
    out = F.conv2d(x, weight, padding=(sizes[1] // 2, sizes[0] // 2), groups=channels)
    return from_nchw(out, unbatched, last)


@keras_op("image.sobel_edges")
def sobel_edges(images: Any, data_format: str | None = None) -> torch.Tensor:
    """Sobel gradients of each channel (zero padding): ``(..., channels, 2)`` holding
    ``(d/dy, d/dx)``; channels first gives ``(batch, channels, h, w, 2)``."""
    x = float_images("sobel_edges", convert_to_tensor(images))
    if x.dim() != 4:
        raise ShapeError(f"keras.ops.image.sobel_edges: images must be a 4-D batch; received "
                         f"shape {tuple(x.shape)}")
    x, _, last = to_nchw(x, data_format)
    channels = x.shape[1]
    dx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([dx.T, dx]).unsqueeze(1).repeat(channels, 1, 1, 1)  # (2c, 1, 3, 3)
    edges = F.conv2d(x.repeat_interleave(2, dim=1), kernels, padding=1, groups=2 * channels)
    edges = edges.reshape(x.shape[0], channels, 2, *x.shape[2:]).movedim(2, -1)
    return edges.permute(0, 2, 3, 1, 4) if last else edges


@keras_op("image.ssim")
def ssim(image1: Any, image2: Any, max_val: float = 1.0, filter_size: int = 11,
         filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
         data_format: str | None = None) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) with a Gaussian window (valid positions only),
    averaged over positions and channels.

    Returns:
        One value per image ``(batch,)``, or a scalar for one image.

    Raises:
        ShapeError: images of different shapes or smaller than the filter.
        ConfigError: ``filter_size`` not a positive int.
    """
    a = float_images("ssim", as_float(image1), "image1")
    b = float_images("ssim", as_float(image2), "image2")
    if a.shape != b.shape:
        raise ShapeError(f"keras.ops.image.ssim: image1 and image2 differ in shape: "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if isinstance(filter_size, bool) or not isinstance(filter_size, int) or filter_size < 1:
        raise ConfigError(f"keras.ops.image.ssim: filter_size must be a positive int; received "
                          f"filter_size={filter_size!r}")
    a, unbatched, _ = to_nchw(a, data_format)
    b, _, _ = to_nchw(b, data_format)
    n, c, h, w = a.shape
    if min(h, w) < filter_size:
        raise ShapeError(f"keras.ops.image.ssim: images ({h}x{w}) are smaller than "
                         f"filter_size={filter_size}")
    g = _gaussian_1d(filter_size, filter_sigma, a.dtype)
    window = torch.outer(g, g).to(a.device)[None, None]

    def local_mean(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z.reshape(n * c, 1, h, w), window)

    mu1, mu2 = local_mean(a), local_mean(b)
    var1 = local_mean(a * a) - mu1 * mu1
    var2 = local_mean(b * b) - mu2 * mu2
    cov = local_mean(a * b) - mu1 * mu2
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    index = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1)
                                                        * (var1 + var2 + c2))
    per_image = index.reshape(n, c, -1).mean(-1).mean(-1)
    return per_image[0] if unbatched else per_image


def _hsv_checked(op: str, images: Any, data_format: str | None) -> tuple[torch.Tensor, int]:
    x = float_images(op, convert_to_tensor(images))
    axis = -1 if channels_last(data_format) else -3
    if x.shape[axis] != 3:
        raise ShapeError(f"keras.ops.image.{op}: images need 3 channels; received shape "
                         f"{tuple(x.shape)}")
    return x, axis


@keras_op("image.rgb_to_hsv")
def rgb_to_hsv(images: Any, data_format: str | None = None) -> torch.Tensor:
    """RGB in [0, 1] to HSV, each in [0, 1] (hue as a fraction of the circle)."""
    x, axis = _hsv_checked("rgb_to_hsv", images, data_format)
    x = torch.where(x.abs() < torch.finfo(x.dtype).eps, 0.0, x)
    r, g, b = x.unbind(axis)
    value = torch.maximum(torch.maximum(r, g), b)
    spread = value - torch.minimum(torch.minimum(r, g), b)
    saturation = torch.where(value > 0, spread / torch.where(value > 0, value, 1.0), 0.0)
    scale = 1.0 / (6.0 * torch.where(spread > 0, spread, 1.0))
    hue = torch.where(value == g, scale * (b - r) + 2.0 / 6.0, scale * (r - g) + 4.0 / 6.0)
    hue = torch.where(value == r, scale * (g - b), hue)
    hue = torch.where(spread > 0, hue, 0.0)
    hue = hue + (hue < 0).to(hue.dtype)
    return torch.stack([hue, saturation, value], axis)


@keras_op("image.hsv_to_rgb")
def hsv_to_rgb(images: Any, data_format: str | None = None) -> torch.Tensor:
    """HSV (each in [0, 1]) to RGB in [0, 1]: the inverse of :func:`rgb_to_hsv`."""
    x, axis = _hsv_checked("hsv_to_rgb", images, data_format)
    hue, saturation, value = x.unbind(axis)
    sector = torch.remainder(hue, 1.0) * 6.0
    red = torch.clamp((sector - 3.0).abs() - 1.0, 0.0, 1.0)
    green = torch.clamp(2.0 - (sector - 2.0).abs(), 0.0, 1.0)
    blue = torch.clamp(2.0 - (sector - 4.0).abs(), 0.0, 1.0)
    grey = value * (1.0 - saturation)
    return torch.stack([grey + value * saturation * channel for channel in (red, green, blue)],
                       axis)


def _triple(op: str, name: str, value: Any) -> tuple[int, int, int]:
    triple = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(triple) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                               for v in triple):
        raise ConfigError(f"keras.ops.image.{op}: {name} must be a positive int or 3 of them; "
                          f"received {name}={value!r}")
    return triple  # type: ignore[return-value]


@keras_op("image.extract_patches_3d")
def extract_patches_3d(volumes: Any, size: Any, strides: Any = None, dilation_rate: Any = 1,
                       padding: str = "valid", data_format: str | None = None) -> torch.Tensor:
    """Patches of ``size = (pd, ph, pw)`` from volumes ``(batch, d, h, w, c)`` (or one
    ``(d, h, w, c)``): ``(batch, d', h', w', pd * ph * pw * c)``, each patch flattened with
    depth slowest and channels fastest (Keras's order); channels first puts that axis second.

    Raises:
        ShapeError: volumes not 4-D/5-D. ConfigError: bad size / strides / dilation / padding.
    """
    if padding not in ("valid", "same"):
        raise ConfigError(f"keras.ops.image.extract_patches_3d: padding must be 'valid' or "
                          f"'same'; received padding={padding!r}")
    window = _triple("extract_patches_3d", "size", size)
    steps = window if strides is None else _triple("extract_patches_3d", "strides", strides)
    dilation = _triple("extract_patches_3d", "dilation_rate", dilation_rate)
    x = convert_to_tensor(volumes)  # any dtype: patches are copies of the values
    if x.dim() not in (4, 5):
        raise ShapeError(f"keras.ops.image.extract_patches_3d: volumes must be 4-D or 5-D; "
                         f"received shape {tuple(x.shape)}")
    unbatched = x.dim() == 4
    if unbatched:
        x = x.unsqueeze(0)
    last = channels_last(data_format)
    if last:
        x = x.permute(0, 4, 1, 2, 3)  # (n, c, d, h, w)
    if padding == "same":
        x = F.pad(x, same_padding(tuple(x.shape[2:]), window, steps, dilation))
    for axis, (k, s, r) in enumerate(zip(window, steps, dilation)):
        # sliding windows along each spatial axis: (n, c, d', h', w', kd, kh, kw)
        x = x.unfold(2 + axis, (k - 1) * r + 1, s)[..., ::r]
    n, c = x.shape[:2]
    outer = x.shape[2:5]
    patches = x.permute(0, 2, 3, 4, 5, 6, 7, 1).reshape(n, *outer, -1)
    if not last:
        patches = patches.permute(0, 4, 1, 2, 3)
    return patches[0] if unbatched else patches
