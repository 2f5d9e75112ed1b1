"""``keras.optimizers.OptimizerMap`` and ``MultiOptimizer``: each weight updated by its own optimizer.

``OptimizerMap(default_optimizer, {pattern: optimizer})`` picks an optimizer by a weight's Keras path
(``"dense/kernel"``): the exact key first, else the one key that ``re.fullmatch``-es, else the
default. ``MultiOptimizer(optimizer_map)`` (an ``OptimizerMap`` or any callable
``weight -> optimizer``) builds each inner optimizer on its weights; after ``build`` its
``torch_optimizer`` is one ``torch.optim.Optimizer`` whose parameter groups and state are the inner
optimizers' own (shared objects), so the engine, ``state_dict`` and checkpoints see every weight,
and ``step`` runs each inner optimizer's update (with its own clipping, decay and schedule).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.keras.model_classes import model_class
from bigmodel.keras.optimizer_base import Optimizer

__all__ = ["MultiOptimizer", "OptimizerMap"]


class NoSingleLearningRateError(ConfigError, AttributeError):
    """A MultiOptimizer has no learning rate of its own (an AttributeError too, as in Keras, so
    ``getattr(optimizer, "learning_rate", None)`` answers None)."""


class OptimizerMap(MutableMapping):
    """Keras path patterns -> optimizers, with a default (see the module docstring).

    Raises:
        InputTypeError: a default or mapped value that is not a Keras optimizer, a MultiOptimizer
            inside, or a key that is not a string.
        ConfigError: a key set twice, or a path that two patterns match.
    """

    def __init__(self, default_optimizer: Optimizer,
                 optimizer_map: dict[str, Optimizer] | None = None) -> None:
        if not isinstance(default_optimizer, Optimizer) or isinstance(default_optimizer,
                                                                      MultiOptimizer):
            raise InputTypeError(f"OptimizerMap: default_optimizer must be a Keras Optimizer "
                                 f"instance. Received: {default_optimizer!r}")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise InputTypeError(f"OptimizerMap: optimizer_map must be a dictionary. Received: "
                                 f"{optimizer_map!r}")
        self._default_optimizer = default_optimizer
        self._optimizer_map: dict[str, Optimizer] = {}
        for key, optimizer in (optimizer_map or {}).items():
            self[key] = optimizer

    @property
    def default_optimizer(self) -> Optimizer:
        return self._default_optimizer

    def __getitem__(self, key: str) -> Optimizer:
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [pattern for pattern in self._optimizer_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ConfigError(f"OptimizerMap: multiple optimizers assigned to variable {key!r} "
                              f"(patterns {matching})")
        return self._optimizer_map[matching[0]] if matching else self._default_optimizer

    def __setitem__(self, key: str, optimizer: Optimizer) -> None:
        if not isinstance(key, str):
            raise InputTypeError(f"OptimizerMap: key must be a string. Received: {key!r}")
        if key in self._optimizer_map:
            raise ConfigError(f"OptimizerMap: '{key}' already exists in the OptimizerMap with "
                              f"value {self._optimizer_map[key]!r}; keys cannot repeat")
        if not isinstance(optimizer, Optimizer) or isinstance(optimizer, MultiOptimizer):
            raise InputTypeError(f"OptimizerMap: optimizer must be a Keras Optimizer instance "
                                 f"(not a MultiOptimizer). Received: {optimizer!r}")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key: str) -> None:
        del self._optimizer_map[key]

    def __len__(self) -> int:
        return len(self._optimizer_map)

    def __iter__(self) -> Iterator[str]:
        return iter(self._optimizer_map)

    def __call__(self, variable: Any) -> Optimizer:
        return self[str(getattr(variable, "path", ""))]

    def get_config(self) -> dict[str, Any]:
        return {"default_optimizer": _spec(self._default_optimizer),
                "optimizer_map": {key: _spec(value) for key, value in self._optimizer_map.items()}}


def _spec(optimizer: Optimizer) -> dict[str, Any]:
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


class _Composite(torch.optim.Optimizer):
    """The inner optimizers as one torch optimizer: their parameter-group dicts and one shared
    state mapping (weights are disjoint), so lr changes, ``state_dict`` and loading reach them."""

    def __init__(self, inner: list[torch.optim.Optimizer]) -> None:
        groups = [group for opt in inner for group in opt.param_groups if group["params"]]
        super().__init__(groups or [{"params": []}], defaults={})
        self.inner = inner
        state: defaultdict = defaultdict(dict)
        for opt in inner:
            state.update(opt.state)
            opt.state = state
        self.state = state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.inner:
            opt.step()
        return loss


def keras_paths(model: torch.nn.Module) -> dict[int, str]:
    """``id(weight) -> Keras path`` of ``model``'s weights: the names of the Keras layers that
    hold it, outermost first, then the weight's name, as Keras 3 names ``variable.path`` (the
    scope where the layer was built): a Sequential's or subclassed model's name leads
    (``"sequential/dense/kernel"``), a functional model's does not (its layers are built before
    it: ``"dense/kernel"``). Keras's recurrent layers add their cell (``"lstm/lstm_cell/kernel"``);
    bigmodel's hold the weights themselves (``"lstm/kernel"``)."""
    layer_names: dict[str, str | None] = {}
    paths: dict[int, str] = {}
    for dotted, module in model.named_modules():
        name = getattr(module, "name", None)
        layer_names[dotted] = name if isinstance(name, str) else None
        if not dotted and isinstance(model, model_class("Functional")):
            layer_names[dotted] = None
        parts = dotted.split(".") if dotted else []
        chain = [layer_names[""]] + [layer_names.get(".".join(parts[:i + 1]))
                                     for i in range(len(parts))]
        prefix = "/".join(n for n in chain if n)
        for attr, param in module.named_parameters(recurse=False):
            weight = str(getattr(param, "path", attr)).rsplit("/", 1)[-1]
            paths[id(param)] = f"{prefix}/{weight}" if prefix else weight
    return paths


class _Named:
    """A weight seen with its Keras path (what an OptimizerMap or a user's callable reads)."""

    def __init__(self, param: torch.nn.Parameter, path: str | None) -> None:
        self._param = param
        self.path = path if path is not None else str(getattr(param, "path", ""))

    def __getattr__(self, item: str) -> Any:
        return getattr(self._param, item)


class MultiOptimizer(Optimizer):
    """Delegates each weight to the optimizer ``optimizer_map`` gives it (module docstring).

    Raises:
        InputTypeError: ``optimizer_map`` neither an OptimizerMap nor callable, or it gives a
            weight something other than a (non-Multi) Keras optimizer.
    """

    name = "multi_optimizer"

    def __init__(self, optimizer_map: Any, loss_scale_factor: float | None = None,
                 name: str | None = None) -> None:
        super().__init__(learning_rate=0.0, loss_scale_factor=loss_scale_factor, name=name)
        if not callable(optimizer_map):
            raise InputTypeError(f"MultiOptimizer: optimizer_map must be an OptimizerMap or a "
                                 f"callable (weight -> optimizer). Received: {optimizer_map!r}")
        self._optimizer_map = optimizer_map
        self._inner: list[Optimizer] = []
        if isinstance(optimizer_map, OptimizerMap):
            for opt in [*optimizer_map.values(), optimizer_map.default_optimizer]:
                if opt not in self._inner:
                    self._inner.append(opt)
        self._steps = 0

    @property
    def optimizers(self) -> list[Optimizer]:
        """The inner optimizers (Keras's ``MultiOptimizer.optimizers``)."""
        return list(self._inner)

    def build(self, params: Iterable[torch.nn.Parameter], model: Any = None) -> MultiOptimizer:
        """Give each weight to its optimizer and build those.

        Args:
            params: the weights.
            model: their Keras model, when known: weights are then looked up by Keras's full path
                (``"sequential/dense/kernel"``, the model's name first); else by the layer's
                (``"dense/kernel"``).
        """
        paths = keras_paths(model) if model is not None else {}
        assigned: dict[int, list[torch.nn.Parameter]] = {}
        for param in params:
            if not param.requires_grad:
                continue
            opt = self._optimizer_map(_Named(param, paths.get(id(param))))
            if not isinstance(opt, Optimizer) or isinstance(opt, MultiOptimizer):
                raise InputTypeError(f"MultiOptimizer: the optimizer for variable "
                                     f"'{getattr(param, 'path', '?')}' is not a Keras Optimizer "
                                     f"instance (or is a MultiOptimizer): {opt!r}")
            if opt not in self._inner:
                self._inner.append(opt)
            assigned.setdefault(id(opt), []).append(param)
        for opt in self._inner:
            opt.build(assigned.get(id(opt), []))
        self.torch_optimizer = _Composite([opt.torch_optimizer for opt in self._inner])
        self.torch_optimizer.register_step_post_hook(self._count_step)
        return self

    def _count_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._steps += 1

    @property
    def iterations(self) -> int:
        return self._steps

    @property
    def learning_rate(self) -> float:
        raise NoSingleLearningRateError("Learning rate cannot be accessed on a MultiOptimizer. "
                                        "Access the learning rate on the individual "
                                        "sub-optimizers instead (MultiOptimizer.optimizers)")

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        raise NoSingleLearningRateError("Learning rate cannot be set on a MultiOptimizer. Set "
                                        "the learning rate on the individual sub-optimizers "
                                        "instead (MultiOptimizer.optimizers)")

    lr = learning_rate

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self._optimizer_map, OptimizerMap):
            raise ConfigError("MultiOptimizer.get_config: a callable optimizer_map cannot be "
                              "serialized; use an OptimizerMap")
        return {"optimizer_map": {"module": "keras.optimizers", "class_name": "OptimizerMap",
                                  "config": self._optimizer_map.get_config(),
                                  "registered_name": None},
                "loss_scale_factor": None, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MultiOptimizer:
        """Rebuild from a config whose ``optimizer_map`` is an OptimizerMap object (a serialized
        one is read by ``keras.optimizers.deserialize``, which knows every optimizer class).

        Raises:
            ConfigError: ``optimizer_map`` still in its serialized form.
        """
        if not callable(config.get("optimizer_map")):
            raise ConfigError("MultiOptimizer.from_config: optimizer_map is serialized; rebuild "
                              "it with keras.optimizers.deserialize(spec)")
        return cls(**config)
