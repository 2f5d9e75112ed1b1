"""Keras metric names resolved to the engine's stateful metrics (``bigmodel.engine.metrics``).

``"accuracy"`` (or ``"acc"``) is resolved as Keras 3 does, from the shapes of the labels and the
model output: one output unit -> binary accuracy; labels shaped like the output -> categorical
accuracy; otherwise sparse categorical accuracy. The logged name stays the string the user gave.
"""

from __future__ import annotations

from typing import Any

from bigmodel.engine.metrics import (
    AUC,
    BinaryAccuracy,
    CategoricalAccuracy,
    Mean,
    MeanAbsoluteError,
    MeanSquaredError,
    Metric,
    Precision,
    Recall,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)
from bigmodel.errors import UnknownNameError

__all__ = [
    "AUC", "BinaryAccuracy", "CategoricalAccuracy", "Mean", "MeanAbsoluteError",
    "MeanSquaredError", "Metric", "Precision", "Recall", "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "get",
]

_BY_NAME: dict[str, type] = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def _accuracy_for(label_shape: tuple | None, output_shape: tuple | None) -> type:
    if output_shape is not None and len(output_shape) >= 1 and output_shape[-1] == 1:
        return BinaryAccuracy
    if (label_shape is not None and output_shape is not None
            and len(label_shape) == len(output_shape) and label_shape[-1] == output_shape[-1]
            and output_shape[-1] != 1):
        return CategoricalAccuracy
    return SparseCategoricalAccuracy


def get(identifier: Any, label_shape: tuple | None = None,
        output_shape: tuple | None = None) -> Metric:
    """A metric object from a Keras name or an existing metric.

    Args:
        identifier: a name (``"accuracy"``, ``"mae"``, ...) or a ``Metric``.
        label_shape: shape of one batch of labels, e.g. ``(32,)``; used to resolve ``"accuracy"``.
        output_shape: shape of one batch of model outputs, e.g. ``(32, 10)``.

    Raises:
        UnknownNameError: the name is not a known metric (the message lists the known ones).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return _accuracy_for(label_shape, output_shape)(name=identifier)
        cls = _BY_NAME.get(identifier)
        if cls is None:
            known = sorted([*_BY_NAME, "accuracy", "acc"])
            raise UnknownNameError(f"Unknown metric '{identifier}'. Known metrics: "
                                   f"{', '.join(known)}")
        return cls(name=identifier)
    raise UnknownNameError(f"Could not interpret metric identifier: {identifier!r}")
