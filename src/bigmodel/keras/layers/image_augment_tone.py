"""Keras 3's deterministic tone layers: AutoContrast, Equalization and
ContrastLimitedAdaptiveHistogramEqualization (CLAHE).

As in Keras 3.15, ``AutoContrast`` and ``ContrastLimitedAdaptiveHistogramEqualization`` act at
inference too (they are preprocessing, not augmentation); ``Equalization`` acts only in training.
Histograms are taken on a 0-255 scale (``value_range`` is mapped there and back).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.keras.layers.image_augment_base import (
    BaseImageAugmentation,
    is_number,
    to_value_range,
)

__all__ = ["AutoContrast", "ContrastLimitedAdaptiveHistogramEqualization", "Equalization"]


class AutoContrast(BaseImageAugmentation):
    """Stretches each image channel so its darkest pixel maps to ``value_range[0]`` and its
    brightest to ``value_range[1]`` (a constant channel is left unchanged)."""

    def __init__(self, value_range: Any = (0, 255), **kwargs: Any):
        super().__init__(**kwargs)
        self.value_range = self._value_range(value_range)

    def transform_images(self, images: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        return super().transform_images(images, transformation, training=True)

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        original = images
        images = to_value_range(images, self.value_range, (0, 255))
        low = images.amin(dim=(1, 2), keepdim=True)
        high = images.amax(dim=(1, 2), keepdim=True)
        scale = 255.0 / (high - low)
        results = (images * scale - low * scale).clip(0.0, 255.0)
        results = to_value_range(results, (0, 255), self.value_range)
        return torch.where(torch.isnan(results), original, results)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range}


class Equalization(BaseImageAugmentation):
    """Histogram equalization of each channel of each image with ``bins`` bins (Keras's lookup
    table: the rounded normalized cumulative histogram)."""

    def __init__(self, value_range: Any = (0, 255), bins: int = 256,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            self._fail(f"`bins` must be an integer >= 2. Received: bins={bins!r}")
        self.bins = bins
        self.value_range = self._value_range(value_range)

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        channels = [self._equalize(images[..., c]) for c in range(images.shape[-1])]
        return torch.stack(channels, dim=-1)

    def _equalize(self, channel: torch.Tensor) -> torch.Tensor:
        """One channel of the whole batch: Keras equalizes with one histogram over the batch."""
        scaled = tuple(self.value_range) != (0, 255)
        if scaled:
            channel = to_value_range(channel, self.value_range, (0, 255))
        indices = (channel.float() * (self.bins - 1) / 255.0).to(torch.int32)
        hist = torch.bincount(indices.clamp(0, self.bins - 1).reshape(-1).long(),
                              minlength=self.bins)
        if int(torch.count_nonzero(hist)) <= 1:
            equalized = channel
        else:
            cdf = torch.cumsum(hist, dim=0)
            cdf_min = cdf[torch.nonzero(cdf)[0, 0]]
            denominator = cdf[-1] - cdf_min
            denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
            table = torch.round((cdf - cdf_min) * 255 / denominator).clip(0, 255)
            index = (channel / 255.0 * (self.bins - 1)).clip(0, self.bins - 1).to(torch.int64)
            equalized = table[index].to(channel.dtype)
        if scaled:
            equalized = to_value_range(equalized, (0, 255), self.value_range)
        return equalized

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bins": self.bins, "value_range": self.value_range}


class ContrastLimitedAdaptiveHistogramEqualization(BaseImageAugmentation):
    """CLAHE: histogram equalization per tile of a ``tile_grid_size`` grid, each tile's histogram
    clipped at ``clip_limit`` times its mean bin height (the excess spread evenly), tile lookups
    blended bilinearly between tile centres."""

    def __init__(self, value_range: Any = (0, 255), clip_limit: float = 4.0,
                 tile_grid_size: Any = (8, 8), data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self._value_range(value_range)
        if not is_number(clip_limit):
            self._fail(f"`clip_limit` must be a number. Received: clip_limit={clip_limit!r}")
        if not isinstance(tile_grid_size, (list, tuple)) or len(tile_grid_size) != 2 or not all(
                isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in tile_grid_size):
            self._fail(f"`tile_grid_size` must be two positive integers. Received: "
                       f"tile_grid_size={tile_grid_size!r}")
        self.value_range, self.clip_limit = value_range, clip_limit
        self.tile_grid_size = tuple(tile_grid_size)

    def transform_images(self, images: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        dtype = images.dtype
        out = super().transform_images(images, transformation, training=True)
        return out.to(dtype)

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        images = to_value_range(images.float(), self.value_range, (0, 255))
        return to_value_range(self._clahe(images), (0, 255), self.value_range)

    def _clahe(self, images: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = images.shape
        grid_h, grid_w = self.tile_grid_size
        tile_h, tile_w = -(-height // grid_h), -(-width // grid_w)
        pad_h, pad_w = tile_h * grid_h - height, tile_w * grid_w - width
        # NumPy's "symmetric" padding (the edge pixel repeated, then the image mirrored).
        rows = torch.arange(height + pad_h, device=images.device)
        cols = torch.arange(width + pad_w, device=images.device)
        rows = torch.where(rows < height, rows, 2 * height - 1 - rows).clamp(0, height - 1)
        cols = torch.where(cols < width, cols, 2 * width - 1 - cols).clamp(0, width - 1)
        padded = images[:, rows][:, :, cols]
        tiles = padded.reshape(batch, grid_h, tile_h, grid_w, tile_w, channels)
        tiles = tiles.permute(0, 1, 3, 5, 2, 4).reshape(batch, grid_h, grid_w, channels, -1)
        levels = tiles.to(torch.int32).clip(0, 255).long()
        hists = F.one_hot(levels, 256).float().sum(dim=-2)  # (B, gh, gw, C, 256)
        if self.clip_limit > 0:
            # Keras 3.15 (torch) casts the limit to the histogram's integer dtype: truncated.
            limit = float(int(self.clip_limit * (tile_h * tile_w) / 256.0))
            clipped = hists.clip(0, limit)
            hists = clipped + (hists - clipped).sum(dim=-1, keepdim=True) / 256.0
        cdf = torch.cumsum(hists, dim=-1)
        cdf_min = cdf.amin(dim=-1, keepdim=True)
        denominator = float(tile_h * tile_w) - cdf_min
        denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
        cdf = ((cdf - cdf_min) * 255.0 / denominator).clip(0, 255)
        # one extra tile of edge values on every side: pixels beyond the outer tile centres
        cdf = torch.cat([cdf[:, :1], cdf, cdf[:, -1:]], dim=1)
        cdf = torch.cat([cdf[:, :, :1], cdf, cdf[:, :, -1:]], dim=2)  # (B, gh+2, gw+2, C, 256)

        def axis(size: int, tile: int, grid: int) -> tuple[torch.Tensor, ...]:
            position = (torch.arange(size, dtype=torch.float32, device=images.device)
                        - tile / 2.0) / tile + 1.0
            lower = torch.floor(position)
            weight = position - lower
            return (lower.clip(0, grid + 1).long(), (lower + 1).clip(0, grid + 1).long(), weight)

        y0, y1, wy = axis(tile_h * grid_h, tile_h, grid_h)
        x0, x1, wx = axis(tile_w * grid_w, tile_w, grid_w)
        pixels = padded.clip(0, 255).to(torch.int32).long()  # (B, Hp, Wp, C)
        b = torch.arange(batch, device=images.device).view(-1, 1, 1, 1)
        c = torch.arange(channels, device=images.device).view(1, 1, 1, -1)

        def look(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
            return cdf[b, ys.view(1, -1, 1, 1), xs.view(1, 1, -1, 1), c, pixels]

        wy, wx = wy.view(1, -1, 1, 1), wx.view(1, 1, -1, 1)
        top = look(y0, x0) * (1.0 - wx) + look(y0, x1) * wx
        bottom = look(y1, x0) * (1.0 - wx) + look(y1, x1) * wx
        result = top * (1.0 - wy) + bottom * wy
        return result[:, :height, :width, :]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range,
                "clip_limit": self.clip_limit, "tile_grid_size": self.tile_grid_size}
