"""Confusion-matrix metrics with Keras semantics: ``Precision``, ``Recall``, ``AUC`` and the
counts ``TruePositives``, ``FalsePositives``, ``TrueNegatives``, ``FalseNegatives``.

Same protocol as every metric in :mod:`bigmodel.engine.metrics` (import them from there): state is
weighted true/false positive/negative counts kept as tensors on the predictions' device.
"""

from __future__ import annotations

import math

import torch

from bigmodel.engine.metric_base import Metric, align_targets, broadcast_weight, state_dtype
from bigmodel.errors import ConfigError

_EPSILON = 1e-7  # Keras backend.epsilon(): pads AUC's end thresholds


def _filter_top_k(y_pred: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the top-``k`` scores of the last axis, set the rest to -inf (Keras ``_filter_top_k``)."""
    k = min(k, y_pred.shape[-1])
    keep = torch.zeros_like(y_pred, dtype=torch.bool).scatter_(-1, y_pred.topk(k, -1).indices, True)
    return y_pred.masked_fill(~keep, -math.inf)


class _ConfusionMetric(Metric):
    """Precision/Recall: weighted confusion counts at one threshold (``y_pred > threshold``).

    Args:
        thresholds: one float in ``[0, 1]``; default 0.5, or -inf when ``top_k`` is set (Keras).
        top_k: only the ``top_k`` largest scores per sample count as positive predictions.
        class_id: compute the metric for one class (last axis) only.
        name: log key.

    Shapes: ``y_pred`` and ``y_true`` ``(N, ...)``; labels are positive where non-zero.
    """

    def __init__(self, thresholds: float | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str | None = None) -> None:
        if thresholds is not None and not isinstance(thresholds, (int, float)):
            raise ConfigError(
                f"{type(self).__name__} takes a single float threshold; received thresholds={thresholds!r}"
            )
        if thresholds is None:
            thresholds = 0.5 if top_k is None else -math.inf
        self.thresholds = float(thresholds)
        self.top_k = top_k
        self.class_id = class_id
        super().__init__(name)

    def reset(self) -> None:
        self._counts: torch.Tensor | None = None  # [tp, fp, fn]

    def update(self, y_pred, y_true, sample_weight=None) -> None:
        y_pred = y_pred.detach()
        y_true = align_targets(y_true, y_pred, self.name)
        if self.top_k is not None:
            y_pred = _filter_top_k(y_pred, self.top_k)
        if self.class_id is not None:
            y_pred, y_true = y_pred[..., self.class_id], y_true[..., self.class_id]
        if self._counts is None:
            self._counts = torch.zeros(3, dtype=state_dtype(y_pred.device), device=y_pred.device)
        predicted = y_pred > self.thresholds
        actual = y_true != 0
        weight = None
        if sample_weight is not None:
            weight = broadcast_weight(torch.as_tensor(sample_weight, device=y_pred.device)
                                       .to(self._counts.dtype), predicted.shape)

        def total(mask: torch.Tensor) -> torch.Tensor:
            return mask.sum() if weight is None else (mask * weight).sum()

        self._counts += torch.stack([total(predicted & actual), total(predicted & ~actual),
                                     total(~predicted & actual)]).to(self._counts.dtype)


class Precision(_ConfusionMetric):
    """``tp / (tp + fp)``: the fraction of positive predictions that are right (0 when none)."""

    default_name = "precision"

    def result(self) -> float:
        if self._counts is None:
            return 0.0
        tp, fp, _ = self._counts.tolist()
        return tp / (tp + fp) if tp + fp > 0 else 0.0


class Recall(_ConfusionMetric):
    """``tp / (tp + fn)``: the fraction of positive labels that are found (0 when none)."""

    default_name = "recall"

    def result(self) -> float:
        if self._counts is None:
            return 0.0
        tp, _, fn = self._counts.tolist()
        return tp / (tp + fn) if tp + fn > 0 else 0.0


def _divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    positive = denominator > 0
    safe = torch.where(positive, denominator, torch.ones_like(denominator))
    return torch.where(positive, numerator / safe, torch.zeros_like(numerator))


class AUC(Metric):
    """Area under the ROC or precision-recall curve, approximated on fixed thresholds (Keras).

    Predictions are compared with ``num_thresholds`` thresholds ``[-eps, 1/(n-1), ..., 1+eps]``
    (``y_pred > t``); weighted confusion counts are accumulated at each threshold, and the area is a
    Riemann sum over the resulting curve. ``summation_method="interpolation"`` is the trapezoid
    rule for ROC and Davis & Goadrich's interpolation for PR; ``"minoring"``/``"majoring"`` use
    the lower/upper rectangle heights.

    Args:
        num_thresholds: number of thresholds (> 1), default 200.
        curve: ``"ROC"`` or ``"PR"``.
        summation_method: ``"interpolation"``, ``"minoring"`` or ``"majoring"``.
        name: log key.
        from_logits: apply a sigmoid to predictions first.

    Shapes: ``y_pred`` probabilities and ``y_true`` labels, any equal shape (flattened; labels are
    positive where non-zero); ``sample_weight`` ``(N,)`` or broadcastable.
    """

    default_name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str | None = None,
                 from_logits: bool = False) -> None:
        if num_thresholds <= 1:
            raise ConfigError(f"AUC needs num_thresholds > 1; received num_thresholds={num_thresholds}")
        if curve.upper() not in ("ROC", "PR"):
            raise ConfigError(f"AUC curve must be 'ROC' or 'PR'; received curve={curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ConfigError(
                "AUC summation_method must be 'interpolation', 'minoring' or 'majoring'; "
                f"received summation_method={summation_method!r}"
            )
        self.num_thresholds = num_thresholds
        self.curve = curve.upper()
        self.summation_method = summation_method
        self.from_logits = from_logits
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = [0.0 - _EPSILON, *inner, 1.0 + _EPSILON]
        super().__init__(name)

    def reset(self) -> None:
        self._counts: torch.Tensor | None = None  # (4, T): tp, fp, tn, fn per threshold
        self._threshold_tensor: torch.Tensor | None = None

    def update(self, y_pred, y_true, sample_weight=None) -> None:
        y_pred = y_pred.detach()
        if self.from_logits:
            y_pred = torch.sigmoid(y_pred)
        y_true = align_targets(y_true, y_pred, self.name)
        if self._counts is None:
            dtype = state_dtype(y_pred.device)
            self._counts = torch.zeros(4, self.num_thresholds, dtype=dtype, device=y_pred.device)
            self._threshold_tensor = torch.tensor(self.thresholds, dtype=dtype, device=y_pred.device)
        dtype = self._counts.dtype
        scores = y_pred.reshape(-1).to(dtype)
        positive = (y_true.reshape(-1) != 0).to(dtype)
        if sample_weight is None:
            weight = torch.ones_like(scores)
        else:
            weight = broadcast_weight(torch.as_tensor(sample_weight, device=y_pred.device).to(dtype),
                                       y_pred.shape).reshape(-1)
        above = (scores[:, None] > self._threshold_tensor[None, :]).to(dtype)  # (N, T)
        pos_weight, neg_weight = positive * weight, (1 - positive) * weight
        tp, fp = pos_weight @ above, neg_weight @ above
        self._counts += torch.stack([tp, fp, neg_weight.sum() - fp, pos_weight.sum() - tp])

    def result(self) -> float:
        if self._counts is None:
            return 0.0
        tp, fp, tn, fn = self._counts
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(self._interpolate_pr_auc(tp, fp, fn))
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())

    @staticmethod
    def _interpolate_pr_auc(tp, fp, fn) -> torch.Tensor:
        # Precision is interpolated linearly in the number of predicted positives P between
        # neighbouring thresholds (Davis & Goadrich 2006); the integral has a closed form.
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, dp.clamp_min(0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(both, _divide_no_nan(p[:-1], p[1:].clamp_min(0)), torch.ones_like(p[1:]))
        increments = _divide_no_nan(slope * (dtp + intercept * torch.log(ratio)),
                                    (tp[1:] + fn[1:]).clamp_min(0))
        return increments.sum()


class _ConditionCount(Metric):
    """A weighted count of one confusion-matrix cell at one threshold (Keras's
    ``TruePositives`` & co.): a prediction is positive when ``y_pred > threshold``, a label when
    it is non-zero.

    Args:
        thresholds: one float (default 0.5). Keras also takes a list (one count per threshold);
            bigmodel logs one number per metric, so a list is refused.
        name: log key (default the Keras one, e.g. ``"true_positives"``).
        dtype: accepted for Keras compatibility (counts are kept in float64 on CPU/CUDA).

    Raises:
        ConfigError: ``thresholds`` not a single number.
    """

    _predicted = True   # the cell: predicted positive?
    _actual = True      # ... and label positive?

    def __init__(self, thresholds: float | None = None, name: str | None = None,
                 dtype: object = None) -> None:
        if thresholds is None:
            thresholds = 0.5
        if isinstance(thresholds, bool) or not isinstance(thresholds, (int, float)):
            raise ConfigError(f"{type(self).__name__} takes a single float threshold; received "
                              f"thresholds={thresholds!r}")
        self.thresholds = float(thresholds)
        super().__init__(name)

    def reset(self) -> None:
        self._count: torch.Tensor | None = None

    def update(self, y_pred, y_true, sample_weight=None) -> None:
        y_pred = y_pred.detach()
        y_true = align_targets(torch.as_tensor(y_true, device=y_pred.device), y_pred, self.name)
        if self._count is None:
            self._count = torch.zeros((), dtype=state_dtype(y_pred.device), device=y_pred.device)
        predicted = y_pred > self.thresholds
        actual = y_true != 0
        cell = (predicted if self._predicted else ~predicted) & (actual if self._actual else ~actual)
        if sample_weight is None:
            self._count += cell.sum()
        else:
            weight = broadcast_weight(torch.as_tensor(sample_weight, device=y_pred.device)
                                       .to(self._count.dtype), cell.shape)
            self._count += (cell * weight).sum()

    def result(self) -> float:
        return 0.0 if self._count is None else float(self._count)


class TruePositives(_ConditionCount):
    """Weighted count of positive predictions with positive labels."""

    default_name = "true_positives"


class FalsePositives(_ConditionCount):
    """Weighted count of positive predictions with negative labels (lower is better)."""

    default_name = "false_positives"
    _direction = "down"
    _actual = False


class TrueNegatives(_ConditionCount):
    """Weighted count of negative predictions with negative labels."""

    default_name = "true_negatives"
    _predicted = False
    _actual = False


class FalseNegatives(_ConditionCount):
    """Weighted count of negative predictions with positive labels (lower is better)."""

    default_name = "false_negatives"
    _direction = "down"
    _predicted = False


__all__ = ["AUC", "FalseNegatives", "FalsePositives", "Precision", "Recall", "TrueNegatives",
           "TruePositives"]
