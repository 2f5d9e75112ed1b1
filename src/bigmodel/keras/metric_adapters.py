"""Metric adapters of ``keras.Model.compile``: metrics that honour the output mask (padding steps
of a masked sequence carry no weight) and metrics that read probabilities when the model is
trained on logits (the stable softmax cross-entropy path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    # a keras Model (a Layer); the model module imports this one
    from bigmodel.keras.layers.base import Layer


def mask_weights(mask: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
    """Keras 3's loss masking: masked entries weigh 0 and the others ``total / valid``, so the
    batch mean runs over the valid entries only; combined with any ``sample_weight``."""
    weights = mask.to(torch.float32)
    weights = weights * (weights.numel() / weights.sum().clamp(min=1e-7))
    if sample_weight is not None:
        sample_weight = sample_weight.to(weights.device, weights.dtype)
        while sample_weight.dim() < weights.dim():
            sample_weight = sample_weight.unsqueeze(-1)
        weights = weights * sample_weight
    return weights


class _MetricWrapper:
    """A metric seen through an adapter: ``result``, ``reset`` and every other attribute are the
    wrapped metric's; subclasses change ``update``."""

    def __init__(self, metric: Any):
        self.metric = metric
        self.name = metric.name

    def result(self) -> float:
        value = self.metric.result()  # a Keras-style metric may return a tensor
        return float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value

    def reset(self) -> None:
        self.metric.reset()

    def __getattr__(self, item: str) -> Any:
        return getattr(self.metric, item)


class MaskedMetric(_MetricWrapper):
    """Weights a metric by the output's timestep mask of the current batch (read by the loss)."""

    def __init__(self, metric: Any, model: Layer):
        super().__init__(metric)
        self._model = model

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight: Any = None) -> None:
        mask = getattr(self._model, "_output_mask", None)
        if mask is not None and tuple(mask.shape) == tuple(y_pred.shape[:mask.dim()]):
            weights = mask.to(torch.float32)
            if sample_weight is not None:
                sample_weight = torch.as_tensor(sample_weight, device=weights.device)
                while sample_weight.dim() < weights.dim():
                    sample_weight = sample_weight.unsqueeze(-1)
                weights = weights * sample_weight
            sample_weight = weights
        self.metric.update(y_pred, y_true, sample_weight)


class OnProbabilities(_MetricWrapper):
    """Feeds a metric with probabilities when the model trains on pre-activation outputs."""

    def __init__(self, metric: Any, activation: str):
        super().__init__(metric)
        self._activation = activation
        # Accuracy-style metrics are invariant to softmax (argmax): skip the extra work.
        self._argmax_only = type(metric).__name__ in (
            "SparseCategoricalAccuracy", "CategoricalAccuracy", "TopKCategoricalAccuracy",
            "SparseTopKCategoricalAccuracy") and activation == "softmax"

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight: Any = None) -> None:
        if not self._argmax_only:
            y_pred = y_pred.softmax(-1) if self._activation == "softmax" else y_pred.sigmoid()
        self.metric.update(y_pred, y_true, sample_weight)


__all__ = ["MaskedMetric", "OnProbabilities", "mask_weights"]
