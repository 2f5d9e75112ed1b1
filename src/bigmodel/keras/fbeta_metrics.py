"""``keras.metrics.FBetaScore`` and ``F1Score``: F-scores of one-hot (or multi-label) labels
``(batch, classes)`` against scores, accumulated over batches, with Keras 3's thresholds,
averages and epsilon.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import ConfigError, ShapeError

__all__ = ["F1Score", "FBetaScore"]

_EPSILON = 1e-7


class FBetaScore(EngineMetric):
    """``(1 + beta^2) * precision * recall / (beta^2 * precision + recall)`` per class.

    Args:
        average: None (one score per class), ``"micro"`` (counts pooled over classes),
            ``"macro"`` (mean of the class scores) or ``"weighted"`` (weighted by each class's
            number of true labels).
        beta: the weight of recall (a float > 0).
        threshold: a predicted score above it counts as positive; None: the top score of each
            row (if not zero) is the one positive.

    Raises:
        ConfigError: a bad ``average``, ``beta`` or ``threshold``.
        ShapeError: inputs that are not ``(batch, classes)`` of one shape.
    """

    def __init__(self, average: str | None = None, beta: float = 1.0,
                 threshold: float | None = None, name: str = "fbeta_score",
                 dtype: Any = None) -> None:
        if average not in (None, "micro", "macro", "weighted"):
            raise ConfigError("Invalid `average` argument value. Expected one of: {None, "
                              f"'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if not isinstance(beta, float) or beta <= 0.0:
            raise ConfigError(f"Invalid `beta` argument value: a Python float > 0 is expected. "
                              f"Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float)
                                      or not 0.0 < threshold <= 1.0):
            raise ConfigError(f"Invalid `threshold` argument value: a Python float with "
                              f"0 < threshold <= 1 is expected. Received: threshold={threshold!r}")
        self.average, self.beta, self.threshold = average, beta, threshold
        super().__init__(name)

    def reset(self) -> None:
        self._counts: torch.Tensor | None = None  # (4, classes): tp, fp, fn, true labels

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor,
               sample_weight: torch.Tensor | None = None) -> None:
        y_pred = y_pred.detach().float()
        y_true = y_true.detach().to(y_pred)
        if y_pred.dim() != 2 or y_true.shape != y_pred.shape:
            raise ShapeError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, "
                             f"output_dim). Received input shapes: y_pred.shape="
                             f"{tuple(y_pred.shape)} and y_true.shape={tuple(y_true.shape)}")
        if self.threshold is None:
            top = y_pred.amax(dim=-1, keepdim=True)
            positive = ((y_pred >= top) & (y_pred.abs() > 1e-9)).float()
        else:
            positive = (y_pred > self.threshold).float()
        weight = (torch.ones(()) if sample_weight is None
                  else sample_weight.detach().float().reshape(-1, 1)).to(y_pred.device)
        counts = torch.stack([positive * y_true, positive * (1 - y_true), (1 - positive) * y_true,
                              y_true]) * weight
        counts = counts.sum(dim=1)  # (4, classes)
        self._counts = counts if self._counts is None else self._counts + counts

    def result(self) -> Any:
        if self._counts is None:
            return torch.tensor(0.0)
        tp, fp, fn, support = self._counts.sum(dim=1) if self.average == "micro" else self._counts
        precision = tp / (tp + fp + _EPSILON)
        recall = tp / (tp + fn + _EPSILON)
        beta2 = self.beta ** 2
        score = (1 + beta2) * precision * recall / (beta2 * precision + recall + _EPSILON)
        if self.average == "weighted":
            return (score * support / (support.sum() + _EPSILON)).sum()
        if self.average == "macro":
            return score.mean()
        return score

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": "float32", "beta": self.beta,
                "average": self.average, "threshold": self.threshold}


class F1Score(FBetaScore):
    """:class:`FBetaScore` with ``beta = 1`` (the harmonic mean of precision and recall)."""

    def __init__(self, average: str | None = None, threshold: float | None = None,
                 name: str = "f1_score", dtype: Any = None) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("beta")
        return config
