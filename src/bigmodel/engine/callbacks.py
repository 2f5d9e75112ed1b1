"""Training callbacks, shared by the engine's ``Trainer`` and the Keras surface.

The hook names and ``logs`` dicts are Keras's, so a Keras callback ports unchanged. ``self.model`` is
whatever object the user trains through: a ``bigmodel.keras.Model`` or an ``engine.Trainer``. Both
expose ``stop_training`` (bool, settable), ``optimizer`` (a ``torch.optim.Optimizer``),
``save(path)``, ``get_weights()`` and ``set_weights(w)``; the callbacks below use nothing else
(``save_weights`` and ``metrics`` only when present).

Callbacks whose state matters for resuming a run offer ``get_state()``/``set_state(state)``
(JSON values and tensors); the trainer stores it in its checkpoints.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch.distributed as dist

from bigmodel.engine.callback_base import Callback, CallbackList, History, needs_batch_hooks

# The callbacks that watch a logged quantity live in their own module; importable from here.
from bigmodel.engine.monitor_callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    infer_direction,
)
from bigmodel.engine.schedules import get_learning_rate, set_learning_rate
from bigmodel.errors import ConfigError
from bigmodel.utils.io import atomic_write_text


class CSVLogger(Callback):
    """Stream epoch results to a CSV file, one row per epoch (Keras 3 columns and order).

    Columns are ``epoch`` then the sorted log keys of the first epoch (plus ``val_`` twins when the
    first epoch had no validation). The file is flushed and synced after every row, so a crash
    loses at most the epoch being written. A ``Trainer.fit(resume=True)`` that restored a checkpoint
    first drops the rows of epochs at or past the restored one (written before a kill that came
    before their checkpoint), so they are not logged twice. Under ``torch.distributed`` only
    rank 0 writes.

    Args:
        filename: CSV path.
        separator: field separator.
        append: append to an existing file (header written only when it is empty).
    """

    def __init__(self, filename, separator=",", append=False) -> None:
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer: csv.DictWriter | None = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = self.writer = None
        if _distributed_rank() != 0:
            return  # every process sees the same (averaged) logs; rank 0 writes them
        if self.append and self.params.get("resume") and os.path.exists(self.filename):
            _drop_rows_from(self.filename, int(self.params.get("initial_epoch", 0)), self.sep)
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as handle:
                self.append_header = not bool(len(handle.readline()))
        else:
            self.append_header = True
        directory = os.path.dirname(self.filename)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.csv_file is None:
            return  # not rank 0
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend(["val_" + key for key in self.keys])
        if self.writer is None:
            dialect = type("_Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())

    def on_train_end(self, logs=None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _distributed_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _drop_rows_from(filename: str, epoch: int, separator: str) -> None:
    """Rewrite ``filename`` (atomically) without the rows of epochs ``>= epoch`` and without a
    partly written last line; left as it is when it has no ``epoch`` column."""
    with open(filename, encoding="utf-8", newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader([lines[0]], delimiter=separator))
    if "epoch" not in header:
        return
    column = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        cells = next(csv.reader([line], delimiter=separator), [])
        try:
            complete = line.endswith(("\n", "\r")) and int(cells[column]) < epoch
        except (IndexError, ValueError):
            complete = False
        if complete:
            kept.append(line)
    if len(kept) < len(lines):
        atomic_write_text(filename, "".join(kept))


def _csv_value(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f"\"[{', '.join(map(str, value))}]\""
    return value


class TensorBoard(Callback):
    """Write scalars to TensorBoard event files (``torch.utils.tensorboard``), Keras 3 layout.

    Epoch values go to ``log_dir/train`` and ``log_dir/validation`` as ``epoch_<name>`` (with
    ``epoch_learning_rate``); with ``update_freq="batch"`` or ``N``, the running training values
    every N batches as ``batch_<name>``.

    Args:
        log_dir: directory of the event files.
        update_freq: ``"epoch"``, ``"batch"`` or a number of batches.

    Raises:
        ConfigError: the ``tensorboard`` package is not installed, or ``update_freq`` is invalid.
    """

    def __init__(self, log_dir="logs", update_freq="epoch") -> None:
        super().__init__()
        try:
            # Imported here: tensorboard is optional.
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError(
                "The TensorBoard callback needs the 'tensorboard' package: pip install tensorboard"
            ) from err
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ConfigError(f"update_freq must be 'epoch', 'batch' or a positive int; received {update_freq!r}")
        self._writer_class = SummaryWriter
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self.wants_batch_hooks = update_freq != "epoch"
        self._writers: dict[str, Any] = {}
        self._batches = 0

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            self._writers[name] = self._writer_class(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None) -> None:
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.update_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.update_freq == 0:
            writer = self._writer("train")
            for key, value in (logs or {}).items():
                writer.add_scalar(f"batch_{key}", float(value), self._batches)

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = get_learning_rate(optimizer)
        for key, value in logs.items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(split).add_scalar(f"epoch_{name}", float(value), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``).

    Args:
        schedule: function of the 0-based epoch and the current rate, returning a float.
        verbose: 1 prints each change.

    Raises:
        ConfigError: ``schedule`` returned something other than a real number.
    """

    def __init__(self, schedule, verbose=0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        try:
            parameters = inspect.signature(schedule).parameters.values()
            positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            self._takes_lr = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)
        except (TypeError, ValueError):
            self._takes_lr = True

    def on_epoch_begin(self, epoch, logs=None) -> None:
        optimizer = self.model.optimizer
        if self._takes_lr:
            rate = self.schedule(epoch, get_learning_rate(optimizer))
        else:
            rate = self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise ConfigError(f"The output of the `schedule` function should be a float. Got: {rate}")
        set_learning_rate(optimizer, float(rate))
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite (reads the loss after every batch)."""

    wants_batch_hooks = True

    def on_train_batch_end(self, batch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
          "on_train_batch_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end")


class LambdaCallback(Callback):
    """A callback built from functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Each argument replaces the hook of that name (same signature as the hook). Keras 2 names
    ``on_batch_begin``/``on_batch_end`` map to the training-batch hooks.

    Raises:
        ConfigError: an argument is not a hook name or not callable.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs) -> None:
        super().__init__()
        aliases = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin, "on_train_batch_end": on_train_batch_end}
        for key, fn in kwargs.items():
            hooks[aliases.get(key, key)] = fn
        for key, fn in hooks.items():
            if fn is None:
                continue
            if key not in _HOOKS or not callable(fn):
                raise ConfigError(f"LambdaCallback: {key}={fn!r} is not a callable for a known hook "
                                  f"({', '.join(_HOOKS)})")
            setattr(self, key, fn)


__all__ = [
    "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN",
    "infer_direction", "needs_batch_hooks",
]
