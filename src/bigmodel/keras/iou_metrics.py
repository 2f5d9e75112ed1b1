"""``keras.metrics.IoU``, ``MeanIoU``, ``BinaryIoU``, ``OneHotIoU`` and ``OneHotMeanIoU``:
intersection over union from a confusion matrix accumulated over batches, as Keras 3.

Rows of the confusion matrix are true classes, columns predicted ones; class ``c``'s IoU is
``TP / (TP + FP + FN + 1e-7)``; the result is the mean over the target classes that occurred
(a class with an empty union counts neither way). Class ids outside ``[0, num_classes)`` and
``ignore_class`` are left out. Keras keeps the matrix in an integer dtype by default, so float
sample weights are truncated to integers there and here (give ``dtype="float32"`` to keep them).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import ConfigError, ShapeError

__all__ = ["BinaryIoU", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]

_EPSILON = 1e-7


def _is_float_dtype(dtype: Any) -> bool:
    return dtype is not None and "float" in str(dtype)


class IoU(EngineMetric):
    """IoU of ``target_class_ids`` (see the module docstring).

    Args:
        num_classes: the number of classes (the confusion matrix is ``num_classes`` square).
        target_class_ids: the classes whose IoU is averaged.
        ignore_class: a label id left out of the counts.
        sparse_y_true, sparse_y_pred: False when labels / predictions are per-class scores
            along ``axis`` (their argmax is taken).

    Raises:
        ConfigError: a target class id outside ``[0, num_classes)``.
    """

    def __init__(self, num_classes: int, target_class_ids: Any, name: str | None = None,
                 dtype: Any = None, ignore_class: int | None = None, sparse_y_true: bool = True,
                 sparse_y_pred: bool = True, axis: int = -1) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"{type(self).__name__}: num_classes must be a positive integer. "
                              f"Received: num_classes={num_classes!r}")
        target_class_ids = list(target_class_ids)
        if not target_class_ids or max(target_class_ids) >= num_classes or (
                min(target_class_ids) < 0):
            raise ConfigError(f"{type(self).__name__}: target class ids {target_class_ids} are "
                              f"out of range, which is [0, {num_classes})")
        self.num_classes, self.target_class_ids = num_classes, target_class_ids
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self._dtype = dtype
        super().__init__(name or _default_name(type(self).__name__))

    def reset(self) -> None:
        self._matrix: torch.Tensor | None = None

    def _classes(self, values: Any, sparse: bool) -> torch.Tensor:
        values = torch.as_tensor(values).detach()
        if not sparse:
            values = values.argmax(dim=self.axis)
        # Keras converts ids to its integer dtype (truncation towards zero)
        return values.reshape(-1).to(torch.int64)

    def update(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> None:
        y_true = self._classes(y_true, self.sparse_y_true)
        y_pred = self._classes(y_pred, self.sparse_y_pred).to(y_true.device)
        if y_true.numel() != y_pred.numel():
            raise ShapeError(f"{type(self).__name__}: {y_true.numel()} labels for "
                             f"{y_pred.numel()} predictions")
        counting = torch.float64 if _is_float_dtype(self._dtype) else torch.int64
        if sample_weight is None:
            weight = torch.ones_like(y_true, dtype=counting)
        else:
            weight = torch.as_tensor(sample_weight, device=y_true.device).reshape(-1)
            weight = weight.to(counting).broadcast_to(y_true.shape)
        keep = (y_true >= 0) & (y_true < self.num_classes) & (y_pred >= 0) & (
            y_pred < self.num_classes)
        if self.ignore_class is not None:
            keep &= y_true != self.ignore_class
        index = (y_true * self.num_classes + y_pred)[keep]
        counts = torch.zeros(self.num_classes ** 2, dtype=counting, device=y_true.device)
        counts.index_add_(0, index, weight[keep])
        counts = counts.reshape(self.num_classes, self.num_classes)
        self._matrix = counts if self._matrix is None else self._matrix + counts

    def result(self) -> torch.Tensor:
        if self._matrix is None:
            return torch.tensor(0.0)
        matrix = self._matrix.double()
        true_positives = matrix.diagonal()
        union = matrix.sum(dim=0) + matrix.sum(dim=1) - true_positives
        ids = torch.tensor(self.target_class_ids, device=matrix.device)
        true_positives, union = true_positives[ids].float(), union[ids].float()
        valid = union > 1e-9
        iou = torch.where(valid, true_positives / (union + _EPSILON), torch.zeros_like(union))
        return iou.sum() / (valid.sum() + _EPSILON)

    @property
    def total_cm(self) -> torch.Tensor:
        """The accumulated confusion matrix (rows: true classes), Keras's variable name."""
        if self._matrix is None:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        return self._matrix

    def _base_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self._dtype or "int32"}

    def get_config(self) -> dict[str, Any]:
        return {**self._base_config(), "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


def _default_name(class_name: str) -> str:
    return {"IoU": "io_u", "MeanIoU": "mean_io_u", "BinaryIoU": "binary_io_u",
            "OneHotIoU": "one_hot_io_u", "OneHotMeanIoU": "one_hot_mean_io_u"}[class_name]


class BinaryIoU(IoU):
    """IoU of two classes where a prediction ``>= threshold`` is class 1."""

    def __init__(self, target_class_ids: Any = (0, 1), threshold: float = 0.5,
                 name: str | None = None, dtype: Any = None) -> None:
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> None:
        y_pred = (torch.as_tensor(y_pred).detach().float() >= self.threshold).to(torch.int64)
        super().update(y_pred, y_true, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                **self._base_config()}


class MeanIoU(IoU):
    """The mean IoU over all ``num_classes`` classes."""

    def __init__(self, num_classes: int, name: str | None = None, dtype: Any = None,
                 ignore_class: int | None = None, sparse_y_true: bool = True,
                 sparse_y_pred: bool = True, axis: int = -1) -> None:
        super().__init__(num_classes, list(range(num_classes)) if isinstance(num_classes, int)
                         else [], name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, **self._base_config(),
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """:class:`IoU` of one-hot labels (and, by default, per-class scores)."""

    def __init__(self, num_classes: int, target_class_ids: Any, name: str | None = None,
                 dtype: Any = None, ignore_class: int | None = None, sparse_y_pred: bool = False,
                 axis: int = -1) -> None:
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                **self._base_config(), "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """:class:`MeanIoU` of one-hot labels (and, by default, per-class scores)."""

    def __init__(self, num_classes: int, name: str | None = None, dtype: Any = None,
                 ignore_class: int | None = None, sparse_y_pred: bool = False,
                 axis: int = -1) -> None:
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, **self._base_config(),
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}
