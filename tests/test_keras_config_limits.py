"""keras.config.set_max_epochs / set_max_steps_per_epoch: the debugging caps fit, evaluate and
predict honour, checked against real Keras 3 (torch backend) on the same model and data."""

import warnings

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError
from keras_reference import real_keras as _real_keras


def _model(lib):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


@pytest.fixture
def capped():
    """Caps of 2 epochs and 3 steps here and in real Keras, removed afterwards."""
    real = _real_keras()
    for lib in (keras, real):
        lib.config.set_max_epochs(2)
        lib.config.set_max_steps_per_epoch(3)
    yield real
    for lib in (keras, real):
        lib.config.set_max_epochs(None)
        lib.config.set_max_steps_per_epoch(None)


def test_fit_evaluate_predict_honour_the_caps_as_keras(capped):
    real = capped
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype("float32")
    y = rng.integers(0, 3, size=100)
    ours, theirs = _model(keras), _model(real)
    theirs.set_weights(ours.get_weights())
    assert keras.config.max_epochs() == 2 and keras.config.max_steps_per_epoch() == 3
    results = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, batch_size=10, epochs=5, shuffle=False, verbose=0)
        messages = " ".join(str(w.message) for w in caught)
        assert "Limiting epochs to 2" in messages and "Limiting steps_per_epoch to 3" in messages
        results[name] = (len(history.history["loss"]), int(np.asarray(model.optimizer.iterations)),
                         model.evaluate(x, y, batch_size=10, verbose=0),
                         model.predict(x, batch_size=10, verbose=0))
    (epochs, steps, loss, out), (k_epochs, k_steps, k_loss, k_out) = results["ours"], results["theirs"]
    assert (epochs, steps) == (k_epochs, k_steps) == (2, 6)  # 2 epochs of 3 batches
    assert out.shape == k_out.shape == (30, 3)  # predict stops after 3 batches of 10
    np.testing.assert_allclose(out, k_out, atol=1e-5)
    assert loss == pytest.approx(k_loss, abs=1e-5)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_no_cap_by_default_and_bad_caps_refused():
    assert keras.config.max_epochs() is None and keras.config.max_steps_per_epoch() is None
    model = _model(keras)
    x, y = np.zeros((20, 4), "float32"), np.zeros(20, "int64")
    assert len(model.fit(x, y, batch_size=10, epochs=3, verbose=0).history["loss"]) == 3
    assert model.predict(x, batch_size=10, verbose=0).shape == (20, 3)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ConfigError, match="set_max_epochs"):
            keras.config.set_max_epochs(bad)
        with pytest.raises(ConfigError, match="set_max_steps_per_epoch"):
            keras.config.set_max_steps_per_epoch(bad)
    assert keras.config.max_epochs() is None
