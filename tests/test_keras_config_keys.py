"""Configs written by real Keras 3 build bigmodel objects: initializers with Keras 3.13+'s
``input_axes``/``output_axes``, every regularizer and constraint class Keras exports (the
OrthogonalRegularizer included, numbers against NumPy and real Keras)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError
from bigmodel.keras import initializers, regularizers
from keras_reference import real_keras as _real_keras

# Keras exports without a bigmodel counterpart (a layer bigmodel does not have uses it).
_NOT_SUPPORTED = {"STFT", "STFTInitializer", "stft"}


@pytest.mark.parametrize("module", ["initializers", "regularizers", "constraints"])
def test_every_keras_class_config_builds_here(module):
    real = _real_keras()
    theirs, ours = getattr(real, module), getattr(keras, module)
    checked = 0
    for name, cls in sorted(vars(theirs).items()):
        if not inspect.isclass(cls) or name in ("Initializer", "Regularizer", "Constraint") \
                or name in _NOT_SUPPORTED:
            continue
        spec = real.saving.serialize_keras_object(cls())
        built = ours.get(spec)
        assert type(built).__name__ in (spec["class_name"], f"{spec['class_name']}Initializer")
        keys = set(cls().get_config())
        assert keys <= set(built.get_config()), (name, keys, built.get_config())
        checked += 1
    assert checked >= 6


def test_fan_axes_from_a_keras_config():
    spec = {"module": "keras.initializers", "class_name": "VarianceScaling",
            "config": {"seed": 3, "scale": 2.0, "mode": "fan_in", "distribution": "uniform",
                       "input_axes": [0, 1], "output_axes": [2]}}
    init = initializers.get(spec)
    assert initializers.compute_fans((4, 5, 6), [0, 1], [2]) == (20, 6)
    values = init((4, 5, 6)).numpy()
    limit = np.sqrt(3.0 * 2.0 / 20)  # fan_in = 4 * 5 from the axes, not 5 * 4 (conv rule)
    assert values.max() <= limit and values.max() > 0.9 * limit
    glorot = initializers.get({"class_name": "GlorotUniform",
                               "config": {"seed": 1, "input_axes": [1], "output_axes": [0]}})
    values = glorot((30, 10)).numpy()
    assert np.abs(values).max() <= np.sqrt(6.0 / 40) + 1e-7
    assert glorot.get_config() == {"seed": 1, "input_axes": [1], "output_axes": [0]}
    with pytest.raises(ConfigError, match="input_axes"):
        initializers.GlorotUniform(input_axes="first")


def test_same_initial_values_as_keras_with_fan_axes():
    """The limit of a uniform initializer follows the axes exactly as Keras computes it."""
    real = _real_keras()
    theirs = real.initializers.HeUniform(input_axes=[0], output_axes=[1, 2])
    ours = initializers.get(real.saving.serialize_keras_object(theirs))
    shape = (7, 3, 4)
    real_limit = np.sqrt(6.0 / 7)
    assert np.abs(np.asarray(theirs(shape))).max() <= real_limit + 1e-7
    assert np.abs(ours(shape).numpy()).max() <= real_limit + 1e-7
    assert np.abs(ours(shape).numpy()).max() > 0.8 * real_limit


def _orthogonal_penalty(w: np.ndarray, factor: float, mode: str) -> float:
    v = w if mode == "rows" else w.T
    v = v / np.sqrt(np.maximum((v ** 2).sum(axis=1, keepdims=True), 1e-12))
    gram = v @ v.T
    n = gram.shape[0]
    return factor * 0.5 * np.abs(gram * (1 - np.eye(n))).sum() / (n * (n - 1) / 2)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_against_numpy_in_keras_layout(mode):
    w = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    reg = regularizers.get({"class_name": "OrthogonalRegularizer",
                            "config": {"factor": 0.1, "mode": mode}})
    np.testing.assert_allclose(float(reg(torch.from_numpy(w))), _orthogonal_penalty(w, 0.1, mode),
                               rtol=1e-5)
    # A Dense kernel is stored transposed here: the penalty still sees Keras's (in, out) layout.
    dense = keras.layers.Dense(4, kernel_regularizer=reg)
    dense.build((None, 6))
    dense.set_weights([w, np.zeros(4, np.float32)])
    np.testing.assert_allclose(float(dense.regularization_losses()[0]),
                               _orthogonal_penalty(w, 0.1, mode), rtol=1e-5)
    with pytest.raises(ConfigError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ConfigError, match="rank 2"):
        reg(torch.ones(2, 3, 4))


def test_dense_config_from_real_keras_gives_the_same_penalty():
    real = _real_keras()
    theirs = real.layers.Dense(
        4, kernel_initializer=real.initializers.GlorotUniform(seed=2),
        kernel_regularizer=real.regularizers.OrthogonalRegularizer(0.05, "columns"),
        bias_regularizer="l2", kernel_constraint=real.constraints.MaxNorm(3.0))
    theirs.build((None, 6))
    ours = keras.saving.deserialize_keras_object(real.saving.serialize_keras_object(theirs))
    ours.build((None, 6))
    ours.set_weights([np.asarray(v) for v in theirs.get_weights()])
    x = np.ones((2, 6), np.float32)
    theirs(x)
    ours(torch.from_numpy(x))
    np.testing.assert_allclose(sorted(float(v) for v in ours.regularization_losses()),
                               sorted(float(v) for v in theirs.losses), rtol=1e-5, atol=1e-8)
