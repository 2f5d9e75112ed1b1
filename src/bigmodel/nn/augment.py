"""Batch-wise random image augmentation as plain ``nn.Module``s (NCHW tensors).

Each module draws one random transformation per sample, applies all of them at once (flips by
``torch.where``, geometric transforms by one ``affine_grid`` + ``grid_sample``, erasing by a
broadcast mask; no per-sample Python loop) and acts only in training mode: in ``eval()`` mode
``forward`` returns its input unchanged. ``transform(x)`` applies the augmentation regardless of the
mode. Inputs are ``(N, C, H, W)`` (or one ``(C, H, W)`` image); the output has the same shape.

Conventions follow the Keras preprocessing layers: factors are fractions (of the image size, or of a
full turn for rotation), a single number ``f`` means the range ``(-f, f)``, positive rotation is
counter-clockwise, positive translation moves the content right/down, positive zoom zooms out.
``fill_mode`` is one of ``"reflect"`` (d c b a | a b c d | d c b a), ``"wrap"``, ``"nearest"``,
``"constant"`` (``fill_value``).

With ``seed`` set, a module owns a ``torch.Generator`` per device, so two modules built with the
same seed produce the same sequence of augmentations; without it, the global torch RNG is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError

__all__ = [
    "FILL_MODES", "INTERPOLATIONS", "RandomErasing", "RandomFlip", "RandomRotation",
    "RandomTranslation", "RandomZoom", "SeededGenerators", "affine_transform",
]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


class SeededGenerators:
    """One ``torch.Generator`` per device, all seeded with ``seed``; ``get`` returns ``None``
    (the global RNG) when ``seed`` is ``None``."""

    def __init__(self, seed: int | None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = seed
        self._by_device: dict[str, torch.Generator] = {}

    def get(self, device: torch.device | str) -> torch.Generator | None:
        if self.seed is None:
            return None
        device = torch.device(device)
        key = str(device)
        if key not in self._by_device:
            self._by_device[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._by_device[key]


def _uniform(n: int, low: float, high: float, like: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    """``n`` samples of U(low, high) in float32 on ``like``'s device."""
    u = torch.rand(n, device=like.device, generator=generator)
    return low + (high - low) * u


def affine_transform(x: torch.Tensor, theta: torch.Tensor, interpolation: str = "bilinear",
                     fill_mode: str = "reflect", fill_value: float = 0.0) -> torch.Tensor:
    """Resample each image of ``x`` (N, C, H, W) at ``theta`` (N, 2, 3) applied to output positions.

    ``theta`` is in ``affine_grid`` coordinates (``align_corners=False``: -1 and 1 are the outer pixel
    edges), mapping each output position to the input position it reads.
    """
    n, c, h, w = x.shape
    grid = F.affine_grid(theta.to(x.dtype), [n, c, h, w], align_corners=False)
    if fill_mode == "reflect":
        return F.grid_sample(x, grid, mode=interpolation, padding_mode="reflection",
                             align_corners=False)
    if fill_mode == "nearest":
        return F.grid_sample(x, grid, mode=interpolation, padding_mode="border",
                             align_corners=False)
    if fill_mode == "constant":
        out = F.grid_sample(x - fill_value, grid, mode=interpolation, padding_mode="zeros",
                            align_corners=False)
        return out + fill_value if fill_value else out
    # wrap: take positions modulo the image, then read a 1-pixel circularly padded copy so that
    # bilinear interpolation across the seam blends the last and the first pixel.
    size = torch.tensor([w, h], dtype=grid.dtype, device=grid.device)
    pixels = torch.remainder((grid + 1) * size / 2 - 0.5, size)  # in [0, size)
    grid = (2 * (pixels + 1.5)) / (size + 2) - 1
    padded = F.pad(x, (1, 1, 1, 1), mode="circular")
    return F.grid_sample(padded, grid, mode=interpolation, padding_mode="border",
                         align_corners=False)


def _factor_range(factor: Any, name: str, low: float = -1.0, high: float = 1.0) -> tuple[float, float]:
    """Keras factor convention: ``f`` -> ``(-|f|, |f|)``; a pair -> sorted pair; within [low, high]."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the range "
               f"[{low}, {high}]. Received: {name}={factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                       for f in factor):
            raise ConfigError(message)
        lower, upper = sorted(float(f) for f in factor)
    elif isinstance(factor, (int, float)) and not isinstance(factor, bool):
        lower, upper = -abs(float(factor)), abs(float(factor))
    else:
        raise ConfigError(message)
    if lower < low or upper > high:
        raise ConfigError(message)
    return lower, upper


def _check_modes(fill_mode: str, interpolation: str) -> None:
    if fill_mode not in FILL_MODES:
        raise ConfigError(f"Unknown `fill_mode` {fill_mode!r}. Expected one of {FILL_MODES}.")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"Unknown `interpolation` {interpolation!r}. Expected one of "
                          f"{INTERPOLATIONS}.")


class Augmentation(nn.Module):
    """Shared plumbing: training-mode gate, 3-D inputs, float conversion, the generators."""

    needs_float = True

    def __init__(self, seed: int | None = None):
        super().__init__()
        self.seed = seed
        self.generators = SeededGenerators(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return self.transform(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` (N, C, H, W) or (C, H, W), whatever the module's mode."""
        if x.dim() not in (3, 4):
            raise ShapeError(f"{type(self).__name__} expects images of shape (N, C, H, W) or "
                             f"(C, H, W); received shape {tuple(x.shape)}")
        if x.dim() == 3:
            return self.transform(x.unsqueeze(0)).squeeze(0)
        if self.needs_float and not x.is_floating_point():
            x = x.float()
        if x.shape[0] == 0:
            return x
        return self._augment(x, self.generators.get(x.device))

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover


class RandomFlip(Augmentation):
    """Flips each image left-right and/or top-bottom, each with probability 1/2.

    Args:
        mode: ``"horizontal"`` (reverse the width axis), ``"vertical"`` (reverse the height axis)
            or ``"horizontal_and_vertical"`` (two independent draws).
    """

    needs_float = False
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None):
        super().__init__(seed)
        if mode not in self.MODES:
            raise ConfigError(f"RandomFlip layer {mode!r} is not a valid flip mode. Expected one "
                              f"of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            flip = torch.rand(n, device=x.device, generator=generator) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            flip = torch.rand(n, device=x.device, generator=generator) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(2), x)
        return x

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, seed={self.seed}"


class _Geometric(Augmentation):
    def __init__(self, fill_mode: str, interpolation: str, fill_value: float,
                 seed: int | None):
        super().__init__(seed)
        _check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)

    def _theta(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        theta = self._theta(x, generator)
        return affine_transform(x, theta, self.interpolation, self.fill_mode, self.fill_value)


class RandomTranslation(_Geometric):
    """Shifts each image by a random fraction of its height and width.

    Args:
        height_factor: fraction of the height, ``f`` or ``(lower, upper)`` in [-1, 1]; negative
            moves the content up.
        width_factor: the same for the width; negative moves the content left.
    """

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0):
        super().__init__(fill_mode, interpolation, fill_value, seed)
        self.height_range = _factor_range(height_factor, "height_factor")
        self.width_range = _factor_range(width_factor, "width_factor")

    def _theta(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        dy = _uniform(n, *self.height_range, x, generator)
        dx = _uniform(n, *self.width_range, x, generator)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
        # A shift by a fraction f of the size is 2f in [-1, 1] coordinates; output reads input - shift.
        theta[:, 0, 2] = -2.0 * dx
        theta[:, 1, 2] = -2.0 * dy
        return theta


class RandomRotation(_Geometric):
    """Rotates each image about its centre by a random fraction of a full turn.

    Args:
        factor: ``f`` or ``(lower, upper)`` in [-1, 1], a fraction of 360 degrees; positive is
            counter-clockwise.
    """

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0):
        super().__init__(fill_mode, interpolation, fill_value, seed)
        self.factor_range = _factor_range(factor, "factor")

    def _theta(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = x.shape
        angle = _uniform(n, *self.factor_range, x, generator) * (2 * math.pi)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3, device=x.device)
        # In pixel units (y down) a counter-clockwise turn reads input at
        # (cos*x - sin*y, sin*x + cos*y); the grid's x and y are scaled by 2/W and 2/H.
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * (h / w)
        theta[:, 1, 0] = sin * (w / h)
        theta[:, 1, 1] = cos
        return theta


class RandomZoom(_Geometric):
    """Zooms each image about its centre by ``1 + factor`` (positive zooms out, negative in).

    Args:
        height_factor: ``f`` or ``(lower, upper)`` in [-1, 1] for the vertical zoom.
        width_factor: the same horizontally; ``None`` reuses the vertical zoom (keeps the aspect).
    """

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0):
        super().__init__(fill_mode, interpolation, fill_value, seed)
        self.height_range = _factor_range(height_factor, "height_factor")
        self.width_range = (None if width_factor is None
                            else _factor_range(width_factor, "width_factor"))

    def _theta(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        zoom_h = 1.0 + _uniform(n, *self.height_range, x, generator)
        zoom_w = zoom_h if self.width_range is None else (
            1.0 + _uniform(n, *self.width_range, x, generator))
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = zoom_w
        theta[:, 1, 1] = zoom_h
        return theta


class RandomErasing(Augmentation):
    """Random Erasing (Zhong et al., 2017): with probability ``probability`` a rectangle of each
    image is replaced by ``value``.

    The rectangle covers a fraction of the image drawn from ``scale`` with aspect ratio (h / w)
    drawn log-uniformly from ``ratio``; as in the paper, a rectangle that does not fit is redrawn
    (up to 10 draws, all made at once; an image with no fitting draw is left unchanged).

    Args:
        probability: chance that an image is erased, in [0, 1].
        scale: ``(min, max)`` fraction of the image area, ``0 < min <= max <= 1``.
        ratio: ``(min, max)`` aspect ratio, ``0 < min <= max``.
        value: fill value: a number, one number per channel, or ``"random"`` (standard normal
            noise per pixel).
    """

    _ATTEMPTS = 10

    def __init__(self, probability: float = 0.5, scale: Sequence[float] = (0.02, 0.33),
                 ratio: Sequence[float] = (0.3, 3.3), value: Any = 0.0,
                 seed: int | None = None):
        super().__init__(seed)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not (
                0.0 <= probability <= 1.0):
            raise ConfigError("RandomErasing: `probability` must be a number in [0, 1]. "
                              f"Received: probability={probability!r}")
        scale, ratio = tuple(scale), tuple(ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ConfigError("RandomErasing: `scale` must be (min, max) with "
                              f"0 < min <= max <= 1. Received: scale={scale!r}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ConfigError("RandomErasing: `ratio` must be (min, max) with 0 < min <= max. "
                              f"Received: ratio={ratio!r}")
        if isinstance(value, str):
            if value != "random":
                raise ConfigError("RandomErasing: `value` must be a number, a sequence of "
                                  f"numbers or 'random'. Received: value={value!r}")
        elif isinstance(value, (list, tuple)):
            value = tuple(float(v) for v in value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        else:
            raise ConfigError("RandomErasing: `value` must be a number, a sequence of numbers or "
                              f"'random'. Received: value={value!r}")
        self.probability = float(probability)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.value = value

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self._ATTEMPTS
        device = x.device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, device=device, generator=generator)

        apply = rand(n) < self.probability
        area = (h * w) * (self.scale[0] + (self.scale[1] - self.scale[0]) * rand(n, k))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * rand(n, k))
        eh = torch.round(torch.sqrt(area * aspect))
        ew = torch.round(torch.sqrt(area / aspect))
        fits = (eh >= 1) & (ew >= 1) & (eh <= h) & (ew <= w)
        # First fitting draw of each sample (argmax of a boolean finds the first True).
        first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
        apply = apply & fits.any(dim=1)
        eh = eh.gather(1, first).squeeze(1)
        ew = ew.gather(1, first).squeeze(1)
        top = torch.floor(rand(n) * (h - eh + 1).clamp(min=1))
        left = torch.floor(rand(n) * (w - ew + 1).clamp(min=1))
        rows = torch.arange(h, device=device, dtype=top.dtype)
        cols = torch.arange(w, device=device, dtype=left.dtype)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
        mask = (apply[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
        if self.value == "random":
            fill = torch.randn(x.shape, device=device, generator=generator).to(x.dtype)
        elif isinstance(self.value, tuple):
            if len(self.value) != c:
                raise ShapeError(f"RandomErasing: value has {len(self.value)} entries but the "
                                 f"images have {c} channels")
            fill = torch.tensor(self.value, dtype=x.dtype, device=device).view(1, c, 1, 1)
        else:
            fill = torch.tensor(self.value, dtype=x.dtype, device=device)
        return torch.where(mask, fill, x)

    def extra_repr(self) -> str:
        return (f"probability={self.probability}, scale={self.scale}, ratio={self.ratio}, "
                f"value={self.value!r}, seed={self.seed}")
