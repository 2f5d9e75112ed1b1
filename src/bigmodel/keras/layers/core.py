"""Core Keras layers: InputLayer, Dense, Flatten, Reshape, Dropout, Activation.

Layers that take an ``activation`` argument (here Dense and Activation; Conv2D too) compute
``z = <affine part>`` and return ``self.activation(z)``. They also answer
``call_logits(inputs, training=None)`` (or ``layer(inputs, logits=True)``), which returns ``z``:
a Model whose last layer has a softmax (``activations.is_softmax(layer.activation)``) asks it for
``z`` and computes the cross-entropy as ``log_softmax(z)``, which stays finite where
``log(softmax(z))`` would not.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers import channel_specs
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn.augment import SeededGenerators

__all__ = ["Activation", "Dense", "Dropout", "Flatten", "InputLayer", "Reshape"]


# ------------------------------------------------------------------------------- shared helpers
def cast_inputs(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype of ``reference`` (a weight), unless autocast handles floating inputs.

    Keras casts inputs to the layer's compute dtype; this makes float64/int NumPy data work.
    """
    if x.dtype == reference.dtype:
        return x
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        return x
    return x.to(reference.dtype)


def reject_constraints(layer: Layer, **constraints: Any) -> None:
    """Weight constraints are not supported yet: fail loudly rather than silently ignore them."""
    given = {k: v for k, v in constraints.items() if v is not None}
    if given:
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): weight constraints are "
                          f"not supported; received {given}. Pass None.")


def resolve(layer: Layer, argument: str, value: Any) -> Any:
    """The activation / initializer / regularizer / constraint named by ``value`` for
    ``argument`` (chosen by the argument's suffix); unknown names raise with the layer's name in
    the message."""
    if argument.endswith("activation"):
        getter: Any = activations.get
    elif argument.endswith("initializer"):
        getter = initializers.get
    elif argument.endswith("constraint"):
        getter = constraints.get
    else:
        getter = regularizers.get
    try:
        return getter(value)
    except ConfigError as exc:  # UnknownNameError included: keep the class, add the layer
        raise type(exc)(f"Layer '{layer.name}' ({type(layer).__name__}), argument "
                        f"`{argument}`: {exc}") from None


def is_int(value: Any) -> bool:
    """Python or NumPy integer, not bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(layer: Layer, name: str, value: Any) -> int:
    if not is_int(value) or value <= 0:
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): invalid value for "
                          f"argument `{name}`. Expected a strictly positive integer. "
                          f"Received: {name}={value!r}")
    return int(value)


class PreActivationMixin:
    """``call_logits``: the output of a layer whose ``call`` accepts ``logits=True`` before its
    activation. The activity regularizer (if any) still sees the activated output, as in Keras."""

    def call_logits(self, inputs: Any, training: bool | None = None) -> torch.Tensor:
        logits = self(inputs, training=training, logits=True)
        if self.activity_regularizer is not None:  # type: ignore[attr-defined]
            outputs = self.activation(logits)  # type: ignore[attr-defined]
            self._activity_loss = (  # type: ignore[attr-defined]
                self.activity_regularizer(outputs) / outputs.shape[0])  # type: ignore[attr-defined]
        return logits


# ------------------------------------------------------------------------------- layers
class InputLayer(Layer):
    """The entry point of a model: declares the input shape and passes data through unchanged.

    Args:
        shape: input shape without the batch axis, e.g. ``(28, 28, 1)``.
        batch_size: optional fixed batch size.
        batch_shape: full shape with the batch axis (alternative to ``shape``).

    Later inputs must have the declared rank and the declared (non-``None``) sizes.
    """

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: Any = None, sparse: bool | None = None,
                 batch_shape: Sequence[int | None] | None = None, input_tensor: Any = None,
                 optional: bool = False, name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        # The input's dtype (e.g. "int32" token ids), not a weight dtype: kept for the config.
        self.input_dtype = str(dtype or "float32").replace("torch.", "")
        if sparse:
            raise ConfigError(f"InputLayer '{self.name}': sparse inputs are not supported")
        if input_tensor is not None:
            raise ConfigError(f"InputLayer '{self.name}': `input_tensor` is not supported")
        if shape is not None and batch_shape is not None:
            raise ConfigError(f"InputLayer '{self.name}': you cannot pass both `shape` and "
                              f"`batch_shape` at the same time. Received: shape={shape}, "
                              f"batch_shape={batch_shape}")
        if batch_shape is not None:
            full = tuple(batch_shape)
        elif shape is not None:
            if is_int(shape):
                shape = (shape,)
            full = (batch_size, *tuple(shape))
        elif self._declared_input_shape is not None:  # legacy input_shape= / batch_input_shape=
            full = self._declared_input_shape
        else:
            raise ConfigError(f"InputLayer '{self.name}': you must pass a `shape` argument "
                              "(the input shape without the batch axis)")
        for size in full:
            if size is not None and (not is_int(size) or size < 0):
                raise ConfigError(f"InputLayer '{self.name}': shape entries must be non-negative "
                                  f"integers or None. Received: batch_shape={full}")
        full = tuple(None if size is None else int(size) for size in full)
        self.batch_shape: Shape = full
        self._declared_input_shape = full
        self.optional = bool(optional)
        self.input_ndim = len(full)
        self.input_axes = {axis: size for axis, size in enumerate(full) if axis and size is not None}
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "batch_shape": list(self.batch_shape), "dtype": self.input_dtype,
                "sparse": False, "optional": self.optional}


class Dense(PreActivationMixin, Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis of an input of any rank >= 2.

    The kernel's Keras shape is ``(input_dim, units)``; it is stored as ``(units, input_dim)`` (the
    layout ``F.linear`` uses).
    """

    min_ndim = 2
    supports_masking = True  # applied per step; a timestep mask passes through (Keras)
    # The protocols of bigmodel.compress (structured pruning, quantization-aware training).
    channel_spec = channel_specs.DENSE
    quantized_weight = "kernel"

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not is_int(units) or units <= 0:
            raise ConfigError(f"Layer '{self.name}' (Dense): received an invalid value for "
                              f"`units`, expected a positive integer. Received: units={units!r}")
        self.kernel_constraint = resolve(self, "kernel_constraint", kernel_constraint)
        self.bias_constraint = resolve(self, "bias_constraint", bias_constraint)
        self.units = int(units)
        self.activation = resolve(self, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.register_parameter("bias", None)  # replaced in build() when use_bias

    def build(self, input_shape: Shape) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ShapeError(f"Layer '{self.name}' (Dense): the last dimension of the inputs "
                             f"should be defined. Found None. Full input shape received: "
                             f"{tuple(input_shape)}")
        self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                        self.kernel_regularizer, torch_perm=(1, 0),
                        constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer,
                            constraint=self.bias_constraint)
        self.input_axes = {-1: input_dim}
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False,
             logits: bool = False) -> torch.Tensor:
        z = F.linear(cast_inputs(inputs, self.kernel), self.kernel, self.bias)
        return z if logits else activations.activate_fresh(self.activation, z)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class Flatten(Layer):
    """Flattens all but the batch axis. Channels-last images flatten in Keras order (H, W, C)."""

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ConfigError(f"Layer '{self.name}' (Flatten): the `data_format` argument must be "
                              f"one of 'channels_last', 'channels_first'. Received: "
                              f"data_format={data_format!r}")
        self.data_format = data_format or "channels_last"

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if inputs.dim() == 1:
            return inputs.reshape(-1, 1)
        if self.data_format == "channels_first" and inputs.dim() > 2:
            # Keras flattens channels-first data in channels-last order (weights stay portable).
            inputs = inputs.movedim(1, -1)
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = tuple(input_shape)[1:]
        size = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], size if rest else 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes the non-batch axes to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(target_shape, int):
            target_shape = (target_shape,)
        target = tuple(target_shape)
        bad = [s for s in target if not is_int(s) or (s <= 0 and s != -1)]
        if bad or list(target).count(-1) > 1:
            raise ConfigError(f"Layer '{self.name}' (Reshape): `target_shape` must hold positive "
                              f"integers and at most one -1. Received: target_shape={target}")
        self.target_shape = tuple(int(s) for s in target)

    def _resolve(self, input_shape: Shape) -> tuple[int | None, ...]:
        rest = tuple(input_shape)[1:]
        if -1 not in self.target_shape:
            if None not in rest and math.prod(rest) != math.prod(self.target_shape):
                raise self._mismatch(input_shape)
            return self.target_shape
        if None in rest:
            return tuple(None if s == -1 else s for s in self.target_shape)
        known = math.prod(s for s in self.target_shape if s != -1)
        total = math.prod(rest)
        if known == 0 or total % known:
            raise self._mismatch(input_shape)
        return tuple(total // known if s == -1 else s for s in self.target_shape)

    def _mismatch(self, input_shape: Shape) -> ShapeError:
        return ShapeError(f"Layer '{self.name}' (Reshape): the total size of the new array must be "
                          f"unchanged, input_shape = {tuple(input_shape)[1:]}, output_shape = "
                          f"{self.target_shape}")

    def build(self, input_shape: Shape) -> None:
        self._resolve(input_shape)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        try:
            return inputs.reshape(inputs.shape[0], *self.target_shape)
        except RuntimeError:
            raise self._mismatch(tuple(inputs.shape)) from None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], *self._resolve(input_shape))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training and scales the rest by ``1/(1-rate)``.

    ``noise_shape`` (with ``None`` for "same as the input") shares the mask along size-1 axes;
    ``seed`` makes the masks reproducible (a private generator; otherwise the global torch RNG).
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"Layer '{self.name}' (Dropout): invalid value received for "
                              f"argument `rate`. Expected a float value between 0 and 1. "
                              f"Received: rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generators = SeededGenerators(seed)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:
            return torch.zeros_like(inputs)
        if self.noise_shape is None and self.seed is None:
            return F.dropout(inputs, self.rate, training=True)
        shape = tuple(inputs.shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.dim():
                raise ShapeError(f"Layer '{self.name}' (Dropout): noise_shape={self.noise_shape} "
                                 f"does not match the input rank; input shape {shape}")
            shape = tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))
        keep = 1.0 - self.rate
        mask = torch.empty(shape, dtype=inputs.dtype, device=inputs.device)
        mask.bernoulli_(keep, generator=self._generators.get(inputs.device))
        return inputs * mask / keep

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


class Activation(PreActivationMixin, Layer):
    """Applies an activation function (a name such as ``"relu"``, or a callable)."""

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = resolve(self, "activation", activation)

    def call(self, inputs: torch.Tensor, training: bool = False,
             logits: bool = False) -> torch.Tensor:
        return inputs if logits else self.activation(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}
