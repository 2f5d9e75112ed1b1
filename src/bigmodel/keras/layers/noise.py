"""Regularization layers active in training only: SpatialDropout1D/2D/3D, GaussianNoise,
GaussianDropout, AlphaDropout; and ActivityRegularization (adds an activity penalty, passes values through)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format
from bigmodel.keras.layers.core import Dropout
from bigmodel.nn.augment import SeededGenerators

__all__ = ["ActivityRegularization", "AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D",
           "SpatialDropout2D", "SpatialDropout3D"]


class SpatialDropout1D(Dropout):
    """Drops whole channels of ``(batch, steps, channels)``: one mask per sample and channel."""

    input_ndim = 3

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(rate, seed=seed, **kwargs)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        self.noise_shape = (None, 1, None)
        return super().call(inputs, training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("noise_shape")
        return config


class _SpatialDropout(Dropout):
    """Drops whole feature maps of the ``rank`` spatial axes: one mask per sample and channel."""

    rank = 2

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(rate, seed=seed, **kwargs)
        self.input_ndim = self.rank + 2
        self.data_format = normalize_data_format(data_format, self)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        ones = (1,) * self.rank
        self.noise_shape = ((None, *ones, None) if self.data_format == "channels_last"
                            else (None, None, *ones))
        return super().call(inputs, training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("noise_shape")
        config.pop("trainable")  # Keras's keys: its constructor takes no `trainable`
        return {**config, "data_format": self.data_format}


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of images: one mask per sample and channel."""


class SpatialDropout3D(_SpatialDropout):
    """Drops whole feature maps of volumes: one mask per sample and channel."""

    rank = 3


def _check_rate(layer: Layer, name: str, value: Any, upper: float | None = None) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0
            or (upper is not None and value > upper)):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): invalid value received "
                          f"for argument `{name}`. Expected a float value {bound}. "
                          f"Received: {name}={value!r}")
    return float(value)


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` (training only)."""

    supports_masking = True

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.stddev = _check_rate(self, "stddev", stddev)
        self.seed = seed
        self._generators = SeededGenerators(seed)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or self.stddev == 0:
            return inputs
        noise = torch.randn(inputs.shape, dtype=inputs.dtype, device=inputs.device,
                            generator=self._generators.get(inputs.device))
        return inputs + self.stddev * noise

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """Multiplies by Gaussian noise of mean 1 and std ``sqrt(rate / (1 - rate))`` (training)."""

    supports_masking = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = _check_rate(self, "rate", rate, upper=1)
        self.seed = seed
        self._generators = SeededGenerators(seed)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or not 0 < self.rate < 1:
            return inputs
        std = (self.rate / (1.0 - self.rate)) ** 0.5
        noise = torch.randn(inputs.shape, dtype=inputs.dtype, device=inputs.device,
                            generator=self._generators.get(inputs.device))
        return inputs * (1.0 + std * noise)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# SELU's constants: dropped units take SELU's negative saturation value -alpha * scale.
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


class AlphaDropout(Layer):
    """Dropout for SELU networks (training only): dropped units are set to ``-alpha * scale``
    (SELU's saturation) and the result is rescaled by ``a * x + b`` so that inputs of mean 0 and
    variance 1 keep them (Klambauer et al., 2017; Keras 3's formulas).

    Args:
        rate: fraction of the units dropped, in ``[0, 1)``.
        noise_shape: the mask's shape, ``None`` for "same as the input" on an axis.
        seed: makes the masks reproducible.

    Raises:
        ConfigError: ``rate`` outside ``[0, 1)``.
        ShapeError: a ``noise_shape`` of another rank than the input.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = _check_rate(self, "rate", rate, upper=1)
        if self.rate == 1.0:  # Keras divides by zero there (inf outputs)
            raise ConfigError(f"Layer '{self.name}' (AlphaDropout): rate must be below 1. "
                              f"Received: rate={rate!r}")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generators = SeededGenerators(seed)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or self.rate == 0:
            return inputs
        shape = tuple(inputs.shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.dim():
                raise ShapeError(f"Layer '{self.name}' (AlphaDropout): noise_shape="
                                 f"{self.noise_shape} does not match the input rank; input shape "
                                 f"{shape}")
            shape = tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))
        uniform = torch.rand(shape, dtype=inputs.dtype, device=inputs.device,
                             generator=self._generators.get(inputs.device))
        kept = (uniform >= self.rate).to(inputs.dtype)
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * self.rate
        return a * (inputs * kept + alpha_p * (1 - kept)) + b

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": self.noise_shape}


class ActivityRegularization(Layer):
    """Passes its input through and adds ``l1 * sum(|x|) + l2 * sum(x^2)`` to the losses."""

    supports_masking = True

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        if "activity_regularizer" in kwargs:
            raise ConfigError("ActivityRegularization sets its own activity_regularizer; pass "
                              "l1= and l2= instead")
        super().__init__(**kwargs)
        self.l1 = _check_rate(self, "l1", l1)
        self.l2 = _check_rate(self, "l2", l2)
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}
