"""Keras 3's focal, generalized cross-entropy, Dice, Tversky, Circle and CTC losses.

Each class is a :class:`~bigmodel.keras.loss_base.Loss` whose per-sample values are the matching
function form (``keras.losses.binary_focal_crossentropy`` ...), with Keras 3's formulas, defaults,
epsilon (``1e-7``) and ``get_config`` keys. :mod:`bigmodel.keras.losses` exports them and resolves
their string names.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.keras.loss_base import EPSILON, Loss, squeeze_or_expand_to_same_rank
from bigmodel.keras.ops.ctc import ctc_loss

__all__ = [
    "BinaryFocalCrossentropy", "CTC", "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy", "Circle", "Dice", "Tversky",
    "binary_focal_crossentropy", "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy", "circle", "ctc", "dice", "tversky",
]


def _floats(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = torch.as_tensor(y_pred)
    y_pred = y_pred if y_pred.is_floating_point() else y_pred.float()
    return torch.as_tensor(y_true, device=y_pred.device).to(y_pred.dtype), y_pred


def _check_axis(name: str, axis: Any) -> None:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ConfigError(f"{name}: `axis` must be of type `int`. Received: axis={axis!r}")


# -- function forms (per-sample values) ------------------------------------------------------------
def binary_focal_crossentropy(y_true: Any, y_pred: Any, apply_class_balancing: bool = False,
                              alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                              label_smoothing: float = 0.0, axis: int = -1) -> torch.Tensor:
    """Binary cross-entropy scaled by the focal factor ``(1 - p_t) ** gamma`` (Lin et al.),
    averaged over ``axis``; ``p_t`` is the probability given to the true class.

    Args:
        y_true: labels in [0, 1], the shape of ``y_pred``.
        y_pred: probabilities, or logits with ``from_logits=True``.
        apply_class_balancing: weigh class 1 by ``alpha`` and class 0 by ``1 - alpha``.
        label_smoothing: labels squeezed towards 0.5 by this amount.

    Returns:
        ``y_pred.shape`` without ``axis``.
    """
    y_true, y_pred = _floats(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    probs = torch.sigmoid(y_pred) if from_logits else y_pred
    clipped = probs.clamp(EPSILON, 1.0 - EPSILON)
    bce = -(y_true * clipped.log() + (1.0 - y_true) * (1.0 - clipped).log())
    p_t = y_true * probs + (1.0 - y_true) * (1.0 - probs)
    focal = (1.0 - p_t).pow(gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(dim=axis)


def categorical_focal_crossentropy(y_true: Any, y_pred: Any, alpha: float = 0.25,
                                   gamma: float = 2.0, from_logits: bool = False,
                                   label_smoothing: float = 0.0, axis: int = -1) -> torch.Tensor:
    """Categorical cross-entropy of one-hot labels scaled by ``alpha * (1 - p) ** gamma``.

    Returns:
        ``y_pred.shape`` without ``axis``.

    Raises:
        ConfigError: a non-integer ``axis``.
    """
    _check_axis("categorical_focal_crossentropy", axis)
    y_true, y_pred = _floats(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    output = (y_pred / y_pred.sum(dim=axis, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
    focal = alpha * (1.0 - output).pow(gamma) * (-y_true * output.log())
    return focal.sum(dim=axis)


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> torch.Tensor:
    """``(1 - p ** q) / q`` with ``p`` the probability of the true class (Zhang and Sabuncu).

    Args:
        y_true: integer class indices ``(batch,)`` or ``(batch, 1)``.
        y_pred: class probabilities ``(batch, classes)``.
        q: in (0, 1); near 0 it behaves as cross-entropy, near 1 as mean absolute error.

    Raises:
        DataError: labels outside ``[0, classes)``.
    """
    y_pred = torch.as_tensor(y_pred).float()
    labels = torch.as_tensor(y_true, device=y_pred.device).long()
    if labels.dim() == y_pred.dim():
        labels = labels.squeeze(-1)
    classes = y_pred.shape[-1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise DataError(f"categorical_generalized_cross_entropy: labels must lie in "
                        f"[0, {classes - 1}]; received labels in [{int(labels.min())}, "
                        f"{int(labels.max())}]")
    p = y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (1.0 - p.pow(q)) / q


def dice(y_true: Any, y_pred: Any, axis: Any = None) -> torch.Tensor:
    """``1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + 1e-7)`` over ``axis``
    (None: everything, one value)."""
    y_true, y_pred = _floats(y_true, y_pred)
    dims = _dims(axis, y_pred)
    intersection = (y_true * y_pred).sum(dim=dims)
    return 1.0 - 2.0 * intersection / (y_true.sum(dim=dims) + y_pred.sum(dim=dims) + EPSILON)


def tversky(y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5,
            axis: Any = None) -> torch.Tensor:
    """``1 - TP / (TP + alpha FP + beta FN + 1e-7)`` over ``axis``, with Keras's soft counts
    (``FP = sum((1 - y_pred) y_true)``, ``FN = sum(y_pred (1 - y_true))``, as Keras 3 writes them)."""
    y_true, y_pred = _floats(y_true, y_pred)
    dims = _dims(axis, y_pred)
    intersection = (y_true * y_pred).sum(dim=dims)
    fp = ((1.0 - y_pred) * y_true).sum(dim=dims)
    fn = (y_pred * (1.0 - y_true)).sum(dim=dims)
    return 1.0 - intersection / (intersection + fp * alpha + fn * beta + EPSILON)


def _dims(axis: Any, tensor: torch.Tensor) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(tensor.dim()))
    return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def circle(y_true: Any, y_pred: Any, ref_labels: Any = None, ref_embeddings: Any = None,
           remove_diagonal: bool = True, gamma: float = 80, margin: float = 0.4) -> torch.Tensor:
    """Circle loss (Sun et al., 2020) of L2-normalised embeddings against references.

    Args:
        y_true: integer labels ``(batch,)`` (or ``(batch, 1)``).
        y_pred: L2-normalised embeddings ``(batch, dim)``.
        ref_labels, ref_embeddings: the references (default: the batch itself).
        remove_diagonal: leave each embedding's similarity to itself out of the positives.

    Returns:
        ``(batch,)`` losses; only the positive ones count in a reduction (Keras's mask).
    """
    y_pred = torch.as_tensor(y_pred).float()
    labels = torch.as_tensor(y_true, device=y_pred.device).long().reshape(-1, 1)
    refs = y_pred if ref_embeddings is None else torch.as_tensor(ref_embeddings).to(y_pred)
    ref = labels if ref_labels is None else torch.as_tensor(
        ref_labels, device=y_pred.device).long().reshape(-1, 1)
    distances = (1.0 - y_pred @ refs.T).clamp(min=0.0)  # (batch, refs) cosine distances
    positive = labels == ref.T
    negative = ~positive
    if remove_diagonal:
        positive = positive & ~torch.eye(labels.shape[0], ref.shape[0], dtype=torch.bool,
                                         device=y_pred.device)
    pos_weights = ((margin + distances) * positive).clamp(min=0.0)
    neg_weights = ((1.0 + margin - distances) * negative).clamp(min=0.0)
    pos = -gamma * pos_weights * (margin - distances)
    neg = gamma * neg_weights * (1.0 - margin - distances)
    minus_inf = torch.tensor(float("-inf"), device=y_pred.device)
    p_loss = torch.logsumexp(torch.where(positive, pos, minus_inf), dim=1)
    n_loss = torch.logsumexp(torch.where(negative, neg, minus_inf), dim=1)
    return F.softplus(p_loss + n_loss)


def ctc(y_true: Any, y_pred: Any) -> torch.Tensor:
    """CTC loss of padded integer labels ``(batch, max_label_length)`` (0 is the blank and the
    padding) against logits ``(batch, time, classes)`` (not softmax-normalised), every sequence
    using all ``time`` steps.

    Raises:
        ShapeError: labels not 2-D or logits not 3-D.
        DataError: labels outside ``[0, classes)``.
    """
    y_pred = torch.as_tensor(y_pred)
    y_true = torch.as_tensor(y_true, device=y_pred.device)
    if y_true.dim() != 2:
        raise ShapeError(f"ctc: targets `y_true` are expected to be a tensor of shape "
                         f"(batch_size, max_length) in integer format. Received: "
                         f"y_true.shape={tuple(y_true.shape)}")
    if y_pred.dim() != 3:
        raise ShapeError(f"ctc: logits `y_pred` are expected to be a tensor of shape "
                         f"(batch_size, max_length, num_classes). Received: "
                         f"y_pred.shape={tuple(y_pred.shape)}")
    labels = y_true.long()
    batch, steps = y_pred.shape[0], y_pred.shape[1]
    label_length = (labels != 0).sum(dim=-1)
    input_length = torch.full((batch,), steps, dtype=torch.long, device=y_pred.device)
    return ctc_loss(labels, y_pred, label_length, input_length, mask_index=0)


# -- Loss classes ------------------------------------------------------------------------------------
class BinaryFocalCrossentropy(Loss):
    """:func:`binary_focal_crossentropy` as a loss (``keras.losses.BinaryFocalCrossentropy``)."""

    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing: bool = False, alpha: float = 0.25,
                 gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                 axis: int = -1, reduction: str = "sum_over_batch_size",
                 name: str | None = None, dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, from_logits=from_logits)
        self.apply_class_balancing, self.alpha, self.gamma = apply_class_balancing, alpha, gamma
        self.label_smoothing, self.axis = label_smoothing, axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)}")
        return binary_focal_crossentropy(y_true, y_pred, self.apply_class_balancing, self.alpha,
                                         self.gamma, self.from_logits, self.label_smoothing,
                                         self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis,
                "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                "gamma": self.gamma}


class CategoricalFocalCrossentropy(Loss):
    """:func:`categorical_focal_crossentropy` as a loss, one-hot labels."""

    name = "categorical_focal_crossentropy"

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                 label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, from_logits=from_logits)
        _check_axis(type(self).__name__, axis)
        self.alpha, self.gamma, self.label_smoothing, self.axis = alpha, gamma, label_smoothing, axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} must match "
                             f"predictions of shape {tuple(y_pred.shape)} (one-hot labels)")
        return categorical_focal_crossentropy(y_true, y_pred, self.alpha, self.gamma,
                                              self.from_logits, self.label_smoothing, self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis, "alpha": self.alpha,
                "gamma": self.gamma}


class CategoricalGeneralizedCrossEntropy(Loss):
    """:func:`categorical_generalized_cross_entropy` as a loss (integer labels).

    Raises:
        ConfigError: ``q`` outside (0, 1).
    """

    name = "categorical_generalized_cross_entropy"

    def __init__(self, q: float = 0.5, reduction: str = "sum_over_batch_size",
                 name: str | None = None, dtype: Any = None):
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            raise ConfigError(f"CategoricalGeneralizedCrossEntropy: q must be in the interval "
                              f"(0, 1). Received: q={q!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.q = q

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return categorical_generalized_cross_entropy(y_true, y_pred, self.q)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "q": self.q}


class _AxisLoss(Loss):
    """Dice and Tversky: per-``axis`` overlap losses."""

    def _pair(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)}")
        return y_true, y_pred


class Dice(_AxisLoss):
    """:func:`dice` as a loss."""

    name = "dice"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None,
                 axis: Any = None, dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return dice(*self._pair(y_true, y_pred), axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "axis": self.axis}


class Tversky(_AxisLoss):
    """:func:`tversky` as a loss."""

    name = "tversky"

    def __init__(self, alpha: float = 0.5, beta: float = 0.5,
                 reduction: str = "sum_over_batch_size", name: str | None = None,
                 axis: Any = None, dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha, self.beta, self.axis = alpha, beta, axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return tversky(*self._pair(y_true, y_pred), self.alpha, self.beta, self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "alpha": self.alpha,
                "beta": self.beta, "axis": self.axis}


class Circle(Loss):
    """:func:`circle` as a loss; only positive per-sample values count in the reduction."""

    name = "circle"

    def __init__(self, gamma: float = 80.0, margin: float = 0.4, remove_diagonal: bool = True,
                 reduction: str = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma, self.margin, self.remove_diagonal = gamma, margin, remove_diagonal

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return circle(y_true, y_pred, remove_diagonal=self.remove_diagonal, gamma=self.gamma,
                      margin=self.margin)

    def output_mask(self, values: torch.Tensor) -> torch.Tensor:
        return values > 0

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "gamma": self.gamma,
                "margin": self.margin, "remove_diagonal": self.remove_diagonal}


class CTC(Loss):
    """:func:`ctc` as a loss: ``compile(loss="ctc")`` or ``keras.losses.CTC()`` for a model
    whose output is per-step logits ``(batch, time, vocabulary + 1)`` (class 0 the blank)."""

    name = "ctc"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return ctc(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}
