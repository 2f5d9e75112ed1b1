"""The per-sample math of Keras 3's hinge, Poisson, KL-divergence, log-cosh, MSLE, MAPE and cosine
losses (``keras.losses.hinge`` ...), on float tensors already brought to the same shape.

Each function takes ``y_true`` and ``y_pred`` of one shape ``(batch, ..., d)`` and returns the
per-sample values ``(batch, ...)`` (the last axis reduced), with Keras 3's formulas and epsilon
(``1e-7``); :mod:`bigmodel.keras.losses` wraps them as ``Loss`` classes and Keras's function forms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

EPSILON = 1e-7


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    # Keras: labels given as {0, 1} are mapped to {-1, 1}; labels already in {-1, 1} are kept.
    if bool(((y_true == 0) | (y_true == 1)).all()):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``mean(max(1 - y_true * y_pred, 0))`` over the last axis (labels -1/1 or 0/1)."""
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp(min=0.0).mean(dim=-1)


def squared_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``mean(max(1 - y_true * y_pred, 0) ** 2)`` over the last axis (labels -1/1 or 0/1)."""
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp(min=0.0).square().mean(dim=-1)


def categorical_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` (one-hot labels)."""
    positive = (y_true * y_pred).sum(dim=-1)
    negative = ((1.0 - y_true) * y_pred).amax(dim=-1)
    return (negative - positive + 1.0).clamp(min=0.0)


def poisson(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``mean(y_pred - y_true * log(y_pred + 1e-7))`` over the last axis."""
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1)


def kl_divergence(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``sum(y_true * log(y_true / y_pred))`` over the last axis, both clipped to ``[1e-7, 1]``."""
    y_true = y_true.clamp(EPSILON, 1.0)
    y_pred = y_pred.clamp(EPSILON, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(dim=-1)


def log_cosh(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis, computed without overflow."""
    x = y_pred - y_true
    return (x + F.softplus(-2.0 * x) - math.log(2.0)).mean(dim=-1)


def mean_squared_logarithmic_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1)) ** 2)``, last axis."""
    first = torch.log(y_pred.clamp(min=EPSILON) + 1.0)
    second = torch.log(y_true.clamp(min=EPSILON) + 1.0)
    return (first - second).square().mean(dim=-1)


def mean_absolute_percentage_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` over the last axis."""
    return 100.0 * ((y_true - y_pred).abs() / y_true.abs().clamp(min=EPSILON)).mean(dim=-1)


def cosine_similarity(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """The cosine of the angle between ``y_true`` and ``y_pred`` along ``axis`` (each
    L2-normalised with Keras's ``1e-12`` floor on the squared norm). The loss is its negative."""
    y_true = y_true * torch.rsqrt(y_true.square().sum(dim=axis, keepdim=True).clamp(min=1e-12))
    y_pred = y_pred * torch.rsqrt(y_pred.square().sum(dim=axis, keepdim=True).clamp(min=1e-12))
    return (y_true * y_pred).sum(dim=axis)
