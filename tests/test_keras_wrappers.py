"""keras.wrappers: the scikit-learn estimators equal real Keras 3's after one deterministic
full-batch SGD step from the same weights; sklearn's clone / get_params / set_params, a Pipeline
and cross_val_score that learns; and every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError
from keras_reference import real_keras as _real_keras

sklearn = pytest.importorskip("sklearn", reason="scikit-learn (sklearn extra) is not installed")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bigmodel.keras.wrappers import (  # noqa: E402
    SKLearnClassifier,
    SKLearnRegressor,
    SKLearnTransformer,
)

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 5)).astype(np.float32)
Y_CLASS = np.array(["a", "b", "c"])[rng.integers(0, 3, size=24)]
Y_REG = (X @ rng.normal(size=5)).astype(np.float32)


def _factory(lib, units, activation, loss, weights=None, hidden=6):
    """A model factory as the wrappers call it: ``model(X=..., y=..., **model_kwargs)``."""
    def make(X, y, **kwargs):
        model = lib.Sequential([lib.Input((X.shape[1],)),
                                lib.layers.Dense(hidden, activation="tanh"),
                                lib.layers.Dense(units(y), activation=activation)])
        if weights is not None:
            model.set_weights(weights)
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=loss)
        return model
    return make


def _start_weights(units):
    shapes = [(5, 6), (6,), (6, units), (units,)]
    return [np.random.default_rng(1).normal(size=s).astype(np.float32) * 0.5 for s in shapes]


PARITY = {
    "classifier": (SKLearnClassifier, Y_CLASS, lambda y: y.shape[1], "softmax",
                   "categorical_crossentropy", 3),
    "regressor": (SKLearnRegressor, Y_REG, lambda y: 1, None, "mse", 1),
    "transformer": (SKLearnTransformer, Y_REG, lambda y: 1, None, "mse", 1),
}


def _fit_outputs(lib, wrappers, case):
    cls_name, y, units, activation, loss, n_units = PARITY[case]
    cls = getattr(wrappers, cls_name.__name__)
    est = cls(model=_factory(lib, units, activation, loss, _start_weights(n_units)),
              fit_kwargs={"epochs": 1, "batch_size": len(X), "shuffle": False, "verbose": 0})
    est.fit(X, y)
    if case == "classifier":
        return est.decision_function(X), est.predict(X), est.score(X, y)
    if case == "regressor":
        return est.predict(X), est.predict(X), est.score(X, y)
    return est.transform(X), est.fit_transform(X, y), 0.0


@pytest.mark.parametrize("case", sorted(PARITY))
def test_equal_to_real_keras_after_one_step(case):
    real = _real_keras()
    import keras.wrappers as real_wrappers

    from bigmodel.keras import wrappers as our_wrappers

    ours = _fit_outputs(keras, our_wrappers, case)
    theirs = _fit_outputs(real, real_wrappers, case)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    if case == "classifier":
        np.testing.assert_array_equal(ours[1], theirs[1])
        assert set(ours[1]) <= {"a", "b", "c"}
    else:
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-5)
    assert ours[2] == pytest.approx(theirs[2], abs=1e-5)
    assert ours[0].shape == ((24, 3) if case == "classifier" else
                             (24,) if case == "regressor" else (24, 1))


def test_sklearn_pipeline_cross_val_clone_and_params():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    est = SKLearnClassifier(
        model=_factory(keras, lambda t: t.shape[1], "softmax", "categorical_crossentropy",
                       hidden=16),
        fit_kwargs={"epochs": 30, "batch_size": 16, "verbose": 0})
    params = est.get_params()
    assert params["fit_kwargs"]["epochs"] == 30 and params["warm_start"] is False
    est.set_params(model_kwargs={})
    assert est.model_kwargs == {}
    copy = clone(est)
    assert copy is not est and copy.get_params()["fit_kwargs"] == est.fit_kwargs
    scores = cross_val_score(make_pipeline(StandardScaler(), est), x, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7  # chance is 1/3
    assert not hasattr(est, "model_")  # cross_val_score fitted clones


def test_a_model_instance_is_cloned_and_the_given_one_left_untrained():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    est = SKLearnRegressor(model=model, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, Y_REG)
    assert est.model_ is not model and est.epoch_ == [0, 1]
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert est.predict(X).shape == (24,)
    twin = clone(SKLearnRegressor(model=model))
    assert twin.model is not model and isinstance(twin.model, keras.Model)


def test_bad_inputs():
    classifier = SKLearnClassifier(
        model=_factory(keras, lambda t: t.shape[1], "softmax", "categorical_crossentropy"),
        fit_kwargs={"epochs": 1, "verbose": 0})
    with pytest.raises(NotFittedError):
        classifier.predict(X)
    with pytest.raises(DataError, match="only one class"):
        classifier.fit(X, np.zeros(24, int))
    with pytest.raises(DataError, match="continuous"):
        classifier.fit(X, Y_REG)
    uncompiled = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match="needs to be compiled"):
        SKLearnRegressor(model=lambda X, y: uncompiled).fit(X, Y_REG)
    with pytest.raises(ConfigError, match="model must be a keras Model or a callable"):
        SKLearnRegressor(model="dense").fit(X, Y_REG)
    classifier.fit(X, Y_CLASS)
    with pytest.raises(ValueError, match="features"):
        classifier.predict(X[:, :3])
