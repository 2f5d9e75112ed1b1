"""Bad arguments on the Keras surface give a BigModelError naming the argument and the value
(issue 18): wrong-rank data in fit/evaluate, wrong-typed fit/evaluate/predict arguments, impossible
input shapes on layers and ``keras.Input``, and ``class_weight`` entries the model cannot have."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import BigModelError, ConfigError, InputTypeError, ShapeError
from bigmodel.keras import layers


def conv_model():
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                              layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def data(samples: int = 8):
    rng = np.random.default_rng(0)
    return rng.random((samples, 8, 8, 1), dtype=np.float32), np.arange(samples) % 4


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_rank_two_x_on_a_conv_model_is_the_shape_error_predict_gives(method):
    flat = np.zeros((8, 64), dtype=np.float32)
    with pytest.raises(ShapeError) as predicted:
        conv_model().predict(flat, verbose=0)
    with pytest.raises(ShapeError) as raised:
        getattr(conv_model(), method)(flat, np.arange(8) % 4, verbose=0)
    for message in (str(predicted.value), str(raised.value)):
        assert "(Conv2D) is incompatible with the layer: expected ndim=4, found ndim=2" in message
    assert "64)" in str(raised.value)


@pytest.mark.parametrize(("method", "kwargs", "error", "text"), [
    ("fit", {"epochs": "2"}, InputTypeError, "epochs='2' (str)"),
    ("fit", {"epochs": 1.5}, InputTypeError, "epochs=1.5 (float)"),
    ("fit", {"epochs": -1}, ConfigError, "epochs=-1"),
    ("fit", {"batch_size": "4"}, InputTypeError, "batch_size='4' (str)"),
    ("fit", {"batch_size": 0}, ConfigError, "batch_size=0"),
    ("fit", {"verbose": "x"}, ConfigError, "verbose='x'"),
    ("fit", {"verbose": 3}, ConfigError, "verbose=3"),
    ("fit", {"validation_split": "0.2"}, InputTypeError, "validation_split='0.2' (str)"),
    ("fit", {"validation_split": 1.5}, ConfigError, "validation_split=1.5"),
    ("fit", {"steps_per_epoch": "2"}, InputTypeError, "steps_per_epoch='2' (str)"),
    ("fit", {"initial_epoch": True}, InputTypeError, "initial_epoch=True (bool)"),
    ("fit", {"validation_freq": 0}, ConfigError, "validation_freq=0"),
    ("evaluate", {"batch_size": 2.5}, InputTypeError, "batch_size=2.5 (float)"),
    ("evaluate", {"steps": "1"}, InputTypeError, "steps='1' (str)"),
    ("predict", {"batch_size": "8"}, InputTypeError, "batch_size='8' (str)"),
    ("predict", {"verbose": None}, ConfigError, "verbose=None"),
])
def test_wrong_argument_names_the_argument_and_the_value(method, kwargs, error, text):
    x, y = data()
    model = conv_model()
    before = [w.copy() for w in model.get_weights()]
    arguments = (x,) if method == "predict" else (x, y)
    kwargs = {"verbose": 0, **kwargs}
    with pytest.raises(error) as raised:
        getattr(model, method)(*arguments, **kwargs)
    assert str(raised.value).startswith(f"{method}: ")
    assert text in str(raised.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing trained


def test_numpy_integers_are_accepted():
    x, y = data()
    history = conv_model().fit(x, y, epochs=np.int64(2), batch_size=np.int32(4), verbose=np.int8(0),
                               validation_split=np.float32(0.25))
    assert len(history.history["loss"]) == 2 and "val_loss" in history.history


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"input_shape": (-1,)}, "input_shape=(-1,)"),
    ({"input_shape": (0,)}, "input_shape=(0,)"),
    ({"input_shape": (2.5,)}, "input_shape=(2.5,)"),
    ({"input_shape": (4, "a")}, "input_shape=(4, 'a')"),
    ({"batch_input_shape": (None, -3)}, "batch_input_shape=(None, -3)"),
    ({"input_dim": 0}, "input_dim=(0,)"),
])
def test_impossible_input_shape_on_a_layer_names_the_layer(kwargs, text):
    with pytest.raises(ConfigError) as raised:
        layers.Dense(3, name="head", **kwargs)
    message = str(raised.value)
    assert message.startswith("Layer 'head' (Dense): ") and text in message


def test_good_input_shapes_still_build():
    model = keras.Sequential([layers.Dense(3, input_shape=(np.int64(5),))])
    assert model.count_params() == 5 * 3 + 3
    assert keras.Sequential([layers.Dense(2, input_dim=4)]).count_params() == 10


@pytest.mark.parametrize("shape", [(-1,), (0, 3), (3.0,)])
def test_impossible_shape_on_keras_input(shape):
    with pytest.raises(ConfigError, match=r"Input\(\): every size in shape"):
        keras.Input(shape)


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"class_weight": {0: 1.0, 4: 2.0}}, "classes [4] that the model does not have: its output has 4"),
    ({"class_weight": {-1: 2.0}}, "classes [-1]"),
    ({"class_weight": {"a": 2.0}}, "received the key 'a' (str)"),
    ({"class_weight": [1.0, 2.0]}, "must be a dict"),
    ({"class_weight": {0: 2.0}, "sample_weight": np.ones(8)}, "cannot be given at the same time"),
])
def test_class_weight_the_model_cannot_use(kwargs, text):
    x, y = data()
    with pytest.raises(ConfigError) as raised:
        conv_model().fit(x, y, verbose=0, **kwargs)
    assert text in str(raised.value)


def test_class_weight_on_a_one_unit_output_allows_classes_0_and_1():
    x = np.random.default_rng(1).random((8, 3), dtype=np.float32)
    y = np.arange(8) % 2
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    model.fit(x, y, class_weight={0: 1.0, 1: 3.0}, verbose=0)
    with pytest.raises(BigModelError, match=r"classes \[2\]"):
        model.fit(x, y, class_weight={2: 1.0}, verbose=0)
