"""The metric protocol: ``Metric`` (``name``, ``update(y_pred, y_true, sample_weight=None)``,
``result()``, ``reset()``) and the helpers every metric family shares: the state dtype, aligning
targets to predictions and broadcasting per-sample weights. The families build on it in
``engine/metrics.py`` (means, accuracies, errors) and ``engine/confusion_metrics.py``
(precision, recall, AUC, condition counts); import metrics from ``bigmodel.engine.metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import ShapeError


def state_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps counts exact past 2**24 samples; MPS has no float64.
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def align_targets(y_true: torch.Tensor, y_pred: torch.Tensor, metric: str) -> torch.Tensor:
    """Reshape ``y_true`` to ``y_pred``'s shape when only singleton axes differ ((N,) vs (N, 1)).

    Without this, ``(N, 1) == (N,)`` would broadcast to ``(N, N)`` silently.

    Raises:
        ShapeError: the two hold different numbers of values.
    """
    if y_true.shape == y_pred.shape:
        return y_true
    if y_true.numel() != y_pred.numel():
        raise ShapeError(
            f"{metric} needs y_true and y_pred of the same shape; received y_true "
            f"{tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}"
        )
    return y_true.reshape(y_pred.shape)


def broadcast_weight(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Broadcast a per-sample weight ``(N,)`` (or ``(N, 1)``) to ``shape`` ``(N, ...)``."""
    while weight.ndim > len(shape) and weight.shape[-1] == 1:
        weight = weight.squeeze(-1)
    while weight.ndim < len(shape):
        weight = weight.unsqueeze(-1)
    try:
        return torch.broadcast_to(weight, shape)
    except RuntimeError:
        raise ShapeError(
            f"sample_weight of shape {tuple(weight.shape)} does not broadcast to values of shape "
            f"{tuple(shape)}; expected one weight per sample"
        ) from None


class Metric:
    """Base class of a streaming metric (see the module docstring for the protocol).

    Args:
        name: key under which the value is logged; the Keras default name when ``None``.

    ``_direction`` is ``"up"`` when larger is better (read by callbacks in ``mode="auto"``).
    """

    default_name = "metric"
    _direction = "up"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.default_name
        self.reset()

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor,
               sample_weight: torch.Tensor | None = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    # Keras's names and argument order (``update_state(y_true, y_pred)``), for user code.
    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        # Keras users pass lists and NumPy arrays here; the engine passes tensors.
        y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(np.asarray(y_pred))
        y_true = y_true if isinstance(y_true, torch.Tensor) else torch.as_tensor(np.asarray(y_true))
        if sample_weight is not None and not isinstance(sample_weight, torch.Tensor):
            sample_weight = torch.as_tensor(np.asarray(sample_weight))
        self.update(y_pred, y_true, sample_weight)

    def reset_state(self) -> None:
        self.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
