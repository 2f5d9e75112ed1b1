"""Keras losses on PyTorch tensors.

Call order is Keras's: ``loss(y_true, y_pred, sample_weight=None)`` -> scalar, reduced as Keras 3
does (``"sum_over_batch_size"`` by default; :mod:`.loss_base`). The focal, Dice, Tversky, Circle,
generalized cross-entropy and CTC losses live in :mod:`.losses_extra`.

Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before the log, as Keras does. When a model ends in a
softmax/sigmoid layer, ``Model`` asks that layer for its pre-activation output and calls the loss with
``from_logits=True`` (see :meth:`Loss.with_logits`), which is exact and stable (log-softmax) instead of
``log(softmax(z))``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import DataError, ShapeError, UnknownNameError
from bigmodel.keras import loss_functions
from bigmodel.keras.loss_base import (  # noqa: F401 - Loss and the rank rule are keras.losses'
    EPSILON,
    Loss,
    squeeze_or_expand_to_same_rank,
)
from bigmodel.keras.losses_extra import (  # noqa: F401 - keras.losses names
    CTC,
    BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy,
    CategoricalGeneralizedCrossEntropy,
    Circle,
    Dice,
    Tversky,
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    categorical_generalized_cross_entropy,
    circle,
    ctc,
    dice,
    tversky,
)
from bigmodel.keras.unsupported import unsupported_attribute


def _check_sparse_labels(name: str, y_true: torch.Tensor, num_classes: int) -> torch.Tensor:
    if y_true.is_floating_point():
        if not torch.equal(y_true, y_true.round()):
            raise DataError(f"{name}: labels must be integer class indices; received "
                            f"non-integer values (dtype {y_true.dtype})")
    labels = y_true.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{name}: labels must lie in [0, {num_classes - 1}] for a model with "
                        f"{num_classes} outputs; received labels in [{int(labels.min())}, "
                        f"{int(labels.max())}]")
    return labels


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels ``(batch,)`` and class scores ``(batch, classes)``."""

    name = "sparse_categorical_crossentropy"
    logits_of = "softmax"

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str = "sum_over_batch_size", name: str | None = None):
        super().__init__(name=name, reduction=reduction, from_logits=from_logits)
        self.ignore_class = ignore_class

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)}; expected labels of "
                             f"shape {tuple(y_pred.shape[:-1])}")
        valid = None
        if self.ignore_class is not None:
            valid = y_true != self.ignore_class
            y_true = torch.where(valid, y_true, torch.zeros_like(y_true))
        labels = _check_sparse_labels(self.name, y_true, y_pred.shape[-1])
        if self.from_logits and y_pred.dim() == 2:
            # One fused kernel (log-softmax + pick) instead of log_softmax, gather and squeeze:
            # the same values, half the time of the loss in a small-batch training step.
            per_sample = F.cross_entropy(y_pred.float(), labels, reduction="none")
        else:
            if self.from_logits:
                log_probs = F.log_softmax(y_pred.float(), dim=-1)
            else:
                probs = y_pred.float() / y_pred.float().sum(dim=-1, keepdim=True)
                log_probs = probs.clamp(EPSILON, 1 - EPSILON).log()
            per_sample = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        if valid is not None:
            per_sample = per_sample * valid
        return per_sample

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ignore_class": self.ignore_class}


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) labels of the predictions' shape."""

    name = "categorical_crossentropy"
    logits_of = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str | None = None):
        super().__init__(name=name, reduction=reduction, from_logits=from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} must match "
                             f"predictions of shape {tuple(y_pred.shape)} (one-hot labels; use "
                             "sparse_categorical_crossentropy for integer labels)")
        target = y_true.to(torch.float32)
        if self.label_smoothing:
            classes = y_pred.shape[self.axis]
            target = target * (1 - self.label_smoothing) + self.label_smoothing / classes
        if self.from_logits:
            log_probs = F.log_softmax(y_pred.float(), dim=self.axis)
        else:
            probs = y_pred.float() / y_pred.float().sum(dim=self.axis, keepdim=True)
            log_probs = probs.clamp(EPSILON, 1 - EPSILON).log()
        return -(target * log_probs).sum(dim=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "axis": self.axis}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, averaged over the last axis (Keras)."""

    name = "binary_crossentropy"
    logits_of = "sigmoid"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str | None = None):
        super().__init__(name=name, reduction=reduction, from_logits=from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, y_pred = squeeze_or_expand_to_same_rank(y_true.to(torch.float32), y_pred)
        if tuple(target.shape) != tuple(y_pred.shape):
            raise ShapeError(f"{self.name}: labels of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)}")
        # Labels outside [0, 1] (e.g. noisy GAN labels) go into the formula as they are (Keras).
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            per_elem = F.binary_cross_entropy_with_logits(y_pred.float(), target, reduction="none")
        else:
            probs = y_pred.float().clamp(EPSILON, 1 - EPSILON)
            per_elem = -(target * probs.log() + (1 - target) * (1 - probs).log())
        return per_elem.mean(dim=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "axis": self.axis}


class _Regression(Loss):
    def _pair(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
        # (batch,) against (batch, 1), either way round, meet at rank 2 (Keras's wrapper)
        target, pred = squeeze_or_expand_to_same_rank(y_true.to(y_pred.dtype), y_pred)
        if tuple(target.shape) != tuple(pred.shape):
            raise ShapeError(f"{self.name}: targets of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)}")
        return target, pred


class MeanSquaredError(_Regression):
    name = "mean_squared_error"

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, pred = self._pair(y_true, y_pred)
        diff = pred - target
        return (diff * diff).mean(dim=-1)


class MeanAbsoluteError(_Regression):
    name = "mean_absolute_error"

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, pred = self._pair(y_true, y_pred)
        return (pred - target).abs().mean(dim=-1)


class Huber(_Regression):
    name = "huber_loss"

    def __init__(self, delta: float = 1.0, reduction: str = "sum_over_batch_size",
                 name: str | None = None):
        super().__init__(name=name, reduction=reduction)
        self.delta = float(delta)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, pred = self._pair(y_true, y_pred)
        return F.huber_loss(pred, target, reduction="none", delta=self.delta).mean(dim=-1)

    def get_config(self) -> dict[str, Any]:
        # delta is saved (Keras 3.15's Huber.get_config leaves it out, so a reload falls back
        # to 1.0 there; Keras's Huber(delta=...) reads it back)
        config = {k: v for k, v in super().get_config().items() if k != "from_logits"}
        return {**config, "delta": self.delta}


class _PerSample(_Regression):
    """A loss whose per-sample values are a :mod:`.loss_functions` function of the paired
    labels and predictions (Keras 3's ``LossFunctionWrapper`` subclasses)."""

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, pred = self._pair(y_true, y_pred.float())
        return type(self).function(target, pred)

    def get_config(self) -> dict[str, Any]:
        return {k: v for k, v in super().get_config().items() if k != "from_logits"}


class Hinge(_PerSample):
    name, function = "hinge", staticmethod(loss_functions.hinge)


class SquaredHinge(_PerSample):
    name, function = "squared_hinge", staticmethod(loss_functions.squared_hinge)


class CategoricalHinge(_PerSample):
    name, function = "categorical_hinge", staticmethod(loss_functions.categorical_hinge)


class Poisson(_PerSample):
    name, function = "poisson", staticmethod(loss_functions.poisson)


class KLDivergence(_PerSample):
    name, function = "kl_divergence", staticmethod(loss_functions.kl_divergence)


class LogCosh(_PerSample):
    name, function = "log_cosh", staticmethod(loss_functions.log_cosh)


class MeanSquaredLogarithmicError(_PerSample):
    name = "mean_squared_logarithmic_error"
    function = staticmethod(loss_functions.mean_squared_logarithmic_error)


class MeanAbsolutePercentageError(_PerSample):
    name = "mean_absolute_percentage_error"
    function = staticmethod(loss_functions.mean_absolute_percentage_error)


class CosineSimilarity(_Regression):
    """``-cosine_similarity(y_true, y_pred)`` along ``axis``: -1 for the same direction."""

    name = "cosine_similarity"

    def __init__(self, axis: int = -1, reduction: str = "sum_over_batch_size",
                 name: str | None = None):
        super().__init__(name=name, reduction=reduction)
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target, pred = self._pair(y_true, y_pred.float())
        return -loss_functions.cosine_similarity(target, pred, self.axis)

    def get_config(self) -> dict[str, Any]:
        config = {k: v for k, v in super().get_config().items() if k != "from_logits"}
        return {**config, "axis": self.axis}


_ALIASES: dict[str, type[Loss]] = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    **{cls.name: cls for cls in (Hinge, SquaredHinge, CategoricalHinge, Poisson, KLDivergence,
                                 LogCosh, MeanSquaredLogarithmicError,
                                 MeanAbsolutePercentageError, CosineSimilarity)},
    "msle": MeanSquaredLogarithmicError,
    "mape": MeanAbsolutePercentageError,
    "kld": KLDivergence,
    "logcosh": LogCosh,
    **{cls.name: cls for cls in (BinaryFocalCrossentropy, CategoricalFocalCrossentropy,
                                 CategoricalGeneralizedCrossEntropy, Circle, Dice, Tversky, CTC)},
}


def get(identifier: Any) -> Loss:
    """A :class:`Loss` from a Keras name, a Loss object, or a callable ``(y_true, y_pred)``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        by_class = {cls.__name__: cls for cls in _ALIASES.values()}
        if identifier in by_class:  # Keras: a class name builds it with its default name
            return by_class[identifier]()
        cls = _ALIASES.get(identifier)
        if cls is None:
            raise UnknownNameError(f"Unknown loss '{identifier}'. Known losses: "
                                   f"{', '.join(sorted(_ALIASES))}")
        loss = cls()
        loss.name = identifier
        return loss
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return _FunctionLoss(identifier)
    raise UnknownNameError(f"Could not interpret loss identifier: {identifier!r}")


class _FunctionLoss(Loss):
    """A function ``fn(y_true, y_pred)`` as a loss, as Keras 3's ``LossFunctionWrapper``: the
    labels come as floats at the predictions' rank (``(batch,)`` against ``(batch, 1)`` becomes
    ``(batch, 1)``), so element-wise arithmetic in ``fn`` does not broadcast to ``(batch, batch)``.
    """

    def __init__(self, fn: Any):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        # Keras converts y_true to the loss's float dtype before calling the function
        if y_pred.is_floating_point() and y_true.dtype != y_pred.dtype:
            y_true = y_true.to(y_pred.dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred)


def serialize(loss: Loss) -> dict[str, Any] | str:
    if isinstance(loss, _FunctionLoss):
        return loss.name
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(spec: Any) -> Loss:
    if isinstance(spec, str):
        return get(spec)
    classes = {cls.__name__: cls for cls in set(_ALIASES.values())}
    cls = classes.get(spec.get("class_name", ""))
    if cls is None:
        raise UnknownNameError(f"Unknown loss class {spec.get('class_name')!r}; known: "
                               f"{', '.join(sorted(classes))}")
    config = dict(spec.get("config", {}))
    name = config.pop("name", None)
    if cls is MeanSquaredError or cls is MeanAbsoluteError or issubclass(cls, _PerSample) or (
            cls is CosineSimilarity):
        config.pop("from_logits", None)
    loss = cls(**config)
    if name:
        loss.name = name
    return loss


# Keras function forms: loss(y_true, y_pred) -> per-sample values.
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits=from_logits, reduction="none")(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    return CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                                   reduction="none")(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    return BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                              reduction="none")(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError(reduction="none")(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return MeanAbsoluteError(reduction="none")(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    return Huber(delta=delta, reduction="none")(y_true, y_pred)


def hinge(y_true, y_pred):
    return Hinge(reduction="none")(y_true, y_pred)


def squared_hinge(y_true, y_pred):
    return SquaredHinge(reduction="none")(y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    return CategoricalHinge(reduction="none")(y_true, y_pred)


def poisson(y_true, y_pred):
    return Poisson(reduction="none")(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return KLDivergence(reduction="none")(y_true, y_pred)


def log_cosh(y_true, y_pred):
    return LogCosh(reduction="none")(y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred):
    return MeanSquaredLogarithmicError(reduction="none")(y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred):
    return MeanAbsolutePercentageError(reduction="none")(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    return CosineSimilarity(axis=axis, reduction="none")(y_true, y_pred)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.losses", name)
