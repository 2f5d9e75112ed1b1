"""The ``Trainer``'s ``evaluate`` and ``predict``: no-grad passes over batches, under the trainer's
autocast and memory format, leaving the model's train/eval mode as it found it.

A mixin of :class:`bigmodel.engine.trainer.Trainer`; it uses the trainer's ``model``, ``loss``,
``metrics``, ``device``, ``verbose`` and the ``_forward``/``_unpack``/``_autocast`` helpers of
:mod:`bigmodel.engine.trainer_step`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

from bigmodel.data.batching import batch_size_of, make_batches, num_batches, tree_map
from bigmodel.engine.inference import predict_batches
from bigmodel.engine.metrics import RunningLoss
from bigmodel.engine.progress import ProgressBar
from bigmodel.errors import ConfigError, DataError


class InferenceMixin:
    """``evaluate`` and ``predict`` of a :class:`~bigmodel.engine.trainer.Trainer`."""

    def evaluate(self, data: Any, batch_size: int = 32, *, verbose: int | None = None) -> dict[str, float]:
        """Mean loss and metrics over ``data`` (same forms as ``fit``'s ``train``).

        Returns:
            ``{"loss": ..., <metric name>: ...}``.
        """
        if self.loss is None:
            raise ConfigError("This trainer was built without a loss; evaluate needs one")
        batches = make_batches(data, batch_size, False, None, self.device, "evaluate")
        started = time.perf_counter()
        logs = self._evaluate_batches(batches)
        ProgressBar(self.verbose if verbose is None else verbose).summary(
            num_batches(batches) or 0, time.perf_counter() - started, logs)
        return logs

    def _evaluate_batches(self, batches: Iterable) -> dict[str, float]:
        model, metrics = self.model, self.metrics
        was_training = model.training
        model.eval()
        for metric in metrics:
            metric.reset()
        tracker = RunningLoss()
        try:
            with torch.no_grad():
                for batch in batches:
                    x, y, weight = self._unpack(batch, "evaluate")
                    with self._autocast():
                        outputs, loss = self._forward(x, y, weight)
                    tracker.pending.append(loss.detach())
                    tracker.sizes.append(batch_size_of(y))
                    for metric in metrics:
                        metric.update(outputs, y)
        finally:
            model.train(was_training)
        if not tracker.pending:
            raise DataError("evaluation data produced no batches")
        return self._reduce_logs(
            {"loss": tracker.mean(), **{metric.name: metric.result() for metric in metrics}}, tracker)

    def predict(self, x: Any, batch_size: int = 32, *, verbose: int | None = None) -> Any:
        """Model outputs for ``x``, concatenated on the CPU (float32 under mixed precision).

        Args:
            x: an array/tensor ``(N, ...)``, a tuple/list/dict of them (multi-input), a Dataset
                (items ``x`` or ``(x, y)``), a DataLoader or an iterable of batches.

        Returns:
            A tensor ``(N, ...)`` (a tuple of tensors when the model returns tuples).
        """
        started = time.perf_counter()
        batches = make_batches(x, batch_size, False, None, self.device, "predict", require_targets=False)
        cast = self._autocast_dtype is not None
        count = 0

        model, channels_last = self.model, self.channels_last

        def forward(inputs: Any) -> Any:
            nonlocal count
            count += 1
            if not cast:  # full precision: no autocast context, nothing to cast back
                return model(self._to_memory_format(inputs) if channels_last else inputs)
            with self._autocast():
                out = model(self._to_memory_format(inputs))
            # Mixed precision hands back float32, as the model's own dtype would.
            return tree_map(lambda t: t.float() if t.is_floating_point() else t, out)

        # no_grad rather than inference mode: a model may build weights or caches on its first call.
        outputs = predict_batches(self.model, batches, batch_size, device=self.device, forward=forward,
                                  inference_mode=False, name="predict")
        ProgressBar(self.verbose if verbose is None else verbose).summary(count, time.perf_counter() - started, {})
        return outputs

__all__ = ["InferenceMixin"]
