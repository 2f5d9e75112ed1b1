"""Keras 3's accuracy functions (``keras.metrics.binary_accuracy`` ...): per-sample float32 hits.

Each takes labels and predictions (tensors, arrays or lists) and returns 1.0 where the prediction
is right and 0.0 elsewhere, in the labels' shape (Keras's rules: a ``(batch, 1)`` label meets a
``(batch,)`` prediction at one rank; one-hot labels are compared by arg-max; "top k" counts a
label whose score ties the k-th best as a hit).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.losses import squeeze_or_expand_to_same_rank

__all__ = ["accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy"]


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the prediction equals the label exactly."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(_tensor(y_true), _tensor(y_pred))
    return (y_true == y_pred).float()


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where ``y_pred > threshold`` agrees with the 0/1 label (element by element)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(_tensor(y_true), _tensor(y_pred))
    return (y_true == (y_pred > threshold).to(y_true.dtype)).float()


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the arg-max of the scores is the arg-max of the one-hot label."""
    return (_tensor(y_true).argmax(dim=-1) == _tensor(y_pred).argmax(dim=-1)).float()


def _class_ids(y_true: Any, y_pred: torch.Tensor) -> torch.Tensor:
    labels = _tensor(y_true)
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    return labels.long()


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the arg-max of the scores is the integer label (``(batch,)`` or ``(batch, 1)``)."""
    y_pred = _tensor(y_pred)
    return (y_pred.argmax(dim=-1) == _class_ids(y_true, y_pred)).float()


def _in_top_k(labels: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    # a hit when fewer than k classes score strictly higher than the label's class
    scores = scores.reshape(-1, scores.shape[-1])
    target = scores.gather(1, labels.reshape(-1, 1))
    return ((scores > target).sum(dim=1) < k).float().reshape(labels.shape)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1.0 where the one-hot label's class is among the ``k`` best scores."""
    return _in_top_k(_tensor(y_true).argmax(dim=-1), _tensor(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5,
                                      from_sorted_ids: bool = False) -> torch.Tensor:
    """1.0 where the integer label is among the ``k`` best scores; with ``from_sorted_ids``,
    ``y_pred`` holds class ids sorted best first and the label must be in its first ``k``."""
    y_pred = _tensor(y_pred)
    if from_sorted_ids:
        labels = _tensor(y_true).to(y_pred.dtype)
        flat = labels.reshape(-1, 1)
        hits = (flat == y_pred.reshape(flat.shape[0], -1)[:, :k]).any(dim=1)
        return hits.float().reshape(labels.shape)
    labels = _tensor(y_true).long()
    return _in_top_k(labels, y_pred, k)
