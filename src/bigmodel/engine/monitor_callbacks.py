"""Callbacks that watch a logged quantity: ``EarlyStopping``, ``ModelCheckpoint``,
``ReduceLROnPlateau`` (Keras 3 semantics and argument names).

They use only the protocol of ``docs/INTERFACES.md`` on ``self.model`` (``stop_training``,
``optimizer``, ``save``, ``get_weights``, ``set_weights``; ``save_weights`` and ``metrics`` when
present), so they serve a Keras ``Model`` and an ``engine.Trainer`` alike. Import them from
``bigmodel.engine.callbacks``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bigmodel.engine.callback_base import Callback
from bigmodel.engine.schedules import get_learning_rate, set_learning_rate
from bigmodel.errors import ConfigError


def _model_metrics(model: Any) -> list[Any]:
    """The metric objects a model exposes (containers with ``.metrics`` are flattened)."""
    found = []
    for metric in getattr(model, "metrics", None) or ():
        inner = getattr(metric, "metrics", None)
        found.extend(inner if isinstance(inner, (list, tuple)) else [metric])
    return found


_MAXIMIZED_WORDS = ("acc", "auc", "precision", "recall", "f1", "fmeasure", "iou")
_MINIMIZED_WORDS = ("loss", "error", "crossentropy", "mae", "mse", "mape", "msle", "hinge")


def infer_direction(monitor: str, model: Any = None) -> str | None:
    """``"up"``/``"down"`` for a monitored quantity, or ``None`` when it cannot be told.

    Keras 3's order: ``loss`` is minimized; a model metric of that name with ``_direction`` decides;
    then (bigmodel addition, for models that list no metrics) the name's usual words.
    """
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "down"
    for metric in _model_metrics(model):
        if getattr(metric, "name", None) == name and hasattr(metric, "_direction"):
            return "up" if metric._direction == "up" else "down"
    lowered = name.lower()
    if any(word in lowered for word in _MINIMIZED_WORDS):
        return "down"
    if any(word in lowered for word in _MAXIMIZED_WORDS):
        return "up"
    return None


class _MonitorCallback(Callback):
    """Keras 3 ``MonitorCallback``: picks min/max for ``monitor`` and judges improvements."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline: float | None = None,
                 min_delta: float = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Callable[[float, float], bool] | None = None

    def _set_monitor_op(self) -> None:
        direction = {"min": "down", "max": "up"}.get(self.mode) or infer_direction(self.monitor, self.model)
        if direction is None:
            raise ConfigError(
                f"{type(self).__name__} callback received monitor={self.monitor}, but cannot tell "
                "whether that metric should be maximized or minimized. Pass `mode='max'` to monitor "
                "the highest value, or `mode='min'` for the lowest."
            )
        if direction == "down":
            self.monitor_op = lambda a, b: a < b
            self.min_delta = -abs(self.min_delta)
        else:
            self.monitor_op = lambda a, b: a > b
            self.min_delta = abs(self.min_delta)

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(_MonitorCallback):
    """Stop training when ``monitor`` has stopped improving (Keras 3 semantics and arguments).

    Args:
        monitor: key in the epoch logs, e.g. ``"val_loss"``, ``"val_accuracy"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints when stopping / restoring.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        baseline: training stops unless the monitored value beats it within ``patience`` epochs.
        restore_best_weights: at the end, put back the weights of the best epoch.
        start_from_epoch: epochs to wait before monitoring (warm-up).

    Raises:
        ConfigError: ``mode="auto"`` and the direction of ``monitor`` cannot be inferred (at the
            first epoch end). A monitor missing from the logs only warns.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0) -> None:
        super().__init__(monitor, mode, None, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: Any = None

    def on_train_begin(self, logs=None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = _monitor_value(logs, self.monitor, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first epoch is the best so far
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only a value that also beats the baseline restarts the patience count.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_state(self) -> dict[str, Any]:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def set_state(self, state: dict[str, Any]) -> None:
        for key in ("wait", "stopped_epoch", "best", "best_epoch", "best_weights"):
            setattr(self, key, state.get(key, getattr(self, key)))


def _monitor_value(logs: dict[str, float] | None, monitor: str, what: str) -> float | None:
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{what} conditioned on metric `{monitor}` which is not available. "
                      f"Available metrics are: {','.join(logs)}", stacklevel=3)
        return None
    return float(value)


class ModelCheckpoint(_MonitorCallback):
    """Save the model (``model.save(path)``) or its weights (``save_weights``) while training (Keras 3).

    Args:
        filepath: path, formatted with ``epoch`` (1-based), ``batch`` and the logs, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.safetensors"``.
        monitor: quantity compared when ``save_best_only``.
        verbose: 1 prints each decision.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: call ``model.save_weights`` when the model has it (else ``save``).
        mode: ``"auto"``, ``"min"``, ``"max"``.
        save_freq: ``"epoch"`` or a number of batches.
        initial_value_threshold: a value the monitored quantity must beat first.

    Raises:
        ConfigError: ``save_freq`` is neither ``"epoch"`` nor a positive int.
        KeyError: ``filepath`` names a key that is not in the logs.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, initial_value_threshold)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ConfigError(
                f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or integer values"
            )
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self.wants_batch_hooks = save_freq != "epoch"
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.save_freq == "epoch":
            return
        # A batch index not above the last one means a new epoch began.
        added = batch + 1 if batch <= self._last_batch_seen else batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _file_path(self, epoch: int, batch: int | None, logs: dict[str, float]) -> str:
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as err:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {err}') from None

    def _should_save(self, epoch: int, logs: dict[str, float], filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(float(current), self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{float(current):.5f}, saving model to {filepath}")
            self.best = float(current)
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch: int, batch: int | None, logs: dict[str, float] | None) -> None:
        logs = dict(logs or {})
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise ConfigError(f"ModelCheckpoint filepath is an existing directory: {filepath}; "
                              "pass a file path")
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only and hasattr(self.model, "save_weights"):
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def get_state(self) -> dict[str, Any]:
        return {"best": self.best, "batches_since_save": self._batches_seen_since_last_saving}

    def set_state(self, state: dict[str, Any]) -> None:
        self.best = state.get("best", self.best)
        self._batches_seen_since_last_saving = state.get("batches_since_save", 0)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs (Keras 3).

    In ``mode="auto"`` the rate is reduced when the value stops decreasing, unless the monitor's
    name contains ``acc`` (then: stops increasing) -- Keras's rule. Adds ``learning_rate`` to the
    epoch logs.

    Args:
        monitor: quantity to watch.
        factor: new_lr = lr * factor (< 1).
        patience: epochs without improvement before reducing.
        verbose: 1 prints each reduction.
        mode: ``"auto"``, ``"min"``, ``"max"``.
        min_delta: threshold for a significant change.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: lower bound on the rate.

    Raises:
        ConfigError: ``factor >= 1``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs) -> None:
        super().__init__()
        if factor >= 1.0:
            raise ConfigError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if kwargs:
            raise ConfigError(f"ReduceLROnPlateau got unknown arguments: {sorted(kwargs)}")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        if self.mode not in ("auto", "min", "max"):
            warnings.warn(f"Learning rate reduction mode {self.mode} is unknown, fallback to auto mode.",
                          stacklevel=2)
            self.mode = "auto"
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs if logs is not None else {}
        logs["learning_rate"] = get_learning_rate(self.model.optimizer)
        current = _monitor_value(logs, self.monitor, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = get_learning_rate(self.model.optimizer)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    set_learning_rate(self.model.optimizer, new_lr)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def get_state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state: dict[str, Any]) -> None:
        self.best = state.get("best", self.best)
        self.wait = state.get("wait", 0)
        self.cooldown_counter = state.get("cooldown_counter", 0)


__all__ = ["EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "infer_direction"]
