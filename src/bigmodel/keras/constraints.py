"""Keras weight constraints: ``MaxNorm``, ``NonNeg``, ``UnitNorm``, ``MinMaxNorm``.

A constraint maps a weight to its projected value, ``w <- constraint(w)``, applied after every
optimizer step (Keras 3 semantics) to each weight created with ``kernel_constraint=`` /
``bias_constraint=``. ``axis`` refers to the weight's *Keras* shape (a Dense kernel is
``(input_dim, units)``, so ``MaxNorm(axis=0)`` bounds the norm of each unit's incoming weights),
whatever layout the weight is stored in.

The bigmodel Keras optimizers apply constraints themselves; a plain ``torch.optim`` optimizer
does so after :func:`attach` (``Model.compile`` attaches it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "apply_constraints",
           "attach", "deserialize", "get", "serialize"]

_EPSILON = 1e-7  # keras.backend.epsilon()


def _axis(value: Any, owner: str) -> int | tuple[int, ...]:
    if isinstance(value, (list, tuple)) and all(isinstance(a, int) for a in value):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{owner}: `axis` must be an int or a list of ints. Received: axis={value!r}")


def _number(value: Any, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}: `{name}` must be a number. Received: {name}={value!r}")
    return float(value)


def _norms(w: torch.Tensor, axis: int | tuple[int, ...]) -> torch.Tensor:
    return torch.sqrt(torch.sum(w * w, dim=axis, keepdim=True))


class Constraint:
    """Base class: ``__call__(w) -> projected w``; ``get_config`` for serialization."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)


class MaxNorm(Constraint):
    """Rescales so that the L2 norm along ``axis`` is at most ``max_value``."""

    def __init__(self, max_value: float = 2, axis: int | Sequence[int] = 0):
        self.max_value = _number(max_value, "max_value", "MaxNorm")
        self.axis = _axis(axis, "MaxNorm")

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        return w * (torch.clamp(norms, 0, self.max_value) / (_EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Zeroes the negative entries."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w * (w >= 0).to(w.dtype)


class UnitNorm(Constraint):
    """Rescales to unit L2 norm along ``axis``."""

    def __init__(self, axis: int | Sequence[int] = 0):
        self.axis = _axis(axis, "UnitNorm")

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves the L2 norm along ``axis`` towards ``[min_value, max_value]`` by ``rate`` (1 = clip)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: int | Sequence[int] = 0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm")
        self.max_value = _number(max_value, "max_value", "MinMaxNorm")
        self.rate = _number(rate, "rate", "MinMaxNorm")
        self.axis = _axis(axis, "MinMaxNorm")

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = (self.rate * torch.clamp(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras 3 names: class names and snake_case aliases
_BY_NAME: dict[str, type[Constraint]] = {
    "Constraint": Constraint, "MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
    "MinMaxNorm": MinMaxNorm, "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
}
# Keras 2 lower-case aliases
_BY_NAME.update({"maxnorm": MaxNorm, "nonneg": NonNeg, "unitnorm": UnitNorm})

max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


def get(identifier: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A constraint from ``None``, a name, a ``{"class_name", "config"}`` dict or a callable.

    Raises:
        UnknownNameError: unknown name or class.
        ConfigError: anything else.
    """
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise UnknownNameError(f"Unknown constraint '{identifier}'. Known constraints: "
                                   f"{', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ConfigError(f"Could not interpret constraint identifier: {identifier!r}")


def serialize(constraint: Any) -> dict[str, Any] | None:
    if constraint is None:
        return None
    if isinstance(constraint, Constraint):
        return {"module": "keras.constraints", "class_name": type(constraint).__name__,
                "config": constraint.get_config(), "registered_name": None}
    raise ConfigError(f"Cannot serialize constraint {constraint!r}: only keras.constraints "
                      "classes are serializable")


def deserialize(spec: dict[str, Any]) -> Constraint:
    cls = _BY_NAME.get(str(spec.get("class_name", "")))
    if cls is None:
        raise UnknownNameError(f"Unknown constraint class {spec.get('class_name')!r}; known: "
                               f"{', '.join(sorted(_BY_NAME))}")
    config = dict(spec.get("config") or {})
    if isinstance(config.get("axis"), list):
        config["axis"] = tuple(config["axis"])
    return cls.from_config(config)


# ------------------------------------------------------------------------------- applying
def apply_constraints(params: Iterable[torch.Tensor]) -> None:
    """Project every parameter that carries a constraint (set by ``Layer.add_weight``).

    The constraint sees the weight in its Keras layout: the stored tensor is permuted back by
    the weight's recorded permutation, projected, and written back in place.
    """
    with torch.no_grad():
        for param in params:
            spec = getattr(param, "_keras_constraint", None)
            if spec is None:
                continue
            fn, perm = spec
            if perm is None:
                param.copy_(fn(param))
            else:
                keras_view = param.permute(*np.argsort(perm).tolist())
                param.copy_(fn(keras_view).permute(*perm))


def attach(optimizer: torch.optim.Optimizer) -> None:
    """Make a ``torch.optim`` optimizer apply weight constraints after each step (idempotent)."""
    if getattr(optimizer, "_keras_constraints_attached", False):
        return
    optimizer._keras_constraints_attached = True  # type: ignore[attr-defined]

    def _post_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        apply_constraints(p for group in opt.param_groups for p in group["params"])

    optimizer.register_step_post_hook(_post_step)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.constraints", name)
