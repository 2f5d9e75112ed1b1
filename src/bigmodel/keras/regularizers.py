"""Weight regularizers with Keras 3 names and defaults.

A regularizer maps a weight tensor to a scalar penalty that the Model adds to the loss:
``L1(l1)(w) = l1 * sum(|w|)``, ``L2(l2)(w) = l2 * sum(w**2)``, ``L1L2`` is their sum.
Penalties are sums over elements, so they do not depend on the layout a weight is stored in.

``get`` accepts a name (``"l1"``, ``"l2"`` with factor 0.01; ``"l1_l2"`` with 0.01 for both, like
tf.keras's ``l1_l2()`` (Keras 3's ``l1_l2()`` is ``L1L2()``, 0.0 for both); the class names ``"L1"``, ``"L2"``, ``"L1L2"`` with the class
defaults), a ``{"class_name", "config"}`` dict, an instance or any callable ``fn(tensor) -> scalar``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "deserialize", "get",
           "l1", "l1_l2", "l2", "orthogonal_regularizer", "serialize"]


def _factor(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"Invalid value for argument {name}: expected a non-negative float. "
                          f"Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class: ``__call__(weight) -> scalar tensor`` and ``get_config``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    def __init__(self, l1: float = 0.01):
        self.l1 = _factor(l1, "l1")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * x.abs().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2: float = 0.01):
        self.l2 = _factor(l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * x.square().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor(l1, "l1")
        self.l2 = _factor(l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Keras 3's penalty on non-orthogonal rows (``mode="rows"``) or columns of a rank-2 weight:
    ``factor * 0.5 * sum(|G - diag(G)|) / (n (n - 1) / 2)``, ``G`` the Gram matrix of the
    L2-normalized rows/columns. It depends on the layout, so layers apply it to the weight in
    its Keras layout (``keras_layout``)."""

    keras_layout = True

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ConfigError('Invalid value for argument `mode`. Expected one of {"rows", '
                              f'"columns"}}. Received: mode={mode!r}')
        self.mode = mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ConfigError("Inputs to OrthogonalRegularizer must have rank 2. Received: "
                              f"inputs.shape={tuple(x.shape)}")
        vectors = x if self.mode == "rows" else x.T
        # Keras's normalize: x / sqrt(max(sum(x^2), epsilon))
        norms = vectors.square().sum(dim=1, keepdim=True).clamp(min=1e-12).sqrt()
        unit = vectors / norms
        gram = unit @ unit.T
        size = gram.shape[0]
        off_diagonal = gram * (1.0 - torch.eye(size, dtype=gram.dtype, device=gram.device))
        pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * off_diagonal.abs().sum() / pairs

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "mode": self.mode}


# Keras 3's lower-case names are the classes themselves: ``l1_l2()`` is ``L1L2()``, factors 0.0
# (tf.keras's function defaulted to 0.01; the string "l1_l2" below keeps that).
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer


_CLASSES: dict[str, type[Regularizer]] = {"L1": L1, "L2": L2, "L1L2": L1L2,
                                          "OrthogonalRegularizer": OrthogonalRegularizer}
_NAMES: dict[str, Callable[[], Regularizer]] = {"l1": l1, "l2": l2, "l1l2": L1L2,
                                                "l1_l2": lambda: L1L2(l1=0.01, l2=0.01),
                                                "orthogonal_regularizer": orthogonal_regularizer,
                                                **_CLASSES}


def _unknown(identifier: Any) -> UnknownNameError:
    return UnknownNameError(f"Unknown regularizer: {identifier!r}. Known regularizers: "
                            f"{', '.join(sorted(_NAMES))}")


def deserialize(config: dict[str, Any] | str) -> Regularizer:
    if isinstance(config, str):
        if config not in _NAMES:
            raise _unknown(config)
        return _NAMES[config]()
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"Could not interpret regularizer identifier: {config!r}")
    cls = _CLASSES.get(config["class_name"])
    if cls is None:
        if config["class_name"] in _NAMES and not config.get("config"):
            return _NAMES[config["class_name"]]()
        raise _unknown(config["class_name"])
    try:
        return cls.from_config(dict(config.get("config") or {}))
    except TypeError as exc:
        raise ConfigError(f"Invalid config for regularizer '{config['class_name']}': {exc}") from None


def get(identifier: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A regularizer from a name, dict, instance, class or callable; ``None`` -> ``None``."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ConfigError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(regularizer: Any) -> dict[str, Any] | str | None:
    """JSON-able ``{"class_name", "config"}`` for built-ins; a function's name otherwise."""
    if regularizer is None:
        return None
    if isinstance(regularizer, Regularizer):
        return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
    if isinstance(regularizer, (str, dict)):
        return serialize(get(regularizer))
    return getattr(regularizer, "__name__", type(regularizer).__name__)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.regularizers", name)
