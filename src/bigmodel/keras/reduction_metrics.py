"""``keras.metrics.Sum``: the weighted sum of the values given since the last reset."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.engine.metric_base import broadcast_weight
from bigmodel.keras.loss_base import squeeze_or_expand_to_same_rank

__all__ = ["Sum"]


class Sum(EngineMetric):
    """``update_state(values, sample_weight=None)`` adds ``sum(values * sample_weight)``; values of
    a higher rank than the weights are first summed down to the weights' rank (Keras 3)."""

    default_name = "sum"

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name)

    def reset(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        values = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor)
                                 else values.detach()).to(torch.float64)
        if sample_weight is not None:
            weight = torch.as_tensor(np.asarray(sample_weight) if not isinstance(
                sample_weight, torch.Tensor) else sample_weight.detach(),
                device=values.device).to(torch.float64)
            values, weight = squeeze_or_expand_to_same_rank(values, weight)
            if values.dim() > weight.dim():
                values = values.sum(dim=tuple(range(weight.dim(), values.dim())))
            values = values * broadcast_weight(weight, values.shape)
        self.total = self.total.to(values.device) + values.sum()

    def update(self, y_pred: Any, y_true: Any = None, sample_weight: Any = None) -> None:
        # the engine's protocol: the "prediction" slot holds the values to sum
        self.update_state(y_pred, sample_weight)

    def result(self) -> torch.Tensor:
        return self.total.float()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": "float32"}
