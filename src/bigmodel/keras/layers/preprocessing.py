"""Preprocessing layers: Rescaling, Normalization (with ``adapt``), Resizing, CenterCrop.

Images are batched and channels-last by default. Resizing follows Keras's torch backend:
``F.interpolate`` with ``align_corners=False`` (half-pixel centres, TensorFlow's convention) and
``"nearest"`` as ``"nearest-exact"``; ``crop_to_aspect_ratio`` first takes the largest centred
window of the target's aspect ratio, ``pad_to_aspect_ratio`` first pads evenly with ``fill_value``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format
from bigmodel.keras.layers.core import check_positive_int, is_int
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["CenterCrop", "Normalization", "Rescaling", "Resizing", "resize_images"]

_EPSILON = 1e-7  # keras.backend.epsilon()
_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic"}


def _as_float_tensor(x: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return x if x.is_floating_point() else x.to(torch.float32)


class Rescaling(Layer):
    """``inputs * scale + offset`` (e.g. ``scale=1/255`` maps pixels to ``[0, 1]``)."""

    def __init__(self, scale: float | Sequence[float], offset: float | Sequence[float] = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("scale", scale), ("offset", offset)):
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
                isinstance(value, (list, tuple, np.ndarray))
                and all(isinstance(v, numbers.Real) for v in np.ravel(value)))
            if not ok:
                raise ConfigError(f"Layer '{self.name}' (Rescaling): `{name}` must be a number or "
                                  f"a list of numbers. Received: {name}={value!r}")
        self.scale = scale if isinstance(scale, numbers.Real) else np.asarray(scale).tolist()
        self.offset = offset if isinstance(offset, numbers.Real) else np.asarray(offset).tolist()

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.to(torch.float32)
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device)
        offset = torch.as_tensor(self.offset, dtype=x.dtype, device=x.device)
        return x * scale + offset

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Normalization(Layer):
    """``(inputs - mean) / max(sqrt(variance), 1e-7)`` per position of the kept ``axis``.

    Args:
        axis: axis or axes that keep their own statistics (default -1: one mean per feature);
            ``None`` means one scalar mean and variance.
        mean, variance: given statistics (then no weights); otherwise call :meth:`adapt`.
        invert: compute ``mean + inputs * sqrt(variance)`` instead (undo a normalization).

    Weights (adapt case, Keras order): ``mean``, ``variance`` (shape of the kept axes) and
    ``count`` (an int scalar Keras keeps for old files), all non-trainable.
    """

    def __init__(self, axis: int | Sequence[int] | None = -1, mean: Any = None,
                 variance: Any = None, invert: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if axis is None:
            axes: tuple[int, ...] = ()
        elif is_int(axis):
            axes = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis):
            axes = tuple(int(a) for a in axis)
        else:
            raise ConfigError(f"Layer '{self.name}' (Normalization): `axis` must be an int, a "
                              f"tuple of ints or None. Received: axis={axis!r}")
        if 0 in axes:
            raise ConfigError(f"Layer '{self.name}' (Normalization): the batch axis (0) cannot "
                              f"be kept. Received: axis={axis!r}")
        if (mean is None) != (variance is None):
            raise ConfigError(f"Layer '{self.name}' (Normalization): when setting values "
                              f"directly, both `mean` and `variance` must be set. Received: "
                              f"mean={mean!r} and variance={variance!r}")
        self.axis = axes
        self.input_mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.input_variance = None if variance is None else np.asarray(variance, dtype=np.float32)
        self.invert = bool(invert)

    def build(self, input_shape: Shape) -> None:
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ShapeError(f"Layer '{self.name}' (Normalization): all `axis` values must be in "
                             f"the range [-ndim, ndim). Received inputs with ndim={ndim}, while "
                             f"axis={self.axis}")
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        unknown = [d for d in self._keep_axis if input_shape[d] is None]
        if unknown:
            raise ShapeError(f"Layer '{self.name}' (Normalization): all `axis` values to be kept "
                             f"must have a known shape. Received axis={self.axis}, inputs.shape="
                             f"{tuple(input_shape)}, with unknown axis at index {unknown[0]}")
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = [input_shape[d] if d in self._keep_axis else 1
                                 for d in range(ndim)]
        self._stats_shape = tuple(input_shape[d] for d in self._keep_axis)
        self._build_shape = tuple(input_shape)
        if self.input_mean is None:
            self.add_buffer("mean", torch.zeros(self._stats_shape))
            self.add_buffer("variance", torch.ones(self._stats_shape))
            self.add_buffer("count", torch.zeros((), dtype=torch.int64))
        else:
            mean, variance = (self._broadcast(v, name) for v, name in
                              ((self.input_mean, "mean"), (self.input_variance, "variance")))
            # Constants, not weights (Keras lists no weights in this case).
            self.register_buffer("_mean_constant", mean, persistent=False)
            self.register_buffer("_variance_constant", variance, persistent=False)
        # axis=None keeps one scalar mean/variance, which broadcasts to any rank: Keras then
        # takes inputs of another rank than the adapt() data ((N,) adapted, (batch, 1) called).
        self.input_ndim = ndim if self._keep_axis else None
        self.input_axes = {d: input_shape[d] for d in self._keep_axis}
        super().build(input_shape)

    def _broadcast(self, value: np.ndarray, name: str) -> torch.Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float32)
        expanded = [1] * len(self._broadcast_shape)
        for i in range(1, tensor.dim() + 1):  # align the statistics' axes with the kept axes
            if i > len(self._keep_axis):
                raise ShapeError(f"Layer '{self.name}' (Normalization): `{name}` of shape "
                                 f"{tuple(tensor.shape)} has more axes than axis={self.axis}")
            expanded[self._keep_axis[-i]] = tensor.shape[-i]
        try:
            return tensor.reshape(expanded).expand(self._broadcast_shape).clone()
        except RuntimeError:
            raise ShapeError(f"Layer '{self.name}' (Normalization): `{name}` of shape "
                             f"{tuple(tensor.shape)} does not broadcast to the kept axes "
                             f"{self._stats_shape}") from None

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_mean is not None:
            return self._mean_constant, self._variance_constant
        return (self.mean.reshape(self._broadcast_shape),
                self.variance.reshape(self._broadcast_shape))

    def adapt(self, data: Any) -> None:
        """Set ``mean`` and ``variance`` from ``data``: an array or tensor (all of it), or an
        iterable of batches (arrays, or ``(x, y)`` tuples whose ``x`` is used).

        Raises:
            ConfigError: the layer was given ``mean``/``variance``.
            ShapeError: data whose kept axes differ from the layer's.
            DataError: an empty iterable.
        """
        if self.input_mean is not None:
            raise ConfigError(f"Layer '{self.name}' (Normalization): adapt() cannot be used on a "
                              "layer built with explicit `mean` and `variance`")
        if isinstance(data, (np.ndarray, torch.Tensor)) or (
                isinstance(data, (list, tuple)) and data and isinstance(data[0], numbers.Real)):
            batches: Iterable[Any] = [data]
        elif hasattr(data, "__iter__"):
            batches = data
        else:
            raise DataError(f"Layer '{self.name}' (Normalization): adapt() expects an array, a "
                            f"tensor or an iterable of batches; received {type(data).__name__}")
        total_mean = total_var = None
        total_count = 0
        for batch in batches:
            if isinstance(batch, (tuple, list)) and batch and not isinstance(batch[0],
                                                                             numbers.Real):
                batch = batch[0]
            x = _as_float_tensor(batch).detach().to(torch.float64).cpu()
            if not self.built:
                self._maybe_build((None, *x.shape[1:]))
            for d in self._keep_axis:
                if x.dim() != len(self._build_shape) or x.shape[d] != self._build_shape[d]:
                    raise ShapeError(f"Layer '{self.name}' (Normalization): the layer was built "
                                     f"with input_shape={self._build_shape}, but adapt() is being "
                                     f"called with data of incompatible shape {tuple(x.shape)}")
            reduce = self._reduce_axis
            mean = x.mean(dim=reduce) if reduce else x
            var = x.var(dim=reduce, unbiased=False) if reduce else torch.zeros_like(x)
            count = math.prod(x.shape[d] for d in reduce) if reduce else 1
            if total_mean is None:
                total_mean, total_var, total_count = mean, var, count
                continue
            # Combine with the running statistics (the lack-of-fit formula Keras uses).
            total_count += count
            weight = count / total_count
            new_mean = total_mean * (1 - weight) + mean * weight
            total_var = ((total_var + (total_mean - new_mean) ** 2) * (1 - weight)
                         + (var + (mean - new_mean) ** 2) * weight)
            total_mean = new_mean
        if total_mean is None:
            raise DataError(f"Layer '{self.name}' (Normalization): adapt() received no data")
        with torch.no_grad():
            self.mean.copy_(total_mean.reshape(self._stats_shape).to(self.mean))
            self.variance.copy_(total_var.reshape(self._stats_shape).to(self.variance))

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.to(torch.float32)
        mean, variance = self._statistics()
        std = torch.clamp(torch.sqrt(variance), min=_EPSILON)
        return mean + x * std if self.invert else (x - mean) / std

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": None if self.input_mean is None else self.input_mean.tolist(),
                "variance": None if self.input_variance is None
                else self.input_variance.tolist()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Normalization:
        config = dict(config)
        if isinstance(config.get("axis"), list):
            config["axis"] = tuple(config["axis"])
        return cls(**config)


def resize_images(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear",
                  antialias: bool = False, crop_to_aspect_ratio: bool = False,
                  pad_to_aspect_ratio: bool = False, fill_value: float = 0.0) -> torch.Tensor:
    """Resize an NCHW batch to ``size`` the way Keras's torch backend does."""
    height, width = x.shape[-2:]
    target_h, target_w = size
    if crop_to_aspect_ratio:
        crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
        crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
        top, left = int(float(height - crop_h) / 2), int(float(width - crop_w) / 2)
        x = x[:, :, top:top + crop_h, left:left + crop_w]
    elif pad_to_aspect_ratio:
        pad_h = max(height, int(float(width * target_h) / target_w))
        pad_w = max(width, int(float(height * target_w) / target_h))
        top, left = int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)
        x = F.pad(x, (left, left, top, top), value=fill_value)
    mode = _MODES[interpolation]
    return F.interpolate(x, size=tuple(size), mode=mode,
                         align_corners=False if mode in ("bilinear", "bicubic") else None,
                         antialias=antialias and mode in ("bilinear", "bicubic"))


class _ImageSize(Layer):
    """A layer with a target ``height`` and ``width`` for batched images."""

    input_ndim = 4

    def __init__(self, height: int, width: int, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.height = check_positive_int(self, "height", height)
        self.width = check_positive_int(self, "width", width)
        self.data_format = normalize_data_format(data_format, self)

    def _nchw(self, x: torch.Tensor) -> torch.Tensor:
        x = x if x.is_floating_point() else x.to(torch.float32)
        return x.permute(0, 3, 1, 2) if self.data_format == "channels_last" else x

    def _back(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1) if self.data_format == "channels_last" else x

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        shape[axes[0]], shape[axes[1]] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "data_format": self.data_format}


class Resizing(_ImageSize):
    """Resizes images to ``(height, width)``; see the module docstring for the conventions."""

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                 fill_mode: str = "constant", fill_value: float = 0.0, antialias: bool = False,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(height, width, data_format, **kwargs)
        if interpolation not in _MODES:
            raise ConfigError(f"Layer '{self.name}' (Resizing): `interpolation` must be one of "
                              f"{sorted(_MODES)}. Received: interpolation={interpolation!r}")
        if fill_mode != "constant":
            raise ConfigError(f"Layer '{self.name}' (Resizing): only fill_mode='constant' is "
                              f"supported. Received: fill_mode={fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ConfigError(f"Layer '{self.name}' (Resizing): only one of "
                              "`pad_to_aspect_ratio` and `crop_to_aspect_ratio` can be True")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.antialias = bool(antialias)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return self._back(resize_images(
            self._nchw(inputs), (self.height, self.width), self.interpolation, self.antialias,
            self.crop_to_aspect_ratio, self.pad_to_aspect_ratio, self.fill_value))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_ImageSize):
    """The central ``(height, width)`` window; an image smaller than that on either side is
    instead resized as Keras's ``smart_resize`` does (largest centred window of the target's
    aspect ratio, then bilinear resizing)."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = self._nchw(inputs)
        h_diff, w_diff = x.shape[2] - self.height, x.shape[3] - self.width
        if h_diff >= 0 and w_diff >= 0:
            top, left = h_diff // 2, w_diff // 2
            return self._back(x[:, :, top:top + self.height, left:left + self.width])
        return self._back(resize_images(x, (self.height, self.width), "bilinear",
                                        crop_to_aspect_ratio=True))
