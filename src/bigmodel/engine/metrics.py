"""Streaming metrics with Keras names, defaults and semantics, as PyTorch tensors.

Every metric follows one small protocol (``docs/INTERFACES.md``)::

    metric.name                                   # key in logs / History, Keras default name
    metric.update(y_pred, y_true, sample_weight=None)
    metric.result() -> float
    metric.reset()

Note the argument order: predictions first (the engine's convention), unlike Keras's
``update_state(y_true, y_pred)``. State lives in tensors on the device of the predictions, so
``update`` never synchronizes with the accelerator; only ``result()`` reads a value back.

Per-sample values are averaged like Keras's ``MeanMetricWrapper``: without weights, the mean of all
values; with ``sample_weight`` (shape ``(N,)`` or broadcastable to the values), the weighted mean
``sum(v * w) / sum(w)``. Unlike Keras, a rank-1 batch is not collapsed to one value per batch first,
so the result is the exact per-sample mean even when the last batch is smaller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

# The confusion-count family lives in its own module; importable from here.
from bigmodel.engine.confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from bigmodel.engine.metric_base import Metric, align_targets, broadcast_weight, state_dtype
from bigmodel.errors import InputTypeError, ShapeError, UnknownNameError


class _MeanOfValues(Metric):
    """Averages the per-sample values computed by ``_values`` (Keras ``MeanMetricWrapper``)."""

    def reset(self) -> None:
        self._total: torch.Tensor | None = None
        self._weight_sum: torch.Tensor | None = None
        self._count = 0  # unweighted element count, kept in Python: no tensor op per step

    def _values(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, y_pred, y_true, sample_weight=None) -> None:
        values = self._values(y_pred.detach(), y_true)
        self._accumulate(values, sample_weight)

    def _accumulate(self, values: torch.Tensor, sample_weight: torch.Tensor | None) -> None:
        if self._total is None:
            dtype = state_dtype(values.device)
            self._total = torch.zeros((), dtype=dtype, device=values.device)
            self._weight_sum = torch.zeros((), dtype=dtype, device=values.device)
        if sample_weight is None:
            self._total += values.sum()
            self._count += values.numel()
            return
        weight = torch.as_tensor(sample_weight, device=values.device).to(self._total.dtype)
        while weight.ndim > values.ndim and weight.shape[-1] == 1:
            weight = weight.squeeze(-1)
        if values.ndim > weight.ndim:  # Keras reduces values to the weight's rank by mean
            values = values.to(self._total.dtype).mean(dim=tuple(range(weight.ndim, values.ndim)))
        weight = broadcast_weight(weight, values.shape)
        self._total += (values * weight).sum()
        self._weight_sum += weight.sum()

    def result(self) -> float:
        if self._total is None:
            return 0.0
        denominator = self._count + float(self._weight_sum)
        return float(self._total) / denominator if denominator else 0.0


def _samplewise(values: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis for rank >= 2 (Keras's per-sample reduction), as is for rank 1."""
    return values.float().mean(dim=-1) if values.ndim >= 2 else values


class Mean(_MeanOfValues):
    """Weighted mean of the values passed as the first argument (``update(values, sample_weight=)``)."""

    default_name = "mean"

    def update(self, values, y_true=None, sample_weight=None) -> None:
        self._accumulate(torch.as_tensor(values).detach(), sample_weight)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        self.update(values, None, sample_weight)


class MeanMetricWrapper(_MeanOfValues):
    """Wraps a Keras-style function ``fn(y_true, y_pred) -> per-sample values`` into a metric."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str | None = None,
                 direction: str = "up") -> None:
        self._fn = fn
        self._direction = direction
        super().__init__(name or getattr(fn, "__name__", "metric"))

    def _values(self, y_pred, y_true):
        return torch.as_tensor(self._fn(y_true, y_pred))


class SparseCategoricalAccuracy(_MeanOfValues):
    """Fraction of samples whose arg-max prediction equals the integer label.

    Shapes: ``y_pred`` ``(N, ..., C)`` scores; ``y_true`` ``(N, ...)`` or ``(N, ..., 1)`` class ids.
    """

    default_name = "sparse_categorical_accuracy"

    def _values(self, y_pred, y_true):
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        if y_true.dtype != torch.int64:
            y_true = y_true.long()
        return y_pred.argmax(dim=-1) == y_true


class CategoricalAccuracy(_MeanOfValues):
    """Fraction of samples whose arg-max prediction equals the arg-max of the one-hot label.

    Shapes: ``y_pred`` and ``y_true`` both ``(N, ..., C)``.
    """

    default_name = "categorical_accuracy"

    def _values(self, y_pred, y_true):
        return y_pred.argmax(dim=-1) == y_true.argmax(dim=-1)


class BinaryAccuracy(_MeanOfValues):
    """Fraction of predictions on the right side of ``threshold`` (``y_pred > threshold``).

    Shapes: ``y_pred`` and ``y_true`` ``(N,)`` or ``(N, ..., K)`` (mean over the last axis).
    """

    default_name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        self.threshold = threshold
        super().__init__(name)

    def _values(self, y_pred, y_true):
        y_true = align_targets(y_true, y_pred, self.name)
        return _samplewise((y_pred > self.threshold).to(y_true.dtype) == y_true)


def _in_top_k(y_pred: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """True where the label's score is among the ``k`` largest; ties count as in (like TF).

    Shapes: ``y_pred`` ``(N, ..., C)``, ``labels`` ``(N, ...)`` -> ``(N, ...)`` bool.
    """
    k = min(k, y_pred.shape[-1])
    kth = y_pred.topk(k, dim=-1).values[..., -1:]
    return (y_pred.gather(-1, labels.long().unsqueeze(-1)) >= kth).squeeze(-1)


class SparseTopKCategoricalAccuracy(_MeanOfValues):
    """Fraction of samples whose integer label is among the top-``k`` scores.

    Shapes: ``y_pred`` ``(N, ..., C)``; ``y_true`` ``(N, ...)`` or ``(N, ..., 1)``.
    """

    default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        self.k = int(k)
        super().__init__(name)

    def _values(self, y_pred, y_true):
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        return _in_top_k(y_pred, y_true, self.k)


class TopKCategoricalAccuracy(_MeanOfValues):
    """Fraction of samples whose one-hot label's class is among the top-``k`` scores.

    Shapes: ``y_pred`` and ``y_true`` ``(N, ..., C)``.
    """

    default_name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        self.k = int(k)
        super().__init__(name)

    def _values(self, y_pred, y_true):
        return _in_top_k(y_pred, y_true.argmax(dim=-1), self.k)


class MeanAbsoluteError(_MeanOfValues):
    """Mean of ``|y_pred - y_true|`` (per sample over the last axis). Lower is better."""

    default_name = "mean_absolute_error"
    _direction = "down"

    def _values(self, y_pred, y_true):
        y_true = align_targets(y_true, y_pred, self.name)
        return _samplewise((y_pred.float() - y_true.float()).abs())


class MeanSquaredError(_MeanOfValues):
    """Mean of ``(y_pred - y_true) ** 2`` (per sample over the last axis). Lower is better."""

    default_name = "mean_squared_error"
    _direction = "down"

    def _values(self, y_pred, y_true):
        y_true = align_targets(y_true, y_pred, self.name)
        return _samplewise((y_pred.float() - y_true.float()).square())


class RootMeanSquaredError(_MeanOfValues):
    """``sqrt(mean((y_pred - y_true) ** 2))`` over every value seen (Keras: the root of the
    running weighted mean, not a mean of per-batch roots). Lower is better."""

    default_name = "root_mean_squared_error"
    _direction = "down"

    def _values(self, y_pred, y_true):
        y_true = align_targets(y_true, y_pred, self.name)
        return (y_pred.float() - y_true.float()).square()

    def result(self) -> float:
        return math.sqrt(max(super().result(), 0.0))


class _AutoAccuracy(Metric):
    """``"accuracy"``: binary, sparse or categorical accuracy, chosen from the first batch's shapes.

    Keras picks the variant the same way: one output unit -> binary; labels one rank lower than
    predictions (or a trailing 1) -> sparse categorical; otherwise categorical.
    """

    def __init__(self, name: str = "accuracy") -> None:
        self._inner: Metric | None = None
        super().__init__(name)

    def reset(self) -> None:
        if self._inner is not None:
            self._inner.reset()

    def update(self, y_pred, y_true, sample_weight=None) -> None:
        if self._inner is None:
            if y_pred.ndim == 0:
                raise ShapeError(f"accuracy needs batched predictions; received shape {tuple(y_pred.shape)}")
            if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
                self._inner = BinaryAccuracy(name=self.name)
            elif y_true.ndim == y_pred.ndim - 1 or (y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1):
                self._inner = SparseCategoricalAccuracy(name=self.name)
            else:
                self._inner = CategoricalAccuracy(name=self.name)
        self._inner.update(y_pred, y_true, sample_weight)

    def result(self) -> float:
        return 0.0 if self._inner is None else self._inner.result()


class RunningLoss:
    """Batch-size-weighted running mean of per-batch losses (Keras's logged ``loss``).

    The training loop appends each batch's detached loss to ``pending`` and its size to ``sizes``
    (two list appends: no device op, no sync); ``flush`` reads them back and adds them to a
    float64 total one step at a time, in step order, so the total -- and every logged loss -- is
    the same whenever the flushes happen (the loop flushes when its progress display refreshes,
    on the wall clock); ``mean`` reads it. ``bad_step`` is the 1-based index (among all batches
    added) of the first non-finite loss, found at the flush after it.
    """

    __slots__ = ("pending", "sizes", "total", "count", "steps", "bad_step")

    def __init__(self) -> None:
        self.pending: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.total = 0.0
        self.count = 0
        self.steps = 0
        self.bad_step: int | None = None

    def flush(self) -> None:
        if not self.pending:
            return
        # One device read for the whole chunk; the float64 per-step sum does not depend on how
        # the steps were chunked (a chunked float32 sum did, in the 7th digit).
        values = torch.stack([value.reshape(()) for value in self.pending]).double().tolist()
        total = self.total
        for index, (value, size) in enumerate(zip(values, self.sizes)):
            if self.bad_step is None and not math.isfinite(value):
                self.bad_step = self.steps + index + 1
            total += value * size
        self.total = total
        self.count += sum(self.sizes)
        self.steps += len(self.pending)
        self.pending.clear()
        self.sizes.clear()

    def mean(self) -> float:
        self.flush()
        return self.total / self.count if self.count else 0.0


_REGISTRY: dict[str, Callable[..., Metric]] = {
    "accuracy": _AutoAccuracy, "acc": _AutoAccuracy, "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy, "precision": Precision,
    "recall": Recall, "auc": AUC, "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "mean": Mean,
    "root_mean_squared_error": RootMeanSquaredError,
}

_CLASSES = {cls.__name__: cls for cls in (
    Mean, SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, Precision, Recall, AUC, MeanAbsoluteError, MeanSquaredError,
    RootMeanSquaredError, TruePositives, FalsePositives, TrueNegatives, FalseNegatives)}


def get(identifier: Any) -> Metric:
    """Resolve a metric: a ``Metric`` (or any object with its protocol) is returned as is, a
    ``Metric`` class is instantiated; a Keras name (``"accuracy"``, ``"mae"``,
    ``"AUC"``, ...) builds one, logged under the name as written; a function
    ``fn(y_true, y_pred) -> per-sample values`` is wrapped in :class:`MeanMetricWrapper`.

    Raises:
        UnknownNameError: the name is not a known metric (the message lists the known ones).
        InputTypeError: the identifier is neither a metric, a string nor a callable.
    """
    if isinstance(identifier, Metric) or all(
            hasattr(identifier, attribute) for attribute in ("name", "update", "result", "reset")):
        return identifier  # the protocol is enough (e.g. a wrapper around a metric)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key](name=identifier)
        known = ", ".join(sorted([*_REGISTRY, *_CLASSES]))
        raise UnknownNameError(f"Unknown metric {identifier!r}. Known metrics: {known}")
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise InputTypeError(
        f"A metric must be a Metric, a name or a function; received {type(identifier).__name__}"
    )


__all__ = [
    "AUC", "BinaryAccuracy", "CategoricalAccuracy", "FalseNegatives", "FalsePositives", "Mean",
    "MeanAbsoluteError", "MeanMetricWrapper", "MeanSquaredError", "Metric", "Precision", "Recall",
    "RootMeanSquaredError", "RunningLoss", "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives",
    "get",
]
