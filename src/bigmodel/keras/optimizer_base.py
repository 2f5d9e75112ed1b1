"""The base of the Keras-surface optimizers: Keras's arguments (learning rate or schedule, decoupled
weight decay, gradient clipping, gradient accumulation) around a ``torch.optim`` optimizer that a
subclass makes in ``_make``. See :mod:`bigmodel.keras.optimizers` for the concrete ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from bigmodel.errors import (
    ConfigError,
    InputTypeError,
    NotBuiltError,
    NotSupportedError,
)
from bigmodel.keras import constraints, schedules
from bigmodel.keras.optimizer_ema import EMAMixin

__all__ = ["Optimizer"]


def _accumulation_steps(owner: str, value: Any) -> int | None:
    """Keras 3's ``gradient_accumulation_steps``: ``None`` (off) or an int >= 2.

    Raises:
        InputTypeError: not an int (a bool, a string, a float). ConfigError: an int below 2
            (Keras reads 0 as off; bigmodel refuses it rather than ignore it).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{owner}: gradient_accumulation_steps must be an integer >= 2 or "
                             f"None; received {value!r} ({type(value).__name__})")
    if value < 2:
        raise ConfigError(f"{owner}: gradient_accumulation_steps must be an integer >= 2 or None; "
                          f"received {value}")
    return value


class Optimizer(EMAMixin):
    """Base class of the Keras-surface optimizers.

    ``gradient_accumulation_steps=N`` (Keras 3): the weights are updated every N training steps
    with the average of the N batches' gradients (``fit`` runs it as the engine's
    ``grad_accum_steps``; the last short group of an epoch is averaged over its own length).
    ``use_ema`` / ``ema_momentum`` / ``ema_overwrite_frequency``: Keras's moving average of the
    weights (see :mod:`bigmodel.keras.optimizer_ema`).
    """

    name = "optimizer"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs: Any):
        ignored = {"loss_scale_factor"}
        self.gradient_accumulation_steps = _accumulation_steps(
            type(self).__name__, kwargs.pop("gradient_accumulation_steps", None))
        self._init_ema(kwargs.pop("use_ema", False), kwargs.pop("ema_momentum", 0.99),
                       kwargs.pop("ema_overwrite_frequency", None))
        unknown = set(kwargs) - ignored
        # Keras's default (written in every saved config) is accepted; asking for what is not
        # implemented is refused rather than ignored.
        if kwargs.get("loss_scale_factor") is not None:
            raise NotSupportedError(
                f"{type(self).__name__}: loss_scale_factor={kwargs.get('loss_scale_factor')!r}: "
                "a fixed loss scale is not supported by bigmodel (mixed_float16 scales the loss "
                "itself); see docs/keras_api.md")
        if unknown:
            raise ConfigError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                              f"{sorted(unknown)}")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ConfigError(f"{type(self).__name__}: only one of clipnorm, clipvalue and "
                              f"global_clipnorm can be set. Received: clipnorm={clipnorm}, "
                              f"clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        if isinstance(learning_rate, dict):  # a serialized schedule (get_config of a schedule)
            learning_rate = schedules.deserialize(learning_rate)
        # A schedule is evaluated before each update at the number of updates done so far.
        self._schedule: schedules.LearningRateSchedule | None = None
        self._schedule_step = 0
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._schedule = learning_rate
            learning_rate = float(learning_rate(0))
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or (
                learning_rate < 0):
            raise ConfigError(f"{type(self).__name__}: learning_rate must be a non-negative "
                              f"number or a keras.optimizers.schedules.LearningRateSchedule. "
                              f"Received: learning_rate={learning_rate!r}")
        self._initial_lr = float(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        if name:
            self.name = name
        self.torch_optimizer: torch.optim.Optimizer | None = None

    # -- building -------------------------------------------------------------------------
    def _make(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:  # pragma: no cover
        raise NotImplementedError

    def _decoupled_decay_in_hook(self) -> bool:
        return bool(self.weight_decay)

    def build(self, params: Iterable[torch.nn.Parameter], model: Any = None) -> Optimizer:
        """Create the torch optimizer over ``params`` (those that require gradients).

        Args:
            params: the weights to update.
            model: the Keras model they belong to, when known (read by MultiOptimizer for
                Keras's weight paths; unused here).
        """
        params = [p for p in params if p.requires_grad]
        # A model without trainable weights still fits in Keras (nothing is updated); torch
        # refuses an empty parameter list, not an empty group.
        self.torch_optimizer = self._make(params or [{"params": []}])
        self.torch_optimizer.register_step_pre_hook(self._pre_step)
        self.torch_optimizer.register_step_post_hook(self._post_step)
        constraints.attach(self.torch_optimizer)  # weight constraints after each update
        return self

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.use_ema:
            self._update_ema(self._schedule_step)
        self._schedule_step += 1

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._schedule is not None:
            lr = float(self._schedule(self._schedule_step))
            for group in optimizer.param_groups:
                group["lr"] = lr
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for g in optimizer.param_groups for p in g["params"]], self.global_clipnorm)
        elif self.clipnorm is not None:
            for grad in grads:
                norm = grad.norm()
                grad.mul_(torch.clamp(self.clipnorm / (norm + 1e-12), max=1.0))
        elif self.clipvalue is not None:
            for grad in grads:
                grad.clamp_(-self.clipvalue, self.clipvalue)
        if self._decoupled_decay_in_hook():
            with torch.no_grad():
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.mul_(1 - group["lr"] * self.weight_decay)

    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    def _require(self) -> torch.optim.Optimizer:
        if self.torch_optimizer is None:
            raise NotBuiltError(f"{type(self).__name__} has no variables yet: it is built when the "
                                "model is trained (or call build(model.parameters()))")
        return self.torch_optimizer

    # -- torch.optim.Optimizer surface used by the engine ---------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self._require().param_groups

    @property
    def state(self) -> Any:
        return self._require().state

    def step(self, closure: Any = None) -> Any:
        return self._require().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._require().zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self._require().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._require().load_state_dict(state)

    def add_param_group(self, group: dict[str, Any]) -> None:
        self._require().add_param_group(group)

    # -- Keras surface --------------------------------------------------------------------
    def apply(self, grads: Any, trainable_variables: Any = None) -> None:
        """Apply ``grads`` to ``trainable_variables`` (Keras 3; builds on the first call).

        Only these variables move: others the optimizer holds keep their weights even when they
        carry gradients (e.g. a GAN's discriminator step leaves the generator alone).

        Raises:
            ConfigError: no variables, or as many gradients as variables not given.
        """
        grads = list(grads)
        if trainable_variables is None:
            raise ConfigError(f"{type(self).__name__}.apply() needs trainable_variables")
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ConfigError(f"{type(self).__name__}.apply(): {len(grads)} gradients for "
                              f"{len(variables)} variables")
        if self.torch_optimizer is None:
            self.build(variables)
        held = {id(p) for g in self.torch_optimizer.param_groups for p in g["params"]}
        new = [v for v in variables if id(v) not in held and v.requires_grad]
        if new:
            self.torch_optimizer.add_param_group({"params": new})
        given = {id(v) for v in variables}
        hidden = []
        for group in self.torch_optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in given and p.grad is not None:
                    hidden.append((p, p.grad))
                    p.grad = None
        for grad, variable in zip(grads, variables):
            if grad is not None and variable.grad is not grad:
                variable.grad = grad.to(variable.dtype)
        try:
            self.torch_optimizer.step()
        finally:
            for p, grad in hidden:
                p.grad = grad

    def apply_gradients(self, grads_and_vars: Any) -> None:
        """Keras 2's form of :meth:`apply`: an iterable of ``(gradient, variable)`` pairs."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    @property
    def learning_rate(self) -> float:
        if self._schedule is not None:  # the rate of the next update, as Keras reports it
            return float(self._schedule(self._schedule_step))
        if self.torch_optimizer is None:
            return self._initial_lr
        return float(self.torch_optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise ConfigError(f"{type(self).__name__} was created with a LearningRateSchedule "
                              f"({type(self._schedule).__name__}); its learning rate cannot be "
                              f"set to {value!r}")
        self._initial_lr = float(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = float(value)

    lr = learning_rate

    @property
    def iterations(self) -> int:
        if self.torch_optimizer is None:
            return 0
        steps = [s.get("step") for s in self.torch_optimizer.state.values() if "step" in s]
        # torch's SGD counts no steps in its state: the updates this object has run then
        return int(max((float(s) for s in steps), default=self._schedule_step))

    def get_config(self) -> dict[str, Any]:
        learning_rate: Any = (self._initial_lr if self._schedule is None
                              else schedules.serialize(self._schedule))
        config = {"name": self.name, "learning_rate": learning_rate,
                  "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                  "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        if self.gradient_accumulation_steps is not None:
            config["gradient_accumulation_steps"] = self.gradient_accumulation_steps
        if self.use_ema:  # Keras writes them always; bigmodel when they matter
            config.update(use_ema=True, ema_momentum=self.ema_momentum,
                          ema_overwrite_frequency=self.ema_overwrite_frequency)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)
