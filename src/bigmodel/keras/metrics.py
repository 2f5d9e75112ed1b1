"""Keras metric names resolved to the engine's stateful metrics (``bigmodel.engine.metrics``).

``"accuracy"`` (or ``"acc"``) is resolved as Keras 3 does, from the shapes of the labels and the
model output: one output unit -> binary accuracy; labels shaped like the output -> categorical
accuracy; otherwise sparse categorical accuracy. The logged name stays the string the user gave.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.engine.metrics import (
    AUC,
    BinaryAccuracy,
    CategoricalAccuracy,
    FalseNegatives,
    FalsePositives,
    Mean,
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    Precision,
    Recall,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    TrueNegatives,
    TruePositives,
)
from bigmodel.engine.metrics import Metric as _EngineMetric
from bigmodel.errors import ConfigError, NotSupportedError, ShapeError, UnknownNameError
from bigmodel.keras import accuracy_functions
from bigmodel.keras import losses as losses_mod
from bigmodel.keras.accuracy_functions import (  # noqa: F401 - keras.metrics function forms
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from bigmodel.keras.curve_point_metrics import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from bigmodel.keras.fbeta_metrics import F1Score, FBetaScore
from bigmodel.keras.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from bigmodel.keras.metric_serialization import metric_config, metric_from_config
from bigmodel.keras.reduction_metrics import Sum
from bigmodel.keras.unsupported import unsupported_attribute
from bigmodel.keras.variables import Variable

__all__ = [
    "AUC", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy",
    "CategoricalCrossentropy", "FalseNegatives", "FalsePositives", "Mean", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "mean_absolute_percentage_error",
    "MeanSquaredError", "Metric", "Precision", "Recall", "RootMeanSquaredError",
    "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives",
    "get", "Hinge", "SquaredHinge", "CategoricalHinge", "Poisson", "KLDivergence", "LogCoshError",
    "MeanSquaredLogarithmicError", "CosineSimilarity", "Accuracy", "PearsonCorrelation", "R2Score", "F1Score", "FBetaScore",
    "IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU", "PrecisionAtRecall",
    "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity", "Sum",
]

class Metric(_EngineMetric):
    """Base class of a Keras-style metric (``keras.metrics.Metric``).

    Subclasses create state in ``__init__`` with :meth:`add_variable`, and implement
    ``update_state(y_true, y_pred, sample_weight=None)`` and ``result()``; the default
    ``reset_state`` puts every variable back to its initial value. Such a metric works in
    ``compile(metrics=[...])`` and in custom ``train_step`` code alike.
    """

    def __init__(self, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        if kwargs:
            raise ConfigError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                              f"{sorted(kwargs)}")
        # The engine base calls reset() here; a Keras metric has no state yet at this point.
        self.name = name or _snake_name(type(self).__name__)
        self._variables: list[tuple[Variable, torch.Tensor]] = []

    def add_variable(self, shape: Any = (), initializer: Any = "zeros", dtype: Any = None,
                     aggregation: str = "sum", name: str | None = None) -> Variable:
        """A state variable of ``shape`` set to ``initializer`` (a name, callable or number)."""
        from bigmodel.keras import initializers

        shape = (shape,) if isinstance(shape, int) else tuple(shape or ())
        if isinstance(initializer, (int, float)):
            value = torch.full(shape, float(initializer))
        else:
            value = initializers.get(initializer)(shape)
        variable = Variable(value, requires_grad=False, name=name)
        self._variables.append((variable, value.clone()))
        return variable

    def add_weight(self, name: str | None = None, shape: Any = (), initializer: Any = "zeros",
                   dtype: Any = None, **kwargs: Any) -> Variable:
        """Keras 2's name of :meth:`add_variable`."""
        return self.add_variable(shape, initializer, dtype, name=name)

    @property
    def variables(self) -> list[Variable]:
        return [variable for variable, _ in self._variables]

    def update_state(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement update_state()")

    def reset_state(self) -> None:
        for variable, initial in self._variables:
            variable.assign(initial)

    # The engine's protocol (see bigmodel.engine.metrics), mapped onto Keras's methods.
    def update(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> None:
        self.update_state(y_true, y_pred, sample_weight=sample_weight)

    def reset(self) -> None:
        self.reset_state()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.update_state(*args, **kwargs)
        return self.result()


def _snake_name(name: str) -> str:
    import re

    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``: keras.losses' function, as in
# Keras 3 (keras.metrics.mean_absolute_percentage_error is keras.losses.mean_absolute_percentage_error).
mean_absolute_percentage_error = losses_mod.mean_absolute_percentage_error


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean absolute percentage error, as Keras computes it (lower is better)."""

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: Any = None) -> None:
        super().__init__(mean_absolute_percentage_error, name=name, direction="down")


def _default_axis(cls_name: str, axis: int) -> None:
    if axis != -1:
        raise NotSupportedError(f"metrics.{cls_name}(axis={axis!r}): only axis=-1 (the class "
                                "axis last) is supported")


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy between labels and predictions, as the loss computes it per
    sample (``keras.metrics.BinaryCrossentropy``; lower is better)."""

    def __init__(self, name: str = "binary_crossentropy", dtype: Any = None,
                 from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        loss = losses_mod.BinaryCrossentropy(from_logits=from_logits,
                                             label_smoothing=label_smoothing, reduction="none")
        super().__init__(loss, name=name, direction="down")


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy for one-hot labels (``keras.metrics.CategoricalCrossentropy``;
    lower is better)."""

    def __init__(self, name: str = "categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> None:
        _default_axis("CategoricalCrossentropy", axis)
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        loss = losses_mod.CategoricalCrossentropy(from_logits=from_logits,
                                                  label_smoothing=label_smoothing,
                                                  reduction="none")
        super().__init__(loss, name=name, direction="down")


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean cross-entropy for integer labels (``keras.metrics.SparseCategoricalCrossentropy``;
    lower is better)."""

    def __init__(self, name: str = "sparse_categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False, axis: int = -1) -> None:
        _default_axis("SparseCategoricalCrossentropy", axis)
        self.from_logits = bool(from_logits)
        loss = losses_mod.SparseCategoricalCrossentropy(from_logits=from_logits,
                                                        reduction="none")
        super().__init__(loss, name=name, direction="down")


class _LossMean(MeanMetricWrapper):
    """The mean over samples of one of keras.losses' per-sample functions (lower is better)."""

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(type(self).function, name=name or type(self).default_name,
                         direction="down")


class Hinge(_LossMean):
    default_name, function = "hinge", staticmethod(losses_mod.hinge)


class SquaredHinge(_LossMean):
    default_name, function = "squared_hinge", staticmethod(losses_mod.squared_hinge)


class CategoricalHinge(_LossMean):
    default_name, function = "categorical_hinge", staticmethod(losses_mod.categorical_hinge)


class Poisson(_LossMean):
    default_name, function = "poisson", staticmethod(losses_mod.poisson)


class KLDivergence(_LossMean):
    default_name, function = "kl_divergence", staticmethod(losses_mod.kl_divergence)


class LogCoshError(_LossMean):
    default_name, function = "logcosh", staticmethod(losses_mod.log_cosh)


class MeanSquaredLogarithmicError(_LossMean):
    default_name = "mean_squared_logarithmic_error"
    function = staticmethod(losses_mod.mean_squared_logarithmic_error)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly (``keras.metrics.Accuracy``; for class scores
    use the ``"accuracy"`` string or ``CategoricalAccuracy`` / ``SparseCategoricalAccuracy``)."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(accuracy_functions.accuracy, name=name, direction="up")


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Pearson's correlation of labels and predictions along ``axis`` (each centred and divided
    by its population standard deviation; a constant row gives NaN, as in Keras)."""
    y_pred = torch.as_tensor(y_pred).float()
    y_true = torch.as_tensor(y_true).to(y_pred)
    y_true, y_pred = losses_mod.squeeze_or_expand_to_same_rank(y_true, y_pred)
    centred_true = y_true - y_true.mean(dim=axis, keepdim=True)
    centred_pred = y_pred - y_pred.mean(dim=axis, keepdim=True)
    centred_true = centred_true / centred_true.std(dim=axis, keepdim=True, correction=0)
    centred_pred = centred_pred / centred_pred.std(dim=axis, keepdim=True, correction=0)
    return (centred_true * centred_pred).mean(dim=axis)


class PearsonCorrelation(MeanMetricWrapper):
    """The mean over samples of :func:`pearson_correlation` along ``axis`` (higher is better)."""

    def __init__(self, name: str = "pearson_correlation", dtype: Any = None,
                 axis: int = -1) -> None:
        self.axis = axis
        super().__init__(lambda y_true, y_pred: pearson_correlation(y_true, y_pred, axis),
                         name=name, direction="up")


class CosineSimilarity(MeanMetricWrapper):
    """The mean cosine similarity of labels and predictions along ``axis`` (higher is better)."""

    def __init__(self, name: str = "cosine_similarity", dtype: Any = None, axis: int = -1) -> None:
        self.axis = axis
        super().__init__(lambda y_true, y_pred: -losses_mod.cosine_similarity(y_true, y_pred, axis),
                         name=name, direction="up")


class R2Score(Metric):
    """The coefficient of determination over everything seen since the last reset, per output
    column of ``(batch, outputs)`` labels: ``1 - sum((y - y_pred)^2) / sum((y - mean(y))^2)``
    (sample weights weight both sums), aggregated as Keras 3.

    Args:
        class_aggregation: ``"uniform_average"`` (mean over outputs), ``"variance_weighted_average"``
            (weighted by each output's total variance) or None (one score per output).
        num_regressors: ``p`` of the adjusted score ``1 - (1 - r2) (n - 1) / (n - p - 1)``
            (``n`` the number of label values seen); 0 for the plain score.

    Raises:
        ConfigError: an unknown ``class_aggregation`` or a negative ``num_regressors``.
        ShapeError: labels or predictions that are not ``(batch, outputs)``.
    """

    def __init__(self, class_aggregation: str | None = "uniform_average", num_regressors: int = 0,
                 name: str = "r2_score", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        choices = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in choices:
            raise ConfigError(f"R2Score: invalid value for argument `class_aggregation`. "
                              f"Expected one of {choices}. Received: "
                              f"class_aggregation={class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) or (
                num_regressors < 0):
            raise ConfigError(f"R2Score: invalid value for argument `num_regressors`. Expected "
                              f"an int >= 0. Received: num_regressors={num_regressors!r}")
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.num_samples = self.add_variable((), "zeros", name="num_samples")
        self._sums: list[Variable] | None = None  # squared_sum, sum, residual, count per output

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = torch.as_tensor(y_pred).float()
        y_true = torch.as_tensor(y_true).to(y_pred)
        y_true, y_pred = losses_mod.squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_true.dim() != 2 or y_true.shape != y_pred.shape:
            raise ShapeError(f"R2Score expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received input shapes: y_pred.shape={tuple(y_pred.shape)} and "
                             f"y_true.shape={tuple(y_true.shape)}")
        if self._sums is None:
            self._sums = [self.add_variable((y_true.shape[1],), "zeros", name=name)
                          for name in ("squared_sum", "sum", "residual", "count")]
        weight = torch.ones(()) if sample_weight is None else torch.as_tensor(
            sample_weight).float()
        if weight.dim() == 1:
            weight = weight.unsqueeze(1)
        weight = weight.to(y_true.device).broadcast_to(y_true.shape)
        squared_sum, total, residual, count = self._sums
        squared_sum.assign_add((y_true * y_true * weight).sum(dim=0))
        total.assign_add((y_true * weight).sum(dim=0))
        residual.assign_add(((y_true - y_pred) ** 2 * weight).sum(dim=0))
        count.assign_add(weight.sum(dim=0))
        self.num_samples.assign_add(torch.tensor(float(y_true.numel())))

    def result(self) -> torch.Tensor:
        if self._sums is None:
            return torch.tensor(0.0)
        squared_sum, total, residual, count = (v.detach() for v in self._sums)
        variance = squared_sum - total * (total / count)
        raw = 1 - residual / variance
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (variance * raw).sum() / variance.sum()
        else:
            score = raw
        n, p = float(self.num_samples.detach()), self.num_regressors
        if p and p < n - 1:  # Keras warns and keeps the plain score otherwise
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return score

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": "float32", "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


_BY_NAME: dict[str, type] = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
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
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
    "poisson": Poisson,
    "kl_divergence": KLDivergence,
    "log_cosh": LogCoshError,
    "logcosh": LogCoshError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
}


# Every metric class exported here, by class name ("RootMeanSquaredError"), as Keras resolves.
_BY_CLASS_NAME: dict[str, type] = {
    name: cls for name in __all__
    if isinstance(cls := globals().get(name), type) and issubclass(cls, _EngineMetric)
    and name not in ("Metric", "Mean")
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
    if isinstance(identifier, _EngineMetric):
        # fit's logs hold one number per metric; Keras logs these per-class vectors as arrays
        if (isinstance(identifier, FBetaScore) and identifier.average is None) or (
                isinstance(identifier, R2Score) and identifier.class_aggregation is None):
            option = "average" if isinstance(identifier, FBetaScore) else "class_aggregation"
            raise NotSupportedError(
                f"metrics.{type(identifier).__name__}({option}=None) in compile(): one score per "
                "class is not supported in fit/evaluate logs by bigmodel; give an "
                f"{option} (e.g. 'macro' / 'uniform_average'), or call update_state()/result() "
                "yourself")
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, _EngineMetric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return _accuracy_for(label_shape, output_shape)(name=identifier)
        if identifier in _BY_CLASS_NAME:  # Keras: a class name builds it, logged as written
            return _BY_CLASS_NAME[identifier](name=identifier)
        cls = _BY_NAME.get(identifier)
        if cls is None:
            known = sorted([*_BY_NAME, *_BY_CLASS_NAME, "accuracy", "acc"])
            raise UnknownNameError(f"Unknown metric '{identifier}'. Known metrics: "
                                   f"{', '.join(known)}")
        return cls(name=identifier)
    raise UnknownNameError(f"Could not interpret metric identifier: {identifier!r}")


# Keras 3 exports these loss functions from keras.metrics too (the same functions).
binary_crossentropy = losses_mod.binary_crossentropy
categorical_crossentropy = losses_mod.categorical_crossentropy
mean_absolute_error = losses_mod.mean_absolute_error
mean_squared_error = losses_mod.mean_squared_error
sparse_categorical_crossentropy = losses_mod.sparse_categorical_crossentropy
categorical_hinge = losses_mod.categorical_hinge
hinge = losses_mod.hinge
huber = losses_mod.huber
kl_divergence = losses_mod.kl_divergence
log_cosh = losses_mod.log_cosh
mean_squared_logarithmic_error = losses_mod.mean_squared_logarithmic_error
poisson = losses_mod.poisson
squared_hinge = losses_mod.squared_hinge
binary_focal_crossentropy = losses_mod.binary_focal_crossentropy
categorical_focal_crossentropy = losses_mod.categorical_focal_crossentropy


def serialize(metric: Any) -> dict[str, Any]:
    """Keras 3's description of a metric object (``keras.saving.serialize_keras_object``'s dict).

    Raises:
        UnknownNameError: not a metric object.
    """
    if not isinstance(metric, _EngineMetric):
        raise UnknownNameError(f"keras.metrics.serialize: {metric!r:.60} is not a metric object")
    return {"module": "keras.metrics", "class_name": type(metric).__name__,
            "config": metric_config(metric), "registered_name": None}


def deserialize(config: Any) -> Metric:
    """A metric from :func:`serialize`'s dict (or Keras's), or from a name as :func:`get`.

    Raises:
        UnknownNameError: an unknown class or name.
    """
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise UnknownNameError(f"keras.metrics.deserialize: cannot interpret {config!r:.80}")
    cls = {**_BY_CLASS_NAME, "Mean": Mean}.get(config["class_name"])
    if cls is None:
        raise UnknownNameError(f"keras.metrics.deserialize: unknown metric class "
                               f"{config['class_name']!r}; known: {', '.join(sorted(_BY_CLASS_NAME))}")
    return metric_from_config(cls, dict(config.get("config") or {}))


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.metrics", name)
