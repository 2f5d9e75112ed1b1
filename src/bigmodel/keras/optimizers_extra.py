"""``keras.optimizers.Adadelta``, ``Adafactor``, ``Ftrl``, ``Lamb``, ``Lion``, ``Muon`` and
``ScheduleFreeAdamW`` with Keras 3's arguments, defaults and ``get_config`` keys.

Adadelta runs as ``torch.optim.Adadelta`` (the same rule); the others run Keras's rules from
:mod:`.optimizer_rules_extra`. Weight decay is Keras's decoupled one (the base's pre-step hook;
Muon applies its two rates itself).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError
from bigmodel.keras.optimizer_base import Optimizer
from bigmodel.keras.optimizer_rules_extra import (
    KerasAdafactor,
    KerasFtrl,
    KerasLamb,
    KerasLion,
    KerasMuon,
    KerasScheduleFreeAdamW,
)

__all__ = ["Adadelta", "Adafactor", "Ftrl", "Lamb", "Lion", "Muon", "ScheduleFreeAdamW"]


class _Plain(Optimizer):
    """An optimizer whose hyper-parameters are plain attributes listed in ``_keys``, handed to
    its rule as they are and written in ``get_config``."""

    _keys: tuple[str, ...] = ()
    _rule: Any = None

    def _hyper(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._keys}

    def _make(self, params):
        return self._rule(params, lr=self._initial_lr, **self._hyper())

    def get_config(self):
        return {**super().get_config(), **self._hyper()}


class Adadelta(_Plain):
    name = "adadelta"
    _keys = ("rho", "epsilon")

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _make(self, params):
        # torch's Adadelta is Keras's rule (the same accumulators and rms(x) = sqrt(x + eps))
        return torch.optim.Adadelta(params, lr=self._initial_lr, rho=self.rho, eps=self.epsilon)


class Lion(_Plain):
    name = "lion"
    _keys, _rule = ("beta_1", "beta_2"), KerasLion

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0 < beta_1 <= 1:
            raise ConfigError(f"Lion: argument `beta_1` must be in the [0, 1] range. Otherwise, "
                              f"the optimizer degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = beta_1, beta_2


class Lamb(_Plain):
    name = "lamb"
    _keys, _rule = ("beta_1", "beta_2", "epsilon"), KerasLamb

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon


class Ftrl(_Plain):
    name = "ftrl"
    _keys = ("learning_rate_power", "initial_accumulator_value", "l1_regularization_strength",
             "l2_regularization_strength", "l2_shrinkage_regularization_strength", "beta")
    _rule = KerasFtrl

    def __init__(self, learning_rate: float = 0.001, learning_rate_power: float = -0.5,
                 initial_accumulator_value: float = 0.1, l1_regularization_strength: float = 0.0,
                 l2_regularization_strength: float = 0.0,
                 l2_shrinkage_regularization_strength: float = 0.0, beta: float = 0.0,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        checks = {"initial_accumulator_value": (initial_accumulator_value, "positive or zero"),
                  "learning_rate_power": (-learning_rate_power, "negative or zero"),
                  "l1_regularization_strength": (l1_regularization_strength, "positive or zero"),
                  "l2_regularization_strength": (l2_regularization_strength, "positive or zero"),
                  "l2_shrinkage_regularization_strength": (
                      l2_shrinkage_regularization_strength, "positive or zero")}
        for key, (value, rule) in checks.items():
            if value < 0:
                raise ConfigError(f"Ftrl: `{key}` needs to be {rule}. Received: "
                                  f"{key}={locals()[key]}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta


class Adafactor(_Plain):
    name = "adafactor"
    _keys = ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step")
    _rule = KerasAdafactor

    def __init__(self, learning_rate: float = 0.001, beta_2_decay: float = -0.8,
                 epsilon_1: float = 1e-30, epsilon_2: float = 1e-3, clip_threshold: float = 1.0,
                 relative_step: bool = True, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_2_decay, self.epsilon_1, self.epsilon_2 = beta_2_decay, epsilon_1, epsilon_2
        self.clip_threshold, self.relative_step = clip_threshold, relative_step

    def _make(self, params):
        # Keras caps a constant rate at 1/sqrt(t) (relative_step) but not a schedule's
        return KerasAdafactor(params, lr=self._initial_lr, scheduled=self._schedule is not None,
                              **self._hyper())


class ScheduleFreeAdamW(_Plain):
    name = "schedule_free_adam_w"  # Keras's default: its class name in snake case
    _keys = ("beta_1", "beta_2", "epsilon", "warmup_steps")
    _rule = KerasScheduleFreeAdamW

    def __init__(self, learning_rate: float = 0.0025, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, warmup_steps: int = 0, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.warmup_steps = warmup_steps

    def _decoupled_decay_in_hook(self) -> bool:
        return False  # KerasScheduleFreeAdamW decays after setting z from the weight

    def _make(self, params):
        return KerasScheduleFreeAdamW(params, lr=self._initial_lr, weight_decay=self.weight_decay,
                                      **self._hyper())


class Muon(_Plain):
    """Muon for 2-D weights, Adam for the rest (see :class:`.KerasMuon` for which is which)."""

    name = "muon"
    _keys = ("adam_beta_1", "adam_beta_2", "epsilon", "exclude_layers", "muon_a", "muon_b",
             "muon_c", "adam_lr_ratio", "momentum", "ns_steps", "nesterov", "exclude_embeddings",
             "adam_weight_decay", "rms_rate")
    _rule = KerasMuon

    def __init__(self, learning_rate: float = 0.001, adam_beta_1: float = 0.9,
                 adam_beta_2: float = 0.999, adam_weight_decay: float = 0.004,
                 epsilon: float = 1e-7, weight_decay: float = 0.004,
                 exclude_layers: list[str] | None = None, exclude_embeddings: bool = True,
                 muon_a: float = 3.4445, muon_b: float = -4.7750, muon_c: float = 2.0315,
                 adam_lr_ratio: float = 1, momentum: float = 0.95, ns_steps: int = 5,
                 nesterov: bool = True, rms_rate: float | None = 0.2, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self.adam_beta_1, self.adam_beta_2, self.epsilon = adam_beta_1, adam_beta_2, epsilon
        self.adam_weight_decay = adam_weight_decay
        self.exclude_layers = list(exclude_layers or [])
        self.exclude_embeddings = exclude_embeddings
        self.muon_a, self.muon_b, self.muon_c = muon_a, muon_b, muon_c
        self.adam_lr_ratio, self.momentum, self.ns_steps = adam_lr_ratio, momentum, ns_steps
        self.nesterov, self.rms_rate = nesterov, rms_rate

    def _decoupled_decay_in_hook(self) -> bool:
        return False  # two rates, one per kind of weight: KerasMuon applies them

    def _make(self, params):
        return KerasMuon(params, lr=self._initial_lr, weight_decay=self.weight_decay,
                         **self._hyper())
