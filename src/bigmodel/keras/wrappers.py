"""``keras.wrappers``: scikit-learn estimators around a Keras model, as Keras 3's
``SKLearnClassifier``, ``SKLearnRegressor`` and ``SKLearnTransformer``.

``model`` is a compiled :class:`~bigmodel.keras.Model` (cloned with ``clone_model`` at each
``fit``) or a factory ``model(X=..., y=..., **model_kwargs)`` returning one; ``fit`` trains it on
the validated arrays (a classifier one-hot encodes its labels, so its model ends in ``len(classes)``
units), ``predict`` answers in sklearn's shapes. The wrappers are ordinary sklearn estimators:
``get_params``/``set_params``, ``sklearn.base.clone``, ``Pipeline``, ``cross_val_score``,
``GridSearchCV``.

Needs scikit-learn (``pip install bigmodel[sklearn]``); without it, building a wrapper raises an
ImportError saying so.

>>> est = SKLearnClassifier(model=make_model, model_kwargs={"hidden": 16},
...                         fit_kwargs={"epochs": 20, "verbose": 0})
>>> cross_val_score(est, X, y, cv=3)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataError
from bigmodel.keras.compile_config import restore_compile
from bigmodel.keras.model import Model
from bigmodel.keras.serialization import clone_model

try:  # an optional dependency: the wrappers are sklearn estimators
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # pragma: no cover - exercised only where scikit-learn is not installed
    sklearn = None

    class BaseEstimator:  # type: ignore[no-redef]
        pass

    class ClassifierMixin:  # type: ignore[no-redef]
        pass

    class RegressorMixin:  # type: ignore[no-redef]
        pass

    class TransformerMixin:  # type: ignore[no-redef]
        pass

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def _require_sklearn(name: str) -> None:
    if sklearn is None:
        raise ImportError(f"keras.wrappers.{name} requires scikit-learn: pip install "
                          "'bigmodel[sklearn]' (or scikit-learn)")


def _target_kind(y: Any) -> str:
    kind = type_of_target(y)
    if kind == "unknown":
        raise DataError(f"keras.wrappers: unknown label type for y: {y!r}")
    return kind


class TargetReshaper(TransformerMixin, BaseEstimator):
    """``(n,)`` targets to ``(n, 1)`` for the model, and predictions back to ``(n,)``."""

    def fit(self, y: np.ndarray) -> TargetReshaper:
        self.ndim_ = y.ndim
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return np.squeeze(y, axis=1) if self.ndim_ == 1 and y.ndim == 2 else y


class SKLBase(BaseEstimator):
    """What the three wrappers share (Keras's ``SKLBase``).

    Args:
        model: a compiled :class:`Model` (cloned with ``clone_model`` at every ``fit``, so the
            given one stays untrained) or a callable ``model(X=X, y=y, **model_kwargs)``
            returning a compiled model.
        warm_start: Keras's argument, stored (Keras 3.15 also builds a fresh model each fit).
        model_kwargs: keyword arguments of ``model`` when it is a callable.
        fit_kwargs: keyword arguments of ``Model.fit`` (``epochs``, ``batch_size``, ...); those
            passed to :meth:`fit` take precedence.

    Attributes:
        model_: the fitted model. history_: the History ``model.fit`` returned.

    Raises:
        ImportError: scikit-learn is not installed.
    """

    def __init__(self, model: Any, warm_start: bool = False, model_kwargs: dict | None = None,
                 fit_kwargs: dict | None = None):
        _require_sklearn(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # weights start random
        return tags

    def __sklearn_clone__(self) -> SKLBase:
        # a Model is copied whole (sklearn's clone would deep-copy parameters one by one)
        model = self.model if callable(self.model) and not isinstance(self.model, Model) \
            else copy.deepcopy(self.model)
        return type(self)(model=model, warm_start=self.warm_start,
                          model_kwargs=self.model_kwargs, fit_kwargs=self.fit_kwargs)

    @property
    def epoch_(self) -> Any:
        """The epochs trained (``history_.epoch``; 0 before ``fit``)."""
        history = getattr(self, "history_", None)
        return getattr(history, "epoch", 0) if history is not None else 0

    def _get_model(self, X: np.ndarray, y: np.ndarray) -> Model:
        if isinstance(self.model, Model):
            model = clone_model(self.model)
            settings = getattr(self.model, "_compile_config", None)
            if settings and not getattr(model, "compiled", False):
                # a fresh optimizer of the same settings, as Keras's clone keeps the compile
                restore_compile(model, settings, f"keras.wrappers.{type(self).__name__}")
            return model
        if not callable(self.model):
            raise ConfigError(f"{type(self).__name__}: model must be a keras Model or a "
                              f"callable returning one; received {type(self.model).__name__}")
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X: Any, y: Any, **kwargs: Any) -> SKLBase:
        """Train a fresh model on ``X`` ``(n_samples, n_features)`` and ``y``.

        Args:
            X: array-like ``(n_samples, n_features)``.
            y: array-like ``(n_samples,)`` or ``(n_samples, n_outputs)``.
            **kwargs: keyword arguments of ``Model.fit`` (over ``fit_kwargs``).

        Returns:
            self.

        Raises:
            ConfigError: the model is not compiled with a loss and an optimizer.
            DataError: labels a classifier cannot take (one class, continuous values).
        """
        X, y = validate_data(self, X, y)
        y = self._process_target(y, reset=True)
        model = self._get_model(X, y)
        if not isinstance(model, Model) or not getattr(model, "compiled", False) \
                or getattr(model, "optimizer", None) is None \
                or (getattr(model, "loss", None) is None
                    and getattr(model, "_compile_loss", None) is None):
            raise ConfigError(f"{type(self).__name__}: the given model needs to be compiled, "
                              f"and have a loss and an optimizer; received {model!r}")
        fit_kwargs = dict(self.fit_kwargs or {})
        fit_kwargs.update(kwargs)
        self.history_ = model.fit(X, y, **fit_kwargs)
        self.model_ = model
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The model's predictions for ``X`` in the targets' shape (a classifier: labels)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self._reverse_process_target(np.asarray(self.model_.predict(X, verbose=0)))

    def _process_target(self, y: np.ndarray, reset: bool = False) -> np.ndarray:
        _target_kind(y)
        if reset:
            self._target_encoder = TargetReshaper().fit(y)
        return self._target_encoder.transform(y)

    def _reverse_process_target(self, y: np.ndarray) -> np.ndarray:
        return self._target_encoder.inverse_transform(y)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around a Keras model (see :class:`SKLBase` for the arguments).

    Labels are one-hot encoded for the model (its output has ``len(classes_)`` units, e.g. a
    softmax with ``categorical_crossentropy``); ``predict`` returns labels, ``score`` accuracy.

    Attributes:
        classes_: the sorted class labels seen by ``fit``.

    Raises:
        DataError: targets that are neither binary nor multiclass, or a single class.
    """

    def decision_function(self, X: Any) -> np.ndarray:
        """The model's raw outputs ``(n_samples, n_classes)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def _process_target(self, y: np.ndarray, reset: bool = False) -> np.ndarray:
        kind = _target_kind(y)
        if kind not in ("binary", "multiclass"):
            raise DataError(f"SKLearnClassifier: only binary and multiclass target types are "
                            f"supported; received target type {kind!r}")
        if reset:
            self._target_encoder = make_pipeline(
                TargetReshaper(), OneHotEncoder(sparse_output=False)).fit(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise DataError(f"SKLearnClassifier can't train when only one class is "
                                f"present; received classes {self.classes_.tolist()}")
        return self._target_encoder.transform(y)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around a Keras model (see :class:`SKLBase`); ``score`` is R²."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around a Keras model (see :class:`SKLBase`): ``transform(X)``
    is the model's output (an embedding, say), for use as a step of a ``Pipeline``."""

    def transform(self, X: Any) -> np.ndarray:
        """The model's outputs for ``X`` ``(n_samples, n_features)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
