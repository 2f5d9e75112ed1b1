"""``keras.Model``'s ``fit``, ``evaluate`` and ``predict``: the Keras calling conventions
(arguments, input standardization, the stable softmax cross-entropy on logits, regularization
penalties and ``add_loss`` losses, precision policies, torchrun processes) translated into the
engine's :class:`~bigmodel.engine.Trainer`. ``Model`` (``keras/model.py``) inherits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigmodel.data.batching import tree_map
from bigmodel.errors import (
    ConfigError,
    DataError,
    NotSupportedError,
)
from bigmodel.keras import config as keras_config
from bigmodel.keras import distributed_fit, distributed_steps
from bigmodel.keras import metrics as metrics_mod
from bigmodel.keras import optimizers as optimizers_mod
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.layer_state import LOSS_LAYERS
from bigmodel.keras.layers.symbolic import get_keras_mask
from bigmodel.keras.metric_adapters import MaskedMetric, OnProbabilities, mask_weights
from bigmodel.keras.model_classes import model_class
from bigmodel.keras.model_data import check_arguments, is_array_like
from bigmodel.keras.model_inputs import (
    num_samples,
    slice_data,
    standardize_inputs,
)
from bigmodel.keras.optimizer_ema import FinalizeEMA
from bigmodel.keras.string_inputs import string_batches
from bigmodel.keras.trainer_steps import evaluate_with_steps, fit_with_steps, predict_with_steps

__all__ = ["TrainingMixin"]


def _capped_arrays(x: Any, y: Any, sample_weight: Any, batch_size: int) -> tuple[Any, Any, Any]:
    """``evaluate`` / ``predict`` data under ``keras.config.set_max_steps_per_epoch``: the first
    ``cap`` batches of arrays, as Keras's epoch iterator stops there (datasets pass unchanged)."""
    if not keras_config.max_steps_per_epoch() or x is None or not is_array_like(x):
        return x, y, sample_weight
    count = keras_config.capped_steps(None) * batch_size

    def cut(part: Any) -> Any:
        if isinstance(part, dict):
            return {key: cut(value) for key, value in part.items()}
        if isinstance(part, (list, tuple)) and part and hasattr(part[0], "shape"):
            return type(part)(cut(value) for value in part)  # several inputs
        if isinstance(part, list):  # a plain list of numbers is one array
            part = np.asarray(part)
        return part if part is None else part[:count]

    return cut(x), cut(y), cut(sample_weight)


class TrainingMixin:
    """``fit``/``evaluate``/``predict`` of ``keras.Model`` (a mixin: ``Model`` provides the
    structure, ``compile`` state and the calling of its layers)."""

    # ----------------------------------------------------------------------------- training
    def _logits_loss(self) -> bool:
        """True when the output layer's activation matches the loss's logits form."""
        layers = self.layers
        if self.loss is None or self.loss.from_logits or not layers:
            return False
        last = layers[-1]
        act = getattr(last, "activation", None)
        kind = getattr(act, "_bigmodel_kind", None) or getattr(act, "__name__", None)
        return (self.loss.logits_of is not None and kind == self.loss.logits_of
                and hasattr(last, "call_logits") and type(self).call is not model_class("Model").call
                and getattr(type(self), "_supports_logits", False))

    def _engine_precision(self) -> str:
        """The engine precision of this model's ``dtype_policy`` (see keras.mixed_precision)."""
        from bigmodel.keras import mixed_precision

        return mixed_precision.engine_precision(self._compute_policy())

    def _compute_policy(self) -> Any:
        from bigmodel.keras import mixed_precision

        # a model restored without Layer.__init__ (e.g. by copy) computes in float32
        return getattr(self, "_dtype_policy", None) or mixed_precision.Policy("float32")

    def _refuse_step_loop_options(self) -> None:
        """Keras's step loop (custom ``train_step``, several outputs, ...) has no mixed precision
        or gradient accumulation: refuse them rather than ignore them."""
        if getattr(self.optimizer, "gradient_accumulation_steps", None) or \
                self._compute_policy().name != "float32":
            raise NotSupportedError(
                f"fit: model '{self.name}' trains through Keras's step loop (several outputs, "
                f"custom train_step, weighted_metrics with sample_weight), which does not support "
                f"dtype policy {self._compute_policy().name!r} or gradient_accumulation_steps="
                f"{getattr(self.optimizer, 'gradient_accumulation_steps', None)}")

    def _setup_trainer(self, x_sample: torch.Tensor, y_sample: torch.Tensor | None) -> None:
        from bigmodel.engine import Trainer

        if not self.built:
            self._build_on(standardize_inputs(self, x_sample))
            self.built = True
        self._require_built("fit")
        if self._metrics is None:
            out_shape = self.compute_output_shape(self._sample_shape(x_sample))
            label_shape = tuple(y_sample.shape) if y_sample is not None else None
            self._metrics = [metrics_mod.get(m, label_shape, out_shape) for m in self._metric_ids]
            if self._compile_metrics is not None:
                # model.metrics reads the very objects the engine updates (never stale)
                self._compile_metrics.use_metrics(self._metrics)
        if self._trainer is not None:
            return
        if isinstance(self.optimizer, optimizers_mod.Optimizer):
            if not self.optimizer.built:
                # the model too: a MultiOptimizer maps weights by their Keras paths
                self.optimizer.build(self.parameters(), model=self)
            torch_optimizer = self.optimizer.torch_optimizer
        else:
            torch_optimizer = self.optimizer
        use_logits = self._logits_loss()
        loss = self.loss.with_logits() if use_logits else self.loss
        metric_objs = self._metrics
        if use_logits:
            metric_objs = [OnProbabilities(m, self.loss.logits_of) for m in self._metrics]
        metric_objs = [MaskedMetric(m, self) for m in metric_objs]
        weight = self._loss_weight

        def loss_fn(outputs: torch.Tensor, targets: torch.Tensor,
                    sample_weight: torch.Tensor | None = None) -> torch.Tensor:
            # A timestep mask on the outputs (Embedding(mask_zero)/Masking -> RNN(return_sequences))
            # weights the loss and the metrics of this batch, as Keras 3 does.
            mask = get_keras_mask(outputs)
            self._output_mask = mask
            if mask is not None:
                sample_weight = mask_weights(mask, sample_weight)
            value = loss(targets, outputs, sample_weight)
            return value if weight == 1.0 else value * weight

        has_penalties = any(
            isinstance(m, Layer) and (m._weight_regularizers or m.activity_regularizer is not None)
            for m in self.modules())

        def extra_loss() -> Any:
            # Regularization penalties and add_loss() values of this step's forward pass.
            if not (has_penalties or LOSS_LAYERS):
                return 0.0
            found = self.losses
            return torch.stack([p.reshape(()) for p in found]).sum() if found else 0.0

        # keras.mixed_precision policy -> engine precision; the optimizer's Keras 3
        # gradient_accumulation_steps -> the engine's accumulation (single process and torchrun).
        accum = getattr(self.optimizer, "gradient_accumulation_steps", None) or 1
        self._trainer = Trainer(self, loss=loss_fn, optimizer=torch_optimizer,
                                metrics=metric_objs, extra_loss=extra_loss,
                                callback_model=self, verbose=1,
                                strategy=distributed_fit.trainer_strategy(self),
                                precision=self._engine_precision(), grad_accum_steps=accum)
        self._trainer.stop_training = self._stop_training
        self._use_logits = use_logits

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Sequence[Any] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: dict[int, float] | None = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1) -> Any:
        """Train (Keras signature). Returns a ``History`` whose ``.history`` maps names to lists.

        ``x`` may be arrays/tensors (with ``y``), a ``torch.utils.data.Dataset``, a ``DataLoader``
        or an iterable of ``(x, y)`` batches.

        Raises:
            DataError: empty data, x/y length mismatch, labels out of range, NaN inputs.
            ConfigError: not compiled, bad validation_split, an argument out of range.
            InputTypeError: an argument of the wrong type (``epochs='2'``), named in the message.
        """
        self._require_compiled("fit")
        check_arguments("fit", epochs=epochs, batch_size=batch_size, verbose=verbose,
                        validation_split=validation_split, initial_epoch=initial_epoch,
                        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                        validation_batch_size=validation_batch_size, validation_freq=validation_freq)
        # keras.config.set_max_epochs / set_max_steps_per_epoch: debugging caps, as Keras's trainer
        epochs = keras_config.capped_epochs(epochs)
        steps_per_epoch = keras_config.capped_steps(steps_per_epoch)
        batch_size = 32 if batch_size is None else int(batch_size)
        val_weights = validation_data[2] if isinstance(validation_data, (tuple, list)) \
            and len(validation_data) == 3 else None
        x = self._discover_outputs(x, "train", "fit")  # a subclassed model's outputs
        steps = self._needs_steps("train") or self._weighs_metrics(sample_weight, val_weights)
        if steps and class_weight is not None:
            raise ConfigError(f"fit: class_weight is not supported for model '{self.name}', "
                              "which trains through Keras's step loop (several outputs, custom "
                              "train_step, weighted_metrics with sample_weight); pass "
                              "sample_weight instead")
        distributed_fit.check_global_batch(batch_size, "fit")  # torchrun: batch_size is global
        if steps:
            self._refuse_step_loop_options()
        callbacks = distributed_fit.rank_callbacks(callbacks or [], self)
        if epochs > 0 and getattr(self.optimizer, "use_ema", False):  # Keras: weights := average
            callbacks = [FinalizeEMA(self.optimizer), *callbacks]
        if is_array_like(x):
            x, y, sample_weight = self._standardize_data(x, y, sample_weight, "fit",
                                                         targets=not steps)
            val = None
            if validation_data is not None:
                val = self._validation_tuple(validation_data)
            elif validation_split:
                # Keras takes the last fraction of the data, before any shuffling.
                count = num_samples(x)
                split = int(count * (1.0 - validation_split))
                if split == 0 or split == count:
                    raise DataError(f"validation_split={validation_split} leaves an empty "
                                    f"training or validation set for {count} samples")
                val = tuple(slice_data(part, split, None) for part in (x, y, sample_weight))
                x, y, sample_weight = (slice_data(part, None, split)
                                       for part in (x, y, sample_weight))
                val = val if val[2] is not None else val[:2]
            if steps:
                return self._fit_with_steps(x, y, sample_weight, batch_size, epochs, verbose,
                                            callbacks, val, shuffle, initial_epoch,
                                            steps_per_epoch)
            train = (x, y) if sample_weight is None else (x, y, sample_weight)
            x_sample, y_sample = slice_data(x, None, batch_size), y[:batch_size]
        elif steps:
            return self._fit_with_steps(x, y, sample_weight, batch_size, epochs, verbose,
                                        callbacks, validation_data, shuffle, initial_epoch,
                                        steps_per_epoch)
        else:
            if y is not None:
                raise DataError("fit: y must not be given when x is a Dataset, DataLoader or "
                                "generator (it yields the targets)")
            train, x_sample, y_sample = self._peek(x)
            val = self._validation_tuple(validation_data) if validation_data is not None else None
        self._setup_trainer(x_sample, y_sample)
        self._check_class_weight(class_weight, x_sample, sample_weight)
        trainer = self._trainer
        trainer.verbose = 1 if verbose == "auto" else int(verbose)
        self._stop_training = False
        trainer.stop_training = False
        self._logits_mode = self._use_logits
        was_training = self.training
        try:
            history = trainer.fit(train, val=val, epochs=epochs, batch_size=batch_size,
                                  shuffle=shuffle, callbacks=list(callbacks or []),
                                  initial_epoch=initial_epoch, class_weight=class_weight,
                                  steps_per_epoch=steps_per_epoch)
        finally:
            self._logits_mode = False
            self.train(was_training)  # direct calls after fit run in inference mode again (Keras)
        history.model = self
        self.history = history
        losses = history.history.get("val_loss") or history.history.get("loss")
        if losses:  # the last loss computed, as Keras's loss tracker holds it
            self._track_loss(losses[-1])
        return history

    def _track_loss(self, value: float) -> None:
        if self._loss_tracker is not None:
            self._loss_tracker.reset_state()
            self._loss_tracker.update_state(torch.tensor(float(value)))

    def _fit_with_steps(self, x: Any, y: Any, sample_weight: Any, batch_size: int, epochs: int,
                        verbose: Any, callbacks: Any, validation_data: Any, shuffle: bool,
                        initial_epoch: int, steps_per_epoch: int | None) -> Any:
        """``fit`` through Keras's step loop (custom ``train_step``, ``add_loss`` models,
        several outputs): see keras/trainer_steps.py. Arrays come standardized by ``fit``."""
        val = None
        if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            val_x, val_y, *rest = validation_data
            val = (val_x, val_y, rest[0] if rest else None)
        elif validation_data is not None:  # a Dataset, DataLoader or iterable of batches
            val = (validation_data, None, None)
        callbacks = list(callbacks or [])
        # torchrun: each process steps on its share of every batch (keras/distributed_steps.py)
        was_training = self.training
        with distributed_steps.step_sync(self, callbacks, "fit") as sync:
            verbose = 1 if verbose == "auto" else int(verbose)
            try:
                self.history = fit_with_steps(
                    self, x, y, sample_weight, batch_size, epochs,
                    0 if sync is not None and sync.rank else verbose,  # one progress bar (rank 0)
                    callbacks, val, shuffle, initial_epoch, steps_per_epoch, sync)
            finally:
                self.train(was_training)  # direct calls after fit: inference mode again (Keras)
        self.history.model = self
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: Any = "auto", sample_weight: Any = None, steps: int | None = None,
                 callbacks: Any = None, return_dict: bool = False) -> Any:
        """Loss and metrics on data: a float, a list ``[loss, *metrics]``, or a dict."""
        self._require_compiled("evaluate")
        check_arguments("evaluate", batch_size=batch_size, verbose=verbose, steps=steps)
        batch_size = 32 if batch_size is None else int(batch_size)
        x, y, sample_weight = _capped_arrays(x, y, sample_weight, batch_size)
        x = self._discover_outputs(x, "test", "evaluate")
        steps = bool(callbacks) or self._needs_steps("test") or self._weighs_metrics(sample_weight)
        distributed_fit.check_global_batch(batch_size, "evaluate")
        if steps:
            callbacks = distributed_fit.rank_callbacks(list(callbacks or []))
        if is_array_like(x):
            x, y, sample_weight = self._standardize_data(x, y, sample_weight, "evaluate",
                                                         targets=not steps)
        if steps:
            with distributed_steps.step_sync(self, callbacks, "evaluate") as sync:
                verbose = 1 if verbose == "auto" else int(verbose)
                logs = evaluate_with_steps(self, x, y, sample_weight, batch_size,
                                           0 if sync is not None and sync.rank else verbose,
                                           callbacks, sync)
            return logs if return_dict else self._ordered_results(logs)
        if is_array_like(x):
            data = (x, y) if sample_weight is None else (x, y, sample_weight)
            x_sample, y_sample = slice_data(x, None, batch_size), y[:batch_size]
        else:
            data, x_sample, y_sample = self._peek(x)
        self._setup_trainer(x_sample, y_sample)
        self._logits_mode = self._use_logits
        try:
            logs = distributed_fit.evaluate(self._trainer, data, batch_size,
                                            1 if verbose == "auto" else int(verbose))
        finally:
            self._logits_mode = False
        self._track_loss(logs["loss"])
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                steps: int | None = None, callbacks: Any = None) -> Any:
        """Model outputs for ``x`` as a NumPy array (probabilities for a softmax output); a list
        (or a dict, for dict outputs) of arrays for a model with several outputs."""
        from bigmodel.engine import Trainer

        check_arguments("predict", batch_size=batch_size, verbose=verbose, steps=steps)
        batch_size = 32 if batch_size is None else int(batch_size)
        x, _, _ = _capped_arrays(x, None, None, batch_size)
        distributed_fit.check_global_batch(batch_size, "predict")
        x = self._discover_outputs(x, "predict", "predict")
        x = string_batches(x)  # a text dataset: strings as interned ids
        if callbacks or self._needs_steps("predict"):
            callbacks = distributed_fit.rank_callbacks(list(callbacks or []))
            verbose = 1 if verbose == "auto" else int(verbose)
            arrays = is_array_like(x)
            if arrays:
                x, _, _ = self._standardize_data(x, None, None, "predict", targets=False)
            if distributed_fit.is_distributed():  # the whole result on every process
                return distributed_steps.predict(self, x, batch_size, verbose, callbacks, arrays)
            return predict_with_steps(self, x, batch_size, verbose, callbacks)
        if is_array_like(x):
            x, _, _ = self._standardize_data(x, None, None, "predict", targets=False)
        if not self.built:
            sample = x[:1] if isinstance(x, torch.Tensor) else self._peek(x)[1]
            self._build_on(self._standardize_input(sample))
            self.built = True
        trainer = self._trainer or Trainer(self, loss=None, optimizer=None, verbose=0,
                                           precision=self._engine_precision())
        self._logits_mode = False
        if distributed_fit.is_distributed() and is_array_like(x):  # the whole result everywhere
            out = distributed_fit.predict_sharded(trainer, x, batch_size,
                                                  1 if verbose == "auto" else int(verbose))
            return tree_map(lambda t: t.numpy(), out)
        out = trainer.predict(x, batch_size=batch_size,
                              verbose=1 if verbose == "auto" else int(verbose))
        return tree_map(lambda t: t.numpy(), out)
