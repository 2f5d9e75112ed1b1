"""BatchNormalization and LayerNormalization with Keras 3 semantics.

BatchNormalization, Keras conventions:
- ``momentum`` weighs the *old* statistics: ``moving = moving * momentum + batch * (1 - momentum)``
  (PyTorch's ``momentum`` is ``1 - momentum``);
- the moving variance tracks the *biased* batch variance (mean of squared deviations);
- weights in Keras order: gamma, beta (trainable), moving_mean, moving_variance (buffers);
- a frozen layer (``trainable=False``) always runs in inference mode, as in Keras 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import initializers, regularizers
from bigmodel.keras.layers import channel_specs
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import reject_constraints, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["BatchNormalization", "LayerNormalization"]


def _check_epsilon(layer: Layer, epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): `epsilon` must be a "
                          f"non-negative number. Received: epsilon={epsilon!r}")
    return float(epsilon)


class BatchNormalization(Layer):
    """Normalizes each feature of ``axis`` with batch statistics in training, moving ones otherwise.

    Args:
        axis: the feature axis (default -1, the channels of channels-last images).
        momentum: Keras convention (see module docstring), default 0.99.
        epsilon: added to the variance, default 1e-3.
        center / scale: learn ``beta`` / ``gamma``.
    """

    channel_spec = channel_specs.BATCH_NORMALIZATION  # bigmodel.compress's pruning protocol

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, synchronized: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ConfigError(f"Layer '{self.name}' (BatchNormalization): `axis` must be an "
                              f"integer. Received: axis={axis!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
                0.0 <= momentum <= 1.0):
            raise ConfigError(f"Layer '{self.name}' (BatchNormalization): `momentum` must be in "
                              f"[0, 1]. Received: momentum={momentum!r}")
        if synchronized:
            raise ConfigError(f"Layer '{self.name}' (BatchNormalization): synchronized=True is "
                              "not supported (the engine owns distribution)")
        reject_constraints(self, beta_constraint=beta_constraint,
                           gamma_constraint=gamma_constraint)
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(self, epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = resolve(self, "beta_initializer", beta_initializer)
        self.gamma_initializer = resolve(self, "gamma_initializer", gamma_initializer)
        self.moving_mean_initializer = resolve(self, "moving_mean_initializer",
                                               moving_mean_initializer)
        self.moving_variance_initializer = resolve(self, "moving_variance_initializer",
                                                   moving_variance_initializer)
        self.beta_regularizer = resolve(self, "beta_regularizer", beta_regularizer)
        self.gamma_regularizer = resolve(self, "gamma_regularizer", gamma_regularizer)
        self.register_parameter("gamma", None)
        self.register_parameter("beta", None)

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ShapeError(f"Layer '{self.name}' (BatchNormalization): axis={self.axis} is not a "
                             f"feature axis of inputs of shape {tuple(input_shape)}")
        self._axis = self.axis % rank
        dim = input_shape[self._axis]
        if dim is None:
            raise ShapeError(f"Layer '{self.name}' (BatchNormalization): axis {self.axis} of "
                             f"input tensor should have a defined dimension but the layer "
                             f"received an input with shape {tuple(input_shape)}")
        if self.scale:
            self.add_weight("gamma", (dim,), self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            self.add_weight("beta", (dim,), self.beta_initializer, self.beta_regularizer)
        self.add_buffer("moving_mean", self.moving_mean_initializer((dim,)))
        self.add_buffer("moving_variance", self.moving_variance_initializer((dim,)))
        self.input_ndim = rank
        self.input_axes = {self._axis: dim}
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        # F.batch_norm wants the features on axis 1; for NHWC images this is the channels_last
        # NCHW view (no copy).
        x = inputs if self._axis == 1 else inputs.movedim(self._axis, 1)
        if x.dtype != self.moving_mean.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.moving_mean.dtype)
        use_batch_stats = training and self.trainable
        if not use_batch_stats:
            out = F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                               False, 0.0, self.epsilon)
        else:
            count = x.numel() // x.shape[1]
            if count > 1:
                # momentum=1 makes torch return this batch's mean and unbiased variance in the
                # scratch buffers; the Keras update uses the biased variance.
                batch_mean = torch.zeros_like(self.moving_mean)
                batch_var = torch.zeros_like(self.moving_variance)
                out = F.batch_norm(x, batch_mean, batch_var, self.gamma, self.beta, True, 1.0,
                                   self.epsilon)
                batch_var = batch_var * ((count - 1) / count)  # not in place: autograd may keep it
            else:  # a single value per feature: variance 0 (torch refuses this case)
                dims = [d for d in range(x.dim()) if d != 1]
                batch_var, batch_mean = torch.var_mean(x, dim=dims, correction=0)
                shape = [1, -1] + [1] * (x.dim() - 2)
                out = (x - batch_mean.view(shape)) * torch.rsqrt(batch_var.view(shape)
                                                                 + self.epsilon)
                if self.gamma is not None:
                    out = out * self.gamma.view(shape)
                if self.beta is not None:
                    out = out + self.beta.view(shape)
                batch_mean, batch_var = batch_mean.detach(), batch_var.detach()
            with torch.no_grad():
                weight = 1.0 - self.momentum
                self.moving_mean.lerp_(batch_mean.to(self.moving_mean.dtype), weight)
                self.moving_variance.lerp_(batch_var.to(self.moving_variance.dtype), weight)
        return out if self._axis == 1 else out.movedim(1, self._axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None, "synchronized": False}


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` (int or list of ints, default the last axis).

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with the biased variance; with
    ``rms_scaling=True``: ``y = x / sqrt(mean(x**2) + epsilon) * gamma`` (no beta).
    """

    supports_masking = True  # per-sample normalization: a timestep mask passes through (Keras)

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, rms_scaling: bool = False, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis_list = list(axis)
        elif isinstance(axis, int) and not isinstance(axis, bool):
            axis_list = [axis]
        else:
            axis_list = []
        if not axis_list or not all(isinstance(a, int) and not isinstance(a, bool)
                                    for a in axis_list):
            raise ConfigError(f"Layer '{self.name}' (LayerNormalization): expected an int or a "
                              f"list/tuple of ints for the argument 'axis', but received: {axis!r}")
        reject_constraints(self, beta_constraint=beta_constraint,
                           gamma_constraint=gamma_constraint)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = _check_epsilon(self, epsilon)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        self.beta_initializer = resolve(self, "beta_initializer", beta_initializer)
        self.gamma_initializer = resolve(self, "gamma_initializer", gamma_initializer)
        self.beta_regularizer = resolve(self, "beta_regularizer", beta_regularizer)
        self.gamma_regularizer = resolve(self, "gamma_regularizer", gamma_regularizer)
        self.register_parameter("gamma", None)
        self.register_parameter("beta", None)

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        raw = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -rank <= a < rank for a in raw):
            raise ShapeError(f"Layer '{self.name}' (LayerNormalization): axis {self.axis} is out "
                             f"of bounds for input shape {tuple(input_shape)}")
        self._axes = sorted(a % rank for a in raw)
        if 0 in self._axes and rank > 1:
            raise ShapeError(f"Layer '{self.name}' (LayerNormalization): cannot normalize over "
                             f"the batch axis; received axis={self.axis}")
        shape = tuple(input_shape[a] for a in self._axes)
        if None in shape:
            raise ShapeError(f"Layer '{self.name}' (LayerNormalization): the normalized axes "
                             f"{self.axis} must have known sizes; input shape "
                             f"{tuple(input_shape)}")
        if self.scale or self.rms_scaling:
            self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer)
        if self.center and not self.rms_scaling:
            self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer)
        self._trailing = self._axes == list(range(rank - len(self._axes), rank))
        self._broadcast = [input_shape[i] if i in self._axes else 1 for i in range(rank)]
        self._broadcast[0] = 1
        self.input_ndim = rank
        self.input_axes = {a: s for a, s in zip(self._axes, shape)}
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs
        if not x.is_floating_point():
            x = x.float()
        if self.rms_scaling:
            ms = x.square().mean(dim=self._axes, keepdim=True)
            out = x * torch.rsqrt(ms + self.epsilon)
            return out * self._shaped(self.gamma)
        if self._trailing:
            return F.layer_norm(x, x.shape[self._axes[0]:], self.gamma, self.beta, self.epsilon)
        var, mean = torch.var_mean(x, dim=self._axes, keepdim=True, correction=0)
        out = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            out = out * self._shaped(self.gamma)
        if self.beta is not None:
            out = out + self._shaped(self.beta)
        return out

    def _shaped(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.reshape(self._broadcast)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}
