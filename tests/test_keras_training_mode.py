"""Which mode a Keras layer runs in when ``training=`` is not given: Keras 3's rule.

A call with ``training=`` pins it for that call and every layer the call runs (the call context); a
call without it, outside any such call, runs in inference mode -- before fit, after fit, on a layer,
a Sequential, a functional or a subclassed model. bigmodel used to run such calls in training mode
(torch's default), so ``model(x)`` after ``fit`` applied dropout and BatchNormalization used batch
statistics, silently. Each case is checked against real Keras 3 (torch backend) when installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bigmodel import keras

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = np.ones((64, 8), "float32")


def _dropped(out) -> bool:
    """Whether a Dropout(0.5) of ones dropped anything (inference mode returns the ones)."""
    return not np.array_equal(np.asarray(out), np.ones_like(np.asarray(out)))


class Holder:
    """A subclassed model whose call runs a Dropout without passing ``training`` on."""

    @staticmethod
    def build(k):
        class Sub(k.Model):
            def __init__(self):
                super().__init__()
                self.drop = k.layers.Dropout(0.5)

            def call(self, x):
                return self.drop(x)

        return Sub()


def _cases(k):
    inputs = k.Input((8,))
    functional = k.Model(inputs, k.layers.Dropout(0.5)(inputs))
    return {"layer": k.layers.Dropout(0.5), "sequential": k.Sequential([k.layers.Dropout(0.5)]),
            "functional": functional, "subclassed": Holder.build(k)}


def _modes(k) -> dict[str, tuple[bool, ...]]:
    found = {}
    for name, model in _cases(k).items():
        before = _dropped(model(X))
        pinned_on = _dropped(model(X, training=True))
        pinned_off = _dropped(model(X, training=False))
        after = None
        if name != "layer":
            model.compile(optimizer="sgd", loss="mse")
            model.fit(X, X, epochs=1, batch_size=32, verbose=0)
            after = _dropped(model(X))
        found[name] = (before, pinned_on, pinned_off, after)
    return found


def test_calls_without_training_run_in_inference_mode():
    modes = _modes(keras)
    for name, (before, pinned_on, pinned_off, after) in modes.items():
        assert (before, pinned_on, pinned_off) == (False, True, False), name
        assert after in (None, False), name  # fit leaves the model as it found it


def test_the_same_modes_as_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    if real.backend.backend() != "torch":
        pytest.skip("real Keras runs another backend in this process")
    assert _modes(keras) == _modes(real)


def test_batch_normalization_after_fit_uses_its_moving_statistics():
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(3.0, 2.0, (32, 3)).astype("float32")
    model.fit(x, x, epochs=1, batch_size=32, verbose=0)
    layer = model.layers[0]
    gamma, beta, mean, var = layer.get_weights()  # Keras's order
    direct = np.asarray(model(x).detach())
    expected = (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta  # inference: moving stats
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-5)
    after = layer.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip((gamma, beta, mean, var), after))  # no update
    assert not np.allclose(mean, 0.0)  # fit did move the statistics


def test_an_explicit_mode_reaches_nested_layers_and_ends_with_the_call():
    model = Holder.build(keras)
    assert _dropped(model(X, training=True))  # the inner Dropout was not given training=
    assert not _dropped(model(X))             # the context ended with the call
    model.train()                              # torch's explicit mode is still honoured
    assert _dropped(model(X))
    model.eval()
    assert not _dropped(model(X))


def test_variables_answer_keras_short_names():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    assert [w.name for w in model.weights] == ["kernel", "bias"]
    assert [w.path for w in model.weights] == ["head/kernel", "head/bias"]


IMAGES = np.arange(2 * 6 * 6 * 1, dtype="float32").reshape(2, 6, 6, 1)


def _default_modes(k) -> dict[str, bool]:
    """Keras falls back to ``call``'s own default for ``training``: its augmentation layers declare
    ``training=True`` (called directly, as in a ``tf.data`` map, they augment), and a layer whose
    call defaults to True passes that mode to the layers it calls; predict still pins False."""
    class Adds(k.layers.Layer):
        def call(self, x, training=None):
            return x + (1.0 if training else 0.0)

    class Outer(k.layers.Layer):
        def __init__(self):
            super().__init__()
            self.inner = Adds()

        def call(self, x, training=True):
            return self.inner(x)

    class Sub(k.Model):
        def __init__(self):
            super().__init__()
            self.flip = k.layers.RandomFlip("horizontal", seed=5)

        def call(self, x):
            return self.flip(x)

    zeros = np.zeros((1, 1), "float32")
    flip = k.layers.RandomFlip("horizontal", seed=4)
    sub = Sub()
    return {
        "direct augmentation changes some calls": any(
            not np.array_equal(np.asarray(flip(IMAGES)), IMAGES) for _ in range(12)),
        "direct augmentation with training=False": any(
            not np.array_equal(np.asarray(flip(IMAGES, training=False)), IMAGES) for _ in range(4)),
        "nested layer gets the outer default": float(np.asarray(Outer()(zeros))[0, 0]) == 1.0,
        "a None default stays inference": float(np.asarray(Adds()(zeros))[0, 0]) == 1.0,
        "subclassed predict augments": any(
            not np.array_equal(sub.predict(IMAGES, verbose=0), IMAGES) for _ in range(6)),
    }


def test_calls_fall_back_to_calls_own_training_default():
    assert _default_modes(keras) == {
        "direct augmentation changes some calls": True,
        "direct augmentation with training=False": False,
        "nested layer gets the outer default": True,
        "a None default stays inference": False,
        "subclassed predict augments": False,
    }


def test_call_defaults_as_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    if real.backend.backend() != "torch":
        pytest.skip("real Keras runs another backend in this process")
    ours, theirs = _default_modes(keras), _default_modes(real)
    # One deliberate difference: Keras 3.15 drops predict's training=False when the model's call
    # has no training argument, so its augmentation layers augment predictions; here predict runs
    # them in inference mode (docs/keras.md).
    assert theirs.pop("subclassed predict augments") is True
    assert ours.pop("subclassed predict augments") is False
    assert ours == theirs


def test_finding_an_output_shape_leaves_the_layers_own_default():
    class Shifts(keras.layers.Layer):  # no compute_output_shape: its call is run on zeros
        def call(self, x, training=True):
            return x + (1.0 if training else 0.0)

    layer = Shifts()
    inputs = keras.Input((1,))
    keras.Model(inputs, layer(inputs))
    assert float(layer(np.zeros((1, 1), "float32"))[0, 0]) == 1.0  # still call's default
    layer.eval()
    assert float(layer(np.zeros((1, 1), "float32"))[0, 0]) == 0.0  # a chosen mode wins
