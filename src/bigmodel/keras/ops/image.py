"""``keras.ops.image``: resizing, colour conversion, patches; the geometry ops (warps, crops, pads,
``map_coordinates``) live in :mod:`.image_geometry`, the filters and HSV in :mod:`.image_filters`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras.layers.preprocessing import resize_images
from bigmodel.keras.ops.convolution import same_padding
from bigmodel.keras.ops.dtypes import as_float
from bigmodel.keras.ops.image_filters import (  # noqa: F401 - keras.ops.image names
    extract_patches_3d,
    gaussian_blur,
    hsv_to_rgb,
    rgb_to_hsv,
    sobel_edges,
    ssim,
)
from bigmodel.keras.ops.image_geometry import (  # noqa: F401 - keras.ops.image names
    affine_transform,
    crop_images,
    elastic_transform,
    map_coordinates,
    pad_images,
    perspective_transform,
    scale_and_translate,
)
from bigmodel.keras.ops.image_layout import from_nchw, ranked_images, to_nchw
from bigmodel.keras.ops.node import keras_op, unsupported

_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic",
          "area": "area"}


@keras_op("image.resize")
def resize(images: Any, size: Any, interpolation: str = "bilinear", antialias: bool = False,
           crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
           fill_mode: str = "constant", fill_value: float = 0.0,
           data_format: str | None = None) -> torch.Tensor:
    """Images resized to ``size = (height, width)`` (half-pixel centres, as Keras).

    Args:
        crop_to_aspect_ratio: first cut the largest centred box of the target's aspect ratio.
        pad_to_aspect_ratio: first pad both sides evenly with ``fill_value`` to the target's
            aspect ratio (as Keras's torch backend: ``(padded - side) // 2`` on each side).
        (Computed by the ``Resizing`` layer's :func:`resize_images`.)

    Raises:
        NotSupportedError: an interpolation other than bilinear, nearest, bicubic, area.
        ConfigError: both aspect-ratio options, or a ``fill_mode`` other than ``"constant"``.
    """
    if interpolation not in _MODES:
        raise NotSupportedError(
            f"keras.ops.image.resize(interpolation={interpolation!r}) is not supported; "
            "bilinear, nearest, bicubic and area are. See docs/keras.md")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ConfigError("keras.ops.image.resize: give crop_to_aspect_ratio or "
                          "pad_to_aspect_ratio, not both")
    if fill_mode != "constant":
        raise ConfigError(f"keras.ops.image.resize: fill_mode must be 'constant'; received "
                          f"fill_mode={fill_mode!r}")
    if len(size) != 2:
        raise ConfigError(f"keras.ops.image.resize: size must be (height, width); received "
                          f"size={size!r}")
    x, unbatched, channels_last = to_nchw(ranked_images("resize", as_float(images)), data_format)
    target = tuple(int(s) for s in size)
    if interpolation == "area":  # not a Keras mode on torch: no aspect-ratio handling
        if crop_to_aspect_ratio or pad_to_aspect_ratio:
            raise NotSupportedError("keras.ops.image.resize(interpolation='area') with "
                                    "crop_to_aspect_ratio / pad_to_aspect_ratio is not supported")
        out = F.interpolate(x, size=target, mode="area")
    else:
        out = resize_images(x, target, interpolation, antialias, crop_to_aspect_ratio,
                            pad_to_aspect_ratio, float(fill_value))
    return from_nchw(out, unbatched, channels_last)


@keras_op("image.rgb_to_grayscale")
def rgb_to_grayscale(images: Any, data_format: str | None = None) -> torch.Tensor:
    """Luma ``0.2989 R + 0.5870 G + 0.1140 B`` with one channel kept."""
    x, unbatched, channels_last = to_nchw(ranked_images("rgb_to_grayscale", as_float(images)),
                                          data_format)
    weights = torch.tensor([0.2989, 0.5870, 0.1140], dtype=x.dtype, device=x.device)
    gray = torch.einsum("nchw,c->nhw", x, weights).unsqueeze(1)
    return from_nchw(gray, unbatched, channels_last)


@keras_op("image.extract_patches")
def extract_patches(images: Any, size: Any, strides: Any = None, dilation_rate: Any = 1,
                    padding: str = "valid", data_format: str | None = None) -> torch.Tensor:
    """Patches of ``size = (ph, pw)`` as ``(batch, rows, cols, ph * pw * channels)``, each patch
    flattened row by row with channels last (TensorFlow's ``extract_patches`` order).

    Raises:
        ValueError: for a padding other than ``"valid"``/``"same"``.
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"extract_patches: padding must be 'valid' or 'same'; received "
                         f"{padding!r}")
    x, unbatched, channels_last = to_nchw(ranked_images("extract_patches", as_float(images)),
                                          data_format)
    window = (size, size) if isinstance(size, int) else tuple(size)
    strides = window if strides is None else (
        (strides, strides) if isinstance(strides, int) else tuple(strides))
    dilation = (dilation_rate,) * 2 if isinstance(dilation_rate, int) else tuple(dilation_rate)
    if padding == "same":
        x = F.pad(x, same_padding(tuple(x.shape[2:]), window, strides, dilation))
    n, c, h, w = x.shape
    cols = F.unfold(x, window, dilation=dilation, stride=strides)  # (n, c * ph * pw, L)
    rows_out = (h - (window[0] - 1) * dilation[0] - 1) // strides[0] + 1
    cols_out = (w - (window[1] - 1) * dilation[1] - 1) // strides[1] + 1
    patches = cols.reshape(n, c, window[0], window[1], rows_out, cols_out)
    patches = patches.permute(0, 4, 5, 2, 3, 1).reshape(n, rows_out, cols_out, -1)
    if not channels_last:
        patches = patches.permute(0, 3, 1, 2)
    return patches[0] if unbatched else patches


def __getattr__(name: str) -> Any:
    raise unsupported("keras.ops.image", name)
