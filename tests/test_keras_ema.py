"""Optimizers' use_ema (Keras's moving average of the weights) and keras.callbacks.SwapEMAWeights,
against real Keras 3 (torch backend) given the same weights and data."""


import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError
from keras_reference import real_keras as _real_keras


def _data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5)).astype("float32")
    return x, rng.integers(0, 3, size=40)


def _model(lib, **ema):
    model = lib.Sequential([lib.Input((5,)), lib.layers.Dense(4, activation="relu"),
                            lib.layers.Dense(3, activation="softmax")])
    # SGD: Adam amplifies float rounding differences (~1e-5) between the two on relu kinks
    model.compile(optimizer=lib.optimizers.SGD(0.1, momentum=0.9, use_ema=True, **ema),
                  loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("ema", [{"ema_momentum": 0.8}, {"ema_momentum": 0.9,
                                                         "ema_overwrite_frequency": 3}])
def test_fit_with_ema_ends_on_the_same_averaged_weights_as_keras(ema):
    real = _real_keras()
    x, y = _data()
    ours, theirs = _model(keras, **ema), _model(real, **ema)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert ours.optimizer.get_config()["ema_momentum"] == ema["ema_momentum"]


def test_ema_equals_the_textbook_average_of_the_weights_after_each_step():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.75)
    values, average = [], None
    for grad in ([1.0, 1.0], [0.5, -1.0], [-2.0, 0.0], [1.0, 3.0]):
        optimizer.apply([torch.tensor(grad)], [weight])
        value = weight.detach().numpy().copy()
        values.append(value)
        # momentum 0 at the first update: the average starts at the weights after it
        average = value if average is None else 0.75 * average + 0.25 * value
    np.testing.assert_allclose(values[-1], [1.0 - 0.5 * 0.5, -2.0 - 0.5 * 3.0], atol=1e-6)
    np.testing.assert_allclose(optimizer._model_variables_moving_average[0].numpy(), average,
                               atol=1e-6)
    optimizer.finalize_variable_values([weight])
    np.testing.assert_allclose(weight.detach().numpy(), average, atol=1e-6)


def test_swap_ema_weights_evaluates_with_the_average_as_keras():
    real = _real_keras()
    x, y = _data()
    results = {}
    for name, lib in (("ours", keras), ("theirs", real)):
        model = _model(lib, ema_momentum=0.7)
        if name == "ours":
            start = model.get_weights()
        else:
            model.set_weights(start)
        swap = lib.callbacks.SwapEMAWeights(swap_on_epoch=True)
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                            validation_data=(x[:16], y[:16]), callbacks=[swap])
        results[name] = (history.history["val_loss"], model.get_weights(),
                         model.evaluate(x, y, verbose=0, callbacks=[lib.callbacks.SwapEMAWeights()]))
    (val, weights, loss), (k_val, k_weights, k_loss) = results["ours"], results["theirs"]
    np.testing.assert_allclose(val, k_val, atol=1e-5)
    for got, want in zip(weights, k_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert loss == pytest.approx(k_loss, abs=1e-5)


def test_bad_ema_arguments_and_swap_without_ema_are_refused():
    with pytest.raises(ConfigError, match="ema_momentum"):
        keras.optimizers.SGD(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ConfigError, match="ema_overwrite_frequency"):
        keras.optimizers.SGD(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(InputTypeError, match="use_ema"):
        keras.optimizers.SGD(use_ema="yes")
    x, y = _data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="use_ema=True"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                  callbacks=[keras.callbacks.SwapEMAWeights()])


def test_use_ema_survives_a_keras_file_both_ways(tmp_path):
    real = _real_keras()
    ours = _model(keras, ema_momentum=0.7, ema_overwrite_frequency=5)
    ours.save(tmp_path / "ours.keras")
    theirs = real.models.load_model(tmp_path / "ours.keras")
    assert (theirs.optimizer.use_ema, theirs.optimizer.ema_momentum,
            theirs.optimizer.ema_overwrite_frequency) == (True, 0.7, 5)
    theirs.save(tmp_path / "theirs.keras")
    back = keras.models.load_model(tmp_path / "theirs.keras")
    assert (back.optimizer.use_ema, back.optimizer.ema_momentum,
            back.optimizer.ema_overwrite_frequency) == (True, 0.7, 5)
