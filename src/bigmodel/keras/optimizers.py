"""Keras optimizers mapped onto ``torch.optim``.

A Keras optimizer here is a small object holding Keras's arguments and defaults; ``build(params)``
creates the ``torch.optim`` optimizer that does the work. After build, ``param_groups``, ``state``,
``step``, ``zero_grad`` and ``state_dict`` are those of the torch optimizer, so the engine (and its
learning-rate helpers) treat it as a torch optimizer.

Known numeric differences from Keras, all tiny in practice:
- Adam/AdamW/RMSprop: PyTorch adds ``epsilon`` to ``sqrt(v_hat)``; Keras folds the bias correction
  into the step size and adds ``epsilon`` to ``sqrt(v)``. Defaults (``epsilon=1e-7``) are Keras's.
- ``weight_decay`` is decoupled in Keras (``w -= lr * wd * w``): Adam with ``weight_decay`` runs as
  ``torch.optim.AdamW``; SGD/RMSprop use the decoupled form through a step hook.
- SGD/Adam/AdamW/RMSprop/Adagrad are built by the engine's one optimizer-by-name function
  (:func:`bigmodel.engine.optimizers.create_optimizer`) with Keras's defaults passed explicitly;
  it runs torch's fused kernels when every parameter is a plain one on a CPU or CUDA device: the
  same update in one pass.
- ``clipnorm`` (per variable), ``clipvalue`` and ``global_clipnorm`` are applied to the gradients in
  a pre-step hook, after mixed-precision unscaling.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.engine.optimizers import create_optimizer
from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras import constraints, schedules  # noqa: F401 - keras.optimizers.schedules
from bigmodel.keras.multi_optimizer import MultiOptimizer, OptimizerMap
from bigmodel.keras.optimizer_base import Optimizer
from bigmodel.keras.optimizer_rules import KerasAdamax, KerasNadam
from bigmodel.keras.optimizers_extra import (  # noqa: F401 - keras.optimizers names
    Adadelta,
    Adafactor,
    Ftrl,
    Lamb,
    Lion,
    Muon,
    ScheduleFreeAdamW,
)
from bigmodel.keras.unsupported import namespace, unsupported_attribute


class SGD(Optimizer):
    name = "SGD"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ConfigError(f"SGD: momentum must be in [0, 1]. Received: momentum={momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _make(self, params):
        # weight_decay is decoupled in Keras: applied in the pre-step hook, not by torch
        return create_optimizer("sgd", params, lr=self._initial_lr, weight_decay=0.0,
                                momentum=self.momentum,
                                nesterov=self.nesterov and self.momentum > 0)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _decoupled_decay_in_hook(self) -> bool:
        return False  # AdamW applies the decoupled decay itself

    def _make(self, params):
        # Keras's weight decay is decoupled: Adam with weight_decay is torch's AdamW
        return create_optimizer("adamw" if self.weight_decay else "adam", params,
                                lr=self._initial_lr, weight_decay=self.weight_decay or 0.0,
                                betas=(self.beta_1, self.beta_2), epsilon=self.epsilon,
                                amsgrad=bool(self.amsgrad))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    name = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _make(self, params):
        return create_optimizer("rmsprop", params, lr=self._initial_lr, weight_decay=0.0,
                                rho=self.rho, epsilon=self.epsilon, momentum=self.momentum,
                                centered=bool(self.centered))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    name = "adagrad"

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _make(self, params):
        return create_optimizer("adagrad", params, lr=self._initial_lr, weight_decay=0.0,
                                epsilon=self.epsilon,
                                initial_accumulator_value=self.initial_accumulator_value)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm (Keras's update rule exactly; ``optimizer_rules.py``)."""

    name = "adamax"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _make(self, params):
        return KerasAdamax(params, lr=self._initial_lr, beta_1=self.beta_1, beta_2=self.beta_2,
                           epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Nadam(Adamax):
    """Adam with Nesterov momentum (Keras's update rule exactly; ``optimizer_rules.py``)."""

    name = "nadam"

    def _make(self, params):
        return KerasNadam(params, lr=self._initial_lr, beta_1=self.beta_1, beta_2=self.beta_2,
                          epsilon=self.epsilon)


_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
    "adamax": Adamax, "nadam": Nadam,
    # Keras resolves a lower-cased class name ("schedulefreeadamw"); Lamb is not among its
    # string names, accepted here too
    **{cls.__name__.lower(): cls for cls in (Adadelta, Adafactor, Ftrl, Lamb, Lion, Muon,
                                             ScheduleFreeAdamW)},
}
# built from a spec by deserialize (they wrap other optimizers); no string name of their own
_WRAPPERS = {"MultiOptimizer": MultiOptimizer, "OptimizerMap": OptimizerMap}


def get(identifier: Any) -> Optimizer | torch.optim.Optimizer:
    """An optimizer from a Keras name (``"adam"``), a Keras optimizer, or a ``torch.optim`` one."""
    if isinstance(identifier, torch.optim.Optimizer):
        constraints.attach(identifier)  # weight constraints apply with any optimizer
        return identifier
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise UnknownNameError(f"Unknown optimizer '{identifier}'. Known optimizers: "
                                   f"{', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise UnknownNameError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer: Any) -> dict[str, Any] | None:
    """Keras 3's dict for a Keras-surface optimizer (None for a ``torch.optim`` one)."""
    if isinstance(optimizer, Optimizer):
        return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
                "config": optimizer.get_config(), "registered_name": None}
    return None


def deserialize(spec: dict[str, Any]) -> Any:
    """An optimizer (or OptimizerMap) from :func:`serialize`'s dict or real Keras's.

    Raises:
        UnknownNameError: an unknown class name.
    """
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    # Keras matches built-in class names case-insensitively ("adam" or "Adam")
    by_lower = {name.lower(): cls for name, cls in {**classes, **_WRAPPERS}.items()}
    cls = by_lower.get(str(spec.get("class_name", "")).lower())
    if cls is None:
        raise UnknownNameError(f"Unknown optimizer class {spec.get('class_name')!r}; known: "
                               f"{', '.join(sorted([*classes, *_WRAPPERS]))}")
    config = dict(spec.get("config", {}))
    if cls is OptimizerMap:
        return OptimizerMap(deserialize(config["default_optimizer"]),
                            {key: deserialize(value)
                             for key, value in (config.get("optimizer_map") or {}).items()})
    if cls is MultiOptimizer:
        config["optimizer_map"] = deserialize(config["optimizer_map"])
        return MultiOptimizer.from_config(config)
    config.pop("name", None)
    return cls(**config)


legacy = namespace("keras.optimizers.legacy")  # Keras 2's optimizers: every name raises


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.optimizers", name)
