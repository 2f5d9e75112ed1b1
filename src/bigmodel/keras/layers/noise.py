"""Regularization layers active in training only: SpatialDropout1D/2D, GaussianNoise,
GaussianDropout; and ActivityRegularization (adds an activity penalty, passes values through)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from bigmodel.errors import ConfigError
from bigmodel.keras import regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.convolution import normalize_data_format
from bigmodel.keras.layers.core import Dropout
from bigmodel.nn.augment import SeededGenerators

__all__ = ["ActivityRegularization", "GaussianDropout", "GaussianNoise", "SpatialDropout1D",
           "SpatialDropout2D"]


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


class SpatialDropout2D(Dropout):
    """Drops whole feature maps of images: one mask per sample and channel."""

    input_ndim = 4

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = normalize_data_format(data_format, self)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        self.noise_shape = ((None, 1, 1, None) if self.data_format == "channels_last"
                            else (None, None, 1, 1))
        return super().call(inputs, training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("noise_shape")
        return {**config, "data_format": self.data_format}


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
