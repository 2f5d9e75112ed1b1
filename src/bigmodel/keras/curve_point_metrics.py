"""``keras.metrics.PrecisionAtRecall``, ``RecallAtPrecision``, ``SensitivityAtSpecificity`` and
``SpecificityAtSensitivity``: one point of a curve, read on Keras 3's fixed thresholds.

Counts of true/false positives and negatives are accumulated at ``num_thresholds`` thresholds
``[0, 1/(n-1), ..., 1]`` (a prediction clipped to [0, 1] is positive above a threshold; Keras's
bucket arithmetic ``ceil(p (n - 1)) - 1``, so the same threshold side for every value); the result
is the best dependent value (e.g. precision) among thresholds whose constrained value (e.g. recall)
is at least the target, 0 when none is.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import ConfigError, ShapeError

__all__ = ["PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
           "SpecificityAtSensitivity"]


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)),
                       torch.zeros_like(a))


class _CurvePoint(EngineMetric):
    """The shared counting; a subclass names its target argument and picks its two rates."""

    _target_name = "value"

    def __init__(self, value: float, num_thresholds: int = 200, class_id: int | None = None,
                 name: str | None = None, dtype: Any = None) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{type(self).__name__}: argument `{self._target_name}` must be in "
                              f"the range [0, 1]. Received: {self._target_name}={value!r}")
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or (
                num_thresholds <= 0):
            raise ConfigError(f"{type(self).__name__}: argument `num_thresholds` must be an "
                              f"integer > 0. Received: num_thresholds={num_thresholds!r}")
        self.value, self.num_thresholds, self.class_id = value, num_thresholds, class_id
        setattr(self, self._target_name, value)
        if num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            self.thresholds = [0.0] + [(i + 1) / (num_thresholds - 1)
                                       for i in range(num_thresholds - 2)] + [1.0]
        super().__init__(name or _snake(type(self).__name__))

    def reset(self) -> None:
        self._counts: torch.Tensor | None = None  # (4, thresholds): tp, fp, tn, fn

    def update(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> None:
        y_pred = torch.as_tensor(y_pred).detach().to(torch.float32)
        y_true = torch.as_tensor(y_true, device=y_pred.device).detach().to(torch.float32)
        if y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        elif y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == 1:
            y_pred = y_pred.squeeze(-1)
        if y_true.shape != y_pred.shape:
            raise ShapeError(f"{type(self).__name__}: labels of shape {tuple(y_true.shape)} do "
                             f"not match predictions of shape {tuple(y_pred.shape)}")
        weight = torch.ones_like(y_pred) if sample_weight is None else torch.as_tensor(
            sample_weight, device=y_pred.device).to(torch.float32)
        while weight.dim() < y_pred.dim():
            weight = weight.unsqueeze(-1)
        weight = weight.broadcast_to(y_pred.shape)
        if self.class_id is not None:
            if y_pred.dim() < 2:
                raise ShapeError(f"{type(self).__name__}: with class_id, predictions must be "
                                 f"(num_samples, num_classes); received {tuple(y_pred.shape)}")
            y_pred, y_true = y_pred[..., self.class_id], y_true[..., self.class_id]
            weight = weight[..., self.class_id]
        positive = (y_true != 0).to(torch.float32).reshape(-1) * weight.reshape(-1)
        negative = (y_true == 0).to(torch.float32).reshape(-1) * weight.reshape(-1)
        n = len(self.thresholds)
        if n == 1:
            above = (y_pred.reshape(-1, 1) > 0.5).to(torch.float32)  # (N, 1)
            tp, fp = positive @ above, negative @ above
        else:
            bucket = (torch.ceil(y_pred.clamp(0.0, 1.0).reshape(-1) * (n - 1)) - 1).long()
            valid = bucket >= 0  # p == 0 is above no threshold
            per_bucket_tp = torch.zeros(n, device=y_pred.device).index_add_(
                0, bucket[valid], positive[valid])
            per_bucket_fp = torch.zeros(n, device=y_pred.device).index_add_(
                0, bucket[valid], negative[valid])
            # above threshold i: every bucket from i up
            tp = per_bucket_tp.flip(0).cumsum(0).flip(0)
            fp = per_bucket_fp.flip(0).cumsum(0).flip(0)
        counts = torch.stack([tp, fp, negative.sum() - fp, positive.sum() - tp]).double()
        self._counts = counts if self._counts is None else self._counts + counts

    def result(self) -> torch.Tensor:
        if self._counts is None:
            return torch.tensor(0.0)
        tp, fp, tn, fn = self._counts.float()
        constrained, dependent = self._rates(tp, fp, tn, fn)
        feasible = constrained >= self.value
        return torch.where(feasible, dependent, torch.zeros_like(dependent)).clamp(min=0).max()

    def _rates(self, tp, fp, tn, fn):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": "float32", "class_id": self.class_id,
                "num_thresholds": self.num_thresholds, self._target_name: self.value}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SensitivityAtSpecificity(_CurvePoint):
    """The best sensitivity (recall) where specificity is at least ``specificity``."""

    _target_name = "specificity"

    def __init__(self, specificity: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def _rates(self, tp, fp, tn, fn):
        return _divide_no_nan(tn, tn + fp), _divide_no_nan(tp, tp + fn)


class SpecificityAtSensitivity(_CurvePoint):
    """The best specificity where sensitivity (recall) is at least ``sensitivity``."""

    _target_name = "sensitivity"

    def __init__(self, sensitivity: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def _rates(self, tp, fp, tn, fn):
        return _divide_no_nan(tp, tp + fn), _divide_no_nan(tn, tn + fp)


class PrecisionAtRecall(_CurvePoint):
    """The best precision where recall is at least ``recall``."""

    _target_name = "recall"

    def __init__(self, recall: float, num_thresholds: int = 200, class_id: int | None = None,
                 name: str | None = None, dtype: Any = None) -> None:
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def _rates(self, tp, fp, tn, fn):
        return _divide_no_nan(tp, tp + fn), _divide_no_nan(tp, tp + fp)


class RecallAtPrecision(_CurvePoint):
    """The best recall where precision is at least ``precision``."""

    _target_name = "precision"

    def __init__(self, precision: float, num_thresholds: int = 200, class_id: int | None = None,
                 name: str | None = None, dtype: Any = None) -> None:
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def _rates(self, tp, fp, tn, fn):
        return _divide_no_nan(tp, tp + fp), _divide_no_nan(tp, tp + fn)
