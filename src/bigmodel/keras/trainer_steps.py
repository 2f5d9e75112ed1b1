"""Keras 3's step methods and the loop that calls them, for models that customize training.

``Model.fit/evaluate/predict`` run on the engine's ``Trainer`` (the fast path) unless the model
overrides ``train_step``/``test_step``/``predict_step``/``compute_loss``, was compiled without a
loss (``add_loss`` models) or with several outputs, or ``evaluate``/``predict`` get callbacks. Then
this module's loop runs: each batch goes to the step method, exactly as in Keras 3 on the torch
backend (``keras/src/backend/torch/trainer.py``): the default ``train_step`` calls the model,
``compute_loss``, ``loss.backward()`` and ``optimizer.apply(gradients, trainable_weights)``, then
updates and returns the metrics; callbacks see every hook (batch hooks included).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bigmodel.data.batching import (
    ArrayBatches,
    is_array_structure,
    make_batches,
    num_batches,
    to_tensors,
    tree_leaves,
)
from bigmodel.engine.callbacks import CallbackList, History
from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.engine.progress import ProgressBar
from bigmodel.errors import ConfigError, DataError

__all__ = ["StepsMixin", "evaluate_with_steps", "fit_with_steps", "predict_with_steps",
           "unpack_x_y_sample_weight"]


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from a batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise DataError(f"Data is expected to be (x,), (x, y) or (x, y, sample_weight); received a "
                    f"tuple of {len(data)} elements")


def _batch_size(x: Any) -> int:
    """Samples in a batch of inputs: the loss is averaged over samples, as in Keras."""
    leaves = tree_leaves(x)
    return int(leaves[0].shape[0]) if leaves and leaves[0].dim() else 1


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    return value


def _flat_logs(logs: Any) -> dict[str, Any]:
    """Step results as a flat dict of floats (a dict-valued result, e.g. compile metrics, is
    merged in, as Keras's ``get_metrics_result`` does)."""
    out: dict[str, Any] = {}
    for key, value in dict(logs or {}).items():
        if isinstance(value, dict):
            out.update(_flat_logs(value))
        else:
            out[key] = _to_float(value)
    return out


class StepsMixin:
    """Keras 3's ``train_step``/``test_step``/``predict_step``, ``compute_loss``,
    ``compute_metrics`` and ``metrics`` (a mixin of :class:`bigmodel.keras.Model`)."""

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> torch.Tensor:
        """The compiled loss of ``(y, y_pred)`` plus every ``add_loss``/regularization loss.

        Raises:
            ConfigError: no loss was compiled and no layer added one.
        """
        total = None
        compile_loss = getattr(self, "_compile_loss", None)
        if compile_loss is not None and y is not None:
            total = compile_loss(y, y_pred, sample_weight)
        for extra in self.losses:
            total = extra.reshape(()) if total is None else total + extra.reshape(())
        if total is None:
            raise ConfigError(f"Model '{self.name}': no loss to compute. Pass a loss to "
                              "compile(loss=...) or add one in call() with self.add_loss()")
        return total

    @property
    def compiled_loss(self) -> Any:
        """Keras 2's ``compiled_loss(y, y_pred, sample_weight, regularization_losses=...)``."""
        def compiled(y: Any, y_pred: Any, sample_weight: Any = None,
                     regularization_losses: Any = None) -> torch.Tensor:
            total = self._compile_loss(y, y_pred, sample_weight)
            for extra in regularization_losses or ():
                total = total + extra
            return total
        return compiled

    @property
    def compiled_metrics(self) -> Any:
        return getattr(self, "_compile_metrics", None)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict:
        if self._compile_metrics is not None and y is not None:
            self._compile_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict[str, Any]:
        logs: dict[str, Any] = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                logs.update(result)
            else:
                logs[metric.name] = _to_float(result)
        return logs

    @property
    def metrics(self) -> list[Any]:
        """The loss tracker, the compiled metrics, then metric objects held in attributes."""

        found: list[Any] = []
        if getattr(self, "_loss_tracker", None) is not None:
            found.append(self._loss_tracker)
        if getattr(self, "_compile_metrics", None) is not None:
            found.append(self._compile_metrics)
        if getattr(self, "_compile_loss", None) is not None:
            found.extend(self._compile_loss.metrics)  # per-output losses (several outputs)
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            items = value if isinstance(value, (list, tuple)) else [value]
            found.extend(v for v in items if isinstance(v, EngineMetric)
                         and all(v is not f for f in found))
        return found

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def _call_model(self, x: Any, training: bool) -> Any:
        return self(x, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        self.zero_grad(set_to_none=True)
        y_pred = self._call_model(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True)
        self._loss_tracker.update_state(loss.detach(), sample_weight=_batch_size(x))
        trainable = self.trainable_weights
        if trainable and loss.requires_grad:
            loss.backward()
            with torch.no_grad():
                self.optimizer.apply([w.grad for w in trainable], trainable)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self._call_model(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=False)
        self._loss_tracker.update_state(loss.detach(), sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data: Any) -> Any:
        x, _, _ = unpack_x_y_sample_weight(data)
        return self._call_model(x, training=False)


def _batches(model: Any, x: Any, y: Any, sample_weight: Any, batch_size: int, shuffle: bool,
             what: str) -> Any:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if isinstance(y, dict):  # targets by output name, in the model's output order
        from bigmodel.keras.compile_utils import as_output_list

        y = tuple(as_output_list(y, model._output_names(), "y"))
    if is_array_structure(x):  # arrays standardized by the model (y may be a list per output)
        return ArrayBatches(to_tensors((x, y, sample_weight), prefix=what), batch_size, shuffle,
                            None, device)
    if y is None and sample_weight is None:
        data = x
    else:
        data = (x, y) if sample_weight is None else (x, y, sample_weight)
    return make_batches(data, batch_size, shuffle, None, device, what,
                        require_targets=y is not None)


def _as_step_data(batch: Any, has_targets: bool) -> Any:
    batch = tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)
    if len(batch) == 1 or not has_targets:
        # Keras's pack_x_y_sample_weight: a list/tuple of inputs is wrapped as (x,), so that
        # unpacking does not read its second input as targets.
        return (batch[0],) if isinstance(batch[0], (list, tuple)) else batch[0]
    return batch


def fit_with_steps(model: Any, x: Any, y: Any, sample_weight: Any, batch_size: int, epochs: int,
                   verbose: int, callbacks: list[Any], validation: Any, shuffle: bool,
                   initial_epoch: int, steps_per_epoch: int | None, sync: Any = None) -> History:
    """Keras's ``fit`` loop over ``model.train_step`` (see the module docstring); ``sync``: a
    ``keras.distributed_steps.StepSync`` under several processes (shares batches, reduces logs)."""
    batches = _batches(model, x, y, sample_weight, batch_size, shuffle, "train")
    if sync is not None:
        batches = sync.shard(batches)
    # a Dataset / DataLoader / generator yields (x, y[, w]) batches: its targets come with it
    has_targets = y is not None or not is_array_structure(x)
    steps = num_batches(batches)
    if steps_per_epoch is not None:
        steps = min(steps or steps_per_epoch, steps_per_epoch)
    history = History()
    callback_list = CallbackList([*callbacks, history], model=model,
                                 params={"epochs": epochs, "steps": steps, "verbose": verbose})
    model.stop_training = False
    callback_list.on_train_begin()
    progress = ProgressBar(verbose)
    logs: dict[str, Any] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        if sync is not None:
            sync.begin(epoch)
        callback_list.on_epoch_begin(epoch)
        progress.epoch_begin(epoch, epochs, steps)
        started = time.perf_counter()
        model.train()
        step_logs: dict[str, Any] = {}
        step = 0
        for step, batch in enumerate(batches):
            if steps_per_epoch is not None and step >= steps_per_epoch:
                break
            callback_list.on_train_batch_begin(step)
            step_logs = _flat_logs(model.train_step(_as_step_data(batch, has_targets)))
            if sync is not None:
                step_logs = sync.step_logs(step_logs, _batch_size(batch[0]))
            callback_list.on_train_batch_end(step, step_logs)
            if progress.due(time.perf_counter()):  # live bar, or a line every N s when piped
                progress.update(step + 1, time.perf_counter() - started, step_logs)
            if model.stop_training:
                break
        logs = dict(step_logs) if sync is None else sync.end_logs()
        if sync is not None:
            sync.check_weights(epoch)
        if validation is not None:
            val_x, val_y, val_w = validation
            val_logs = _evaluate_loop(model, val_x, val_y, val_w, batch_size, callback_list, sync)
            logs.update({f"val_{key}": value for key, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, logs)
        progress.epoch_end(step + 1, time.perf_counter() - started, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history


def _evaluate_loop(model: Any, x: Any, y: Any, sample_weight: Any, batch_size: int,
                   callback_list: CallbackList, sync: Any = None) -> dict[str, Any]:
    batches = _batches(model, x, y, sample_weight, batch_size, False, "evaluate")
    if sync is not None:
        batches = sync.shard(batches)
        sync.begin()
    model.reset_metrics()
    callback_list.on_test_begin()
    was_training = model.training
    model.eval()
    logs: dict[str, Any] = {}
    try:
        with torch.no_grad():
            for step, batch in enumerate(batches):
                callback_list.on_test_batch_begin(step)
                logs = _flat_logs(model.test_step(_as_step_data(
                    batch, y is not None or not is_array_structure(x))))
                if sync is not None:
                    logs = sync.step_logs(logs, _batch_size(batch[0]))
                callback_list.on_test_batch_end(step, logs)
    finally:
        model.train(was_training)
    if sync is not None:
        logs = sync.end_logs()
    if not logs:
        logs = _flat_logs(model.get_metrics_result())
    callback_list.on_test_end(logs)
    return logs


def evaluate_with_steps(model: Any, x: Any, y: Any, sample_weight: Any, batch_size: int,
                        verbose: int, callbacks: list[Any], sync: Any = None) -> dict[str, Any]:
    """Keras's ``evaluate`` loop over ``model.test_step``, with the test hooks of callbacks
    (``sync``: as in :func:`fit_with_steps`)."""
    callback_list = CallbackList(list(callbacks), model=model,
                                 params={"verbose": verbose, "epochs": 1, "steps": None})
    started = time.perf_counter()
    logs = _evaluate_loop(model, x, y, sample_weight, batch_size, callback_list, sync)
    ProgressBar(verbose).summary(0, time.perf_counter() - started, logs)
    return logs


def predict_with_steps(model: Any, x: Any, batch_size: int, verbose: int,
                       callbacks: list[Any]) -> Any:
    """Keras's ``predict`` loop over ``model.predict_step``, with the predict hooks."""
    batches = _batches(model, x, None, None, batch_size, False, "predict")
    callback_list = CallbackList(list(callbacks), model=model,
                                 params={"verbose": verbose, "epochs": 1, "steps": None})
    callback_list.on_predict_begin()
    outputs: list[Any] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for step, batch in enumerate(batches):
                callback_list.on_predict_batch_begin(step)
                out = model.predict_step(_as_step_data(batch, False))
                outputs.append(out)
                callback_list.on_predict_batch_end(step, {"outputs": out})
    finally:
        model.train(was_training)
    callback_list.on_predict_end()
    if not outputs:
        raise DataError("predict received no samples")
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat([o.detach().cpu() for o in outputs]).numpy()
    if isinstance(first, (list, tuple)):
        arrays = [torch.cat([o[i].detach().cpu() for o in outputs]).numpy()
                  for i in range(len(first))]
        return arrays if isinstance(first, list) else tuple(arrays)  # Keras keeps a tuple
    if isinstance(first, dict):
        return {k: torch.cat([o[k].detach().cpu() for o in outputs]).numpy() for k in first}
    raise DataError(f"predict_step returned {type(first).__name__}; expected tensors")
