"""Keras 3's moving average of the weights (``use_ema=True``), for the Keras-surface optimizers.

After every update the optimizer folds the new weights into a copy it keeps ("Polyak averaging"),
as Keras's ``BaseOptimizer`` does::

    average = momentum * average + (1 - momentum) * weight     # momentum = 0 at the first update

so the average starts at the weights after the first update. Every ``ema_overwrite_frequency``
updates the weights are replaced by their average; at the end of ``fit`` (Keras's
``finalize_variable_values``) too, so a model trained with ``use_ema=True`` ends holding the
averaged weights. ``keras.callbacks.SwapEMAWeights`` swaps the two for evaluation.

The averages are kept in the optimizer object, not in its ``state_dict``: they are not saved
with checkpoints or ``.keras`` files (Keras saves them; a resumed run starts a new average).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.engine.callback_base import Callback
from bigmodel.errors import ConfigError, InputTypeError

__all__ = ["EMAMixin", "FinalizeEMA"]


class EMAMixin:
    """The moving-average part of :class:`bigmodel.keras.optimizer_base.Optimizer`."""

    torch_optimizer: torch.optim.Optimizer | None

    def _init_ema(self, use_ema: Any, ema_momentum: Any, ema_overwrite_frequency: Any) -> None:
        """Check and keep Keras's three EMA arguments.

        Raises:
            ConfigError: ``ema_momentum`` outside [0, 1]; ``ema_overwrite_frequency`` not an int
                >= 1 (or ``None``), as Keras refuses them.
            InputTypeError: ``use_ema`` not a bool.
        """
        owner = type(self).__name__
        if not isinstance(use_ema, bool):
            raise InputTypeError(f"{owner}: use_ema must be True or False; received {use_ema!r}")
        if use_ema:
            if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, (int, float)) or (
                    not 0 <= ema_momentum <= 1):
                raise ConfigError(f"{owner}: `ema_momentum` must be in the range [0, 1]. "
                                  f"Received: ema_momentum={ema_momentum!r}")
            if ema_overwrite_frequency is not None and (
                    isinstance(ema_overwrite_frequency, bool)
                    or not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
                raise ConfigError(f"{owner}: `ema_overwrite_frequency` must be an integer >= 1 or "
                                  f"None. Received: ema_overwrite_frequency="
                                  f"{ema_overwrite_frequency!r}")
        self.use_ema = use_ema
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self._averages: dict[int, torch.Tensor] = {}

    @property
    def _trainable_variables(self) -> list[torch.nn.Parameter]:
        """The weights this optimizer updates, in the order of its parameter groups."""
        if self.torch_optimizer is None:
            return []
        return [p for group in self.torch_optimizer.param_groups for p in group["params"]]

    @property
    def _model_variables_moving_average(self) -> list[torch.Tensor | None]:
        """The averages, one per entry of :attr:`_trainable_variables` (``None`` before the
        weight's first update), as Keras names them."""
        return [self._averages.get(id(p)) for p in self._trainable_variables]

    def _update_ema(self, updates_done: int) -> None:
        """Fold the weights into their averages after an update (``updates_done`` before it)."""
        momentum = self.ema_momentum if updates_done else 0.0
        with torch.no_grad():
            for variable in self._trainable_variables:
                average = self._averages.get(id(variable))
                if average is None:  # first seen: the average starts at the weight
                    self._averages[id(variable)] = variable.detach().clone()
                else:
                    average.mul_(momentum).add_(variable.detach(), alpha=1.0 - momentum)
            if self.ema_overwrite_frequency and (updates_done + 1) % \
                    self.ema_overwrite_frequency == 0:
                self._overwrite_with_average(self._trainable_variables)

    def _overwrite_with_average(self, variables: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for variable in variables:
                average = self._averages.get(id(variable))
                if average is not None:
                    variable.copy_(average)

    def finalize_variable_values(self, var_list: Any) -> None:
        """Keras's end of ``fit``: with ``use_ema``, the weights in ``var_list`` take their
        moving averages (weights this optimizer never updated stay)."""
        if self.use_ema:
            self._overwrite_with_average(list(var_list))

    def swap_ema_weights(self) -> None:
        """Exchange every weight with its moving average, in place (SwapEMAWeights).

        Raises:
            ConfigError: the optimizer was created without ``use_ema=True``.
        """
        if not self.use_ema:
            raise ConfigError(f"SwapEMAWeights must be used when `use_ema=True` is set on the "
                              f"optimizer. Received: use_ema={self.use_ema} "
                              f"({type(self).__name__})")
        with torch.no_grad():
            for variable in self._trainable_variables:
                average = self._averages.get(id(variable))
                if average is not None:
                    kept = variable.detach().clone()
                    variable.copy_(average)
                    average.copy_(kept)

    def copy_weights_to_averages(self) -> None:
        """Set every average to its weight's current value (SwapEMAWeights after a last swap)."""
        with torch.no_grad():
            for variable in self._trainable_variables:
                average = self._averages.get(id(variable))
                if average is not None:
                    average.copy_(variable.detach())


class FinalizeEMA(Callback):
    """Put first in ``fit``'s callbacks when the optimizer has ``use_ema``: at the end of training
    the weights take their averages (Keras's ``finalize_variable_values``), before the other
    callbacks' ``on_train_end`` see them, as in Keras."""

    def __init__(self, optimizer: EMAMixin) -> None:
        super().__init__()
        self.optimizer = optimizer

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.optimizer.finalize_variable_values(self.optimizer._trainable_variables)
