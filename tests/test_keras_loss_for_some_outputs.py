"""A model with several outputs compiled with ``None`` for some of them (``loss=[fn, None]``)
takes ``y`` for only the outputs that have a loss, as Keras 3 does (keras.io's miniature GPT,
``tests/keras_programs/text_generation_mini_gpt.py``: ``fit(x, y)`` with one ``y`` for a model
whose second output is the Transformer's features). Numbers against NumPy and real Keras 3
(torch backend) given the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ShapeError
from keras_reference import real_keras as _real_keras

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _build(k):
    inputs = k.Input((4,))
    hidden = k.layers.Dense(3, activation="tanh")(inputs)
    first = k.layers.Dense(2, name="first")(hidden)
    second = k.layers.Dense(1, name="second")(hidden)
    return k.Model(inputs, [first, hidden, second])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y_first = rng.normal(size=(16, 2)).astype("float32")
    y_second = rng.normal(size=(16, 1)).astype("float32")
    return x, y_first, y_second


def _weights(model):
    return [np.linspace(-0.6, 0.6, w.size, dtype="float32").reshape(w.shape) * (i + 1)
            for i, w in enumerate(model.get_weights())]


def _fit_and_evaluate(k, y_fit, y_eval, loss):
    model = _build(k)
    model.set_weights(_weights(model))
    model.compile(optimizer=k.optimizers.SGD(0.1), loss=loss)
    x = _data()[0]
    history = model.fit(x, y_fit, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model, history.history["loss"], model.evaluate(x, y_eval, batch_size=16, verbose=0)


def test_one_y_for_the_one_output_with_a_loss_against_numpy():
    x, y_first, _ = _data()
    model = _build(keras)
    model.set_weights(_weights(model))
    model.compile(optimizer="sgd", loss=[None, None, "mse"])
    predicted = model.predict(x, verbose=0)[2]
    target = y_first[:, :1]
    expected = float(np.mean((predicted - target) ** 2))
    logs = model.evaluate(x, target, batch_size=16, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["second_loss"] == pytest.approx(expected, rel=1e-5)
    # the same y, given in full (None for the outputs without a loss), gives the same loss
    full = model.evaluate(x, [None, None, target], batch_size=16, verbose=0, return_dict=True)
    assert full == pytest.approx(logs, rel=1e-6)


def test_fit_with_targets_for_the_outputs_with_a_loss_equals_real_keras():
    real = _real_keras()
    x, y_first, y_second = _data()
    for loss, y in ((["mse", None, None], y_first),
                    (["mse", None, "mae"], [y_first, y_second])):
        ours, our_history, our_eval = _fit_and_evaluate(keras, y, y, loss)
        theirs, their_history, their_eval = _fit_and_evaluate(real, y, y, loss)
        np.testing.assert_allclose(our_history, their_history, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(our_eval, their_eval, rtol=1e-5, atol=1e-6)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_py_dataset_batch_with_one_y_trains_the_output_with_a_loss():
    x, y_first, _ = _data()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return x[index * 8:(index + 1) * 8], y_first[index * 8:(index + 1) * 8]

    model = _build(keras)
    model.set_weights(_weights(model))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", None, None])
    history = model.fit(Batches(), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    same = _build(keras)
    same.set_weights(_weights(same))
    same.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", None, None])
    arrays = same.fit(x, y_first, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], arrays.history["loss"], rtol=1e-6)


def test_targets_that_match_neither_the_outputs_nor_the_losses_are_refused():
    x, y_first, y_second = _data()
    model = _build(keras)
    model.compile(optimizer="sgd", loss=["mse", None, "mae"])
    with pytest.raises(ShapeError, match="3 outputs"):
        model.fit(x, y_first, epochs=1, verbose=0)  # two outputs have a loss: one y is not enough
    with pytest.raises(ShapeError, match="3 outputs"):
        model.fit(x, [y_first, y_second, y_second, y_second], epochs=1, verbose=0)
    every = _build(keras)
    every.compile(optimizer="sgd", loss="mse")  # every output has a loss: one y does not do
    with pytest.raises(ShapeError, match="3 outputs"):
        every.fit(x, y_first, epochs=1, verbose=0)
