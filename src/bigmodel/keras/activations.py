"""Activation functions by Keras 3 name.

``get(identifier)`` returns a function ``fn(tensor) -> tensor`` for a name (``"relu"``, ...),
``None``/``"linear"`` (identity) or any callable; ``serialize(fn)`` returns the name.

Stable cross-entropy from logits
--------------------------------
``softmax`` and ``sigmoid`` are marked (``is_softmax(fn)``, ``is_sigmoid(fn)``) so a Model can
detect a probability output layer and compute its loss from the pre-activation logits
(``log_softmax(z)`` instead of ``log(softmax(z))``). Every layer that takes an ``activation``
argument (Dense, Conv2D, Activation) exposes:

- ``layer.activation``: the function applied last, and
- ``layer.call_logits(inputs, training=None)``: the layer's output *before* ``activation``
  (it also accepts ``layer(inputs, logits=True)``, which skips the activation the same way).

So a Model whose last layer has ``is_softmax(last.activation)`` computes
``z = last.call_logits(h)`` and uses ``log_softmax(z, -1)`` in the loss, and ``softmax(z)`` as the
prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras.ops.nn import (  # Keras 3's activations of these names are the same functions
    celu,
    glu,
    hard_shrink,
    hard_tanh,
    log_sigmoid,
    soft_shrink,
    sparse_plus,
    sparse_sigmoid,
    sparsemax,
    squareplus,
    tanh_shrink,
    threshold,
)
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = [
    "celu", "glu", "hard_shrink", "hard_tanh", "log_sigmoid", "soft_shrink", "sparse_plus",
    "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink", "threshold", "deserialize", "elu", "exponential", "gelu", "get", "hard_sigmoid", "hard_silu", "hard_swish", "is_sigmoid",
    "activate_fresh", "is_elementwise", "is_softmax", "leaky_relu", "linear", "log_softmax", "mish", "relu", "relu6", "selu",
    "serialize", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh",
]


def relu(x: torch.Tensor, negative_slope: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> torch.Tensor:
    """``max(x, 0)``; Keras's extra arguments give a leak, a ceiling and a threshold."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return F.relu(x)
    if threshold != 0.0:
        out = torch.where(x > threshold, x, torch.zeros_like(x))
        negative = F.relu(threshold - x)
    else:
        out = F.relu(x)
        negative = F.relu(-x)
    if max_value is not None:
        out = out.clamp(max=max_value)
    if negative_slope != 0.0:
        out = out - negative_slope * negative
    return out


def activate_fresh(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """``fn(z)`` for a ``z`` its caller just computed and holds the only reference to (a Dense or
    convolution's affine output): ``relu`` then runs in place, sparing a second buffer of z's
    size (and, for large activations, the page faults of a fresh one). Values and gradients are
    those of ``fn(z)``: relu's backward reads its output, the affine op's backward never reads
    its own output."""
    if fn is relu and z._base is None:
        return torch.relu_(z)
    return fn(z)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope)


def relu6(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    return torch.softmax(x, dim=axis)


def log_softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    return torch.log_softmax(x, dim=axis)


def tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def gelu(x: torch.Tensor, approximate: bool = False) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if approximate else "none")


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    return F.elu(x, alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    return F.selu(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    return F.softsign(x)


def silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


swish = silu


def exponential(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 3 definition: ``clip(x / 6 + 0.5, 0, 1)``."""
    return F.hardsigmoid(x)


def hard_silu(x: torch.Tensor) -> torch.Tensor:
    return F.hardswish(x)


hard_swish = hard_silu


def mish(x: torch.Tensor) -> torch.Tensor:
    return F.mish(x)


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


softmax._bigmodel_softmax = True  # type: ignore[attr-defined]
sigmoid._bigmodel_sigmoid = True  # type: ignore[attr-defined]
softmax._bigmodel_kind = "softmax"  # type: ignore[attr-defined]
sigmoid._bigmodel_kind = "sigmoid"  # type: ignore[attr-defined]

_ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": relu, "leaky_relu": leaky_relu, "relu6": relu6, "sigmoid": sigmoid,
    "softmax": softmax, "log_softmax": log_softmax, "tanh": tanh, "gelu": gelu, "elu": elu,
    "selu": selu, "softplus": softplus, "softsign": softsign, "silu": silu, "swish": swish,
    "exponential": exponential, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
    "hard_swish": hard_swish, "mish": mish, "linear": linear,
    "celu": celu, "glu": glu, "hard_shrink": hard_shrink, "hard_tanh": hard_tanh,
    "log_sigmoid": log_sigmoid, "soft_shrink": soft_shrink, "sparse_plus": sparse_plus,
    "sparse_sigmoid": sparse_sigmoid, "sparsemax": sparsemax, "squareplus": squareplus,
    "tanh_shrink": tanh_shrink, "threshold": threshold,
}
_NAMES_BY_ID = {id(fn): name for name, fn in _ACTIVATIONS.items()
                if name not in ("swish", "hard_swish")}


# The built-ins that act on each element alone, so on any layout of a tensor (not softmax /
# log_softmax, which normalise along an axis).
_ELEMENTWISE_IDS = {id(fn) for name, fn in _ACTIVATIONS.items()
                    if name not in ("softmax", "log_softmax", "glu", "sparsemax")}


def is_elementwise(fn: Any) -> bool:
    """True for a built-in activation that acts element by element (user callables: False)."""
    return id(fn) in _ELEMENTWISE_IDS


def is_softmax(fn: Any) -> bool:
    """True for the softmax activation (the Model then computes the loss from logits)."""
    return bool(getattr(fn, "_bigmodel_softmax", False))


def is_sigmoid(fn: Any) -> bool:
    """True for the sigmoid activation (binary cross-entropy can use the logits)."""
    return bool(getattr(fn, "_bigmodel_sigmoid", False))


def get(identifier: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function for a name, ``None`` (linear) or a callable.

    Raises:
        UnknownNameError: the name is not a known activation (the message lists the known ones).
        ConfigError: the identifier is neither a string, ``None`` nor callable.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, dict):  # {"class_name": "function", "config": "relu"} and similar
        identifier = identifier.get("config", identifier.get("class_name"))
        if isinstance(identifier, dict):
            identifier = identifier.get("name")
    if isinstance(identifier, str):
        fn = _ACTIVATIONS.get(identifier)
        if fn is None:
            raise UnknownNameError(f"Unknown activation: {identifier!r}. Known activations: "
                                   f"{', '.join(sorted(_ACTIVATIONS))} (or None for linear)")
        return fn
    if callable(identifier):
        return identifier
    raise ConfigError(f"Could not interpret activation function identifier: {identifier!r}")


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Callable[..., Any]:
    """The activation a serialized form names (``"relu"``, Keras's ``{"class_name": "function",
    "config": "relu", ...}``), looked up in ``custom_objects`` first.

    Raises:
        UnknownNameError: a name that is neither built in nor in ``custom_objects``.
    """
    name = config.get("config") if isinstance(config, dict) else config
    if custom_objects and isinstance(name, str) and name in custom_objects:
        return custom_objects[name]
    return get(config)


def serialize(fn: Any) -> str:
    """The Keras name of a built-in activation; a callable's ``__name__`` otherwise."""
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        get(fn)
        return fn
    name = _NAMES_BY_ID.get(id(fn))
    if name is not None:
        return name
    return getattr(fn, "__name__", type(fn).__name__)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.activations", name)
