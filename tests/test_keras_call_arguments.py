"""A functional graph replays every argument of a layer call, as Keras does: ``layer(x, y)``,
``layer(x, factor=10.0)``, ``layer(x, other=y)``. They were dropped (``Scale()(x, factor=10.)``
gave ``x``), the worst kind of difference: a model that runs and computes something else."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import NotSupportedError

A = np.arange(6, dtype="float32").reshape(2, 3)
B = np.full((2, 3), 2.0, dtype="float32")


def _real_keras():
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    if real.backend.backend() != "torch":
        pytest.skip(f"real Keras runs on {real.backend.backend()}, not torch")
    return real


def _layers(base):
    """The same three custom layers, on bigmodel's or on real Keras's ``Layer``."""
    class Scale(base.layers.Layer):
        def call(self, x, factor=1.0):
            return x * factor

    class Mix(base.layers.Layer):
        def call(self, a, b, weight=2.0):
            return a + weight * b

    class Repeat(base.layers.Layer):
        def call(self, x, times=1):
            return base.ops.repeat(x, times, axis=1)

    return {"Scale": Scale, "Mix": Mix, "Repeat": Repeat}


def _model(base, layers):
    x, y = base.Input((3,), name="x"), base.Input((3,), name="y")
    scaled = layers["Scale"]()(x, factor=10.0)            # a constant keyword
    mixed = layers["Mix"]()(scaled, y, weight=3.0)       # a second tensor, positional
    again = layers["Mix"]()(mixed, b=y)                  # a second tensor, by keyword
    out = layers["Repeat"]()(again, times=2)             # the output shape depends on it
    return base.Model([x, y], out)


def _expected():
    once = A * 10.0 + 3.0 * B + 2.0 * B
    return np.repeat(once, 2, axis=1)


def test_call_arguments_are_replayed_and_shape_follows_them():
    model = _model(keras, _layers(keras))
    assert model.output_shape == (None, 6)
    assert model.input_shape == [(None, 3), (None, 3)]  # as Keras: a list for several inputs
    np.testing.assert_allclose(model.predict([A, B], verbose=0), _expected(), rtol=1e-6)


def test_config_round_trip_keeps_call_arguments():
    layers = _layers(keras)
    model = _model(keras, layers)
    rebuilt = keras.Model.from_config(model.get_config(), custom_objects=layers)
    np.testing.assert_allclose(rebuilt.predict([A, B], verbose=0), _expected(), rtol=1e-6)


def test_keras_file_round_trip_here(tmp_path):
    layers = _layers(keras)
    path = str(tmp_path / "m.keras")
    _model(keras, layers).save(path)
    loaded = keras.models.load_model(path, custom_objects=layers)
    np.testing.assert_allclose(loaded.predict([A, B], verbose=0), _expected(), rtol=1e-6)


def test_keras_files_exchange_call_arguments_with_real_keras(tmp_path):
    real = _real_keras()
    ours, theirs = _layers(keras), _layers(real)
    # written by real Keras, read here
    path = str(tmp_path / "real.keras")
    real_model = _model(real, theirs)
    np.testing.assert_allclose(real_model.predict([A, B], verbose=0), _expected(), rtol=1e-6)
    real_model.save(path)
    loaded = keras.models.load_model(path, custom_objects=ours)
    np.testing.assert_allclose(loaded.predict([A, B], verbose=0), _expected(), rtol=1e-6)
    # written here, read by real Keras
    path = str(tmp_path / "ours.keras")
    _model(keras, ours).save(path)
    back = real.models.load_model(path, custom_objects=theirs)
    np.testing.assert_allclose(back.predict([A, B], verbose=0), _expected(), rtol=1e-6)


def test_eager_positional_arguments_fill_call_parameters():
    mix = _layers(keras)["Mix"]()
    out = mix(torch.tensor(A), torch.tensor(B))
    np.testing.assert_allclose(out.numpy(), A + 2.0 * B)
    out = mix(torch.tensor(A), torch.tensor(B), 0.5)
    np.testing.assert_allclose(out.numpy(), A + 0.5 * B)

    class Mode(keras.layers.Layer):
        def call(self, x, training=None):
            return x + (1.0 if training else 0.0)

    # ``layer(x, True)`` is training=True positionally, as in Keras
    assert float(Mode()(torch.zeros(1, 1), True)) == 1.0
    assert float(Mode()(torch.zeros(1, 1))) == 0.0


def test_a_layer_with_weights_and_call_arguments_trains():
    class Gate(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 1), initializer="zeros")

        def call(self, x, context, scale=1.0):
            return keras.ops.matmul(x * scale + context, self.w)

    x, c = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([x, c], Gate()(x, c, scale=0.5))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(0)
    xs, cs = rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 4)).astype("float32")
    target = ((xs * 0.5 + cs) @ np.array([[1.0], [-1.0], [0.5], [2.0]], "float32"))
    history = model.fit([xs, cs], target, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]


def test_an_argument_that_cannot_be_saved_is_named():
    class Apply(keras.layers.Layer):
        def call(self, x, fn=None):
            return fn(x)

    x = keras.Input((3,))
    model = keras.Model(x, Apply()(x, fn=torch.tanh))
    np.testing.assert_allclose(model.predict(A, verbose=0), np.tanh(A), rtol=1e-6)
    with pytest.raises(NotSupportedError, match="cannot be saved"):
        model.get_config()
