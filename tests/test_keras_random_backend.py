"""keras.random (distributions, seed semantics), keras.backend and keras.config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError, ConfigError, NotSupportedError
from bigmodel.keras import layers, ops

N = 20000


def test_int_seed_is_reproducible_and_seed_generator_advances():
    a = keras.random.normal((5,), seed=3)
    b = keras.random.normal((5,), seed=3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), keras.random.normal((5,), seed=4).numpy())
    gen = keras.random.SeedGenerator(7)
    first, second = keras.random.uniform((5,), seed=gen), keras.random.uniform((5,), seed=gen)
    assert not np.array_equal(first.numpy(), second.numpy())
    again = keras.random.SeedGenerator(7)
    np.testing.assert_array_equal(keras.random.uniform((5,), seed=again).numpy(), first.numpy())
    torch.manual_seed(0)
    c = keras.random.normal((3,))
    torch.manual_seed(0)
    np.testing.assert_array_equal(c.numpy(), keras.random.normal((3,)).numpy())


@pytest.mark.parametrize("draw,mean,std", [
    (lambda: keras.random.normal((N,), mean=2.0, stddev=3.0, seed=1), 2.0, 3.0),
    (lambda: keras.random.uniform((N,), minval=-1.0, maxval=3.0, seed=1), 1.0, 4 / np.sqrt(12)),
    # N(0, 1) truncated at +-2: std 0.8796
    (lambda: keras.random.truncated_normal((N,), seed=1), 0.0, 0.8796),
    (lambda: keras.random.gamma((N,), alpha=3.0, seed=1), 3.0, np.sqrt(3.0)),
    (lambda: keras.random.gamma((N,), alpha=0.5, seed=2), 0.5, np.sqrt(0.5)),
    (lambda: keras.random.beta((N,), 2.0, 3.0, seed=1), 0.4, np.sqrt(6 / (25 * 6))),
    (lambda: keras.random.binomial((N,), 10, 0.3, seed=1), 3.0, np.sqrt(2.1)),
    (lambda: keras.random.randint((N,), 0, 10, seed=1), 4.5, np.sqrt(99 / 12)),
])
def test_distribution_moments(draw, mean, std):
    sample = ops.convert_to_numpy(draw()).astype(np.float64)
    assert abs(sample.mean() - mean) < 4 * std / np.sqrt(N) + 1e-3
    assert abs(sample.std() - std) < 0.03 * std


def test_ranges_and_dtypes():
    t = keras.random.truncated_normal((N,), mean=1.0, stddev=0.5, seed=0).numpy()
    assert t.min() >= 0.0 and t.max() <= 2.0
    r = keras.random.randint((100,), 3, 6, seed=0)
    assert r.dtype == torch.int32 and set(r.tolist()) == {3, 4, 5}
    assert keras.random.normal((2,), dtype="float64").dtype == torch.float64
    with pytest.raises(ConfigError):
        keras.random.normal((2,), dtype="int32")
    with pytest.raises(ConfigError):
        keras.random.normal((2,), seed="abc")


def test_categorical_follows_the_logits():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.0001, 0.0001, 0.9998]], np.float32))
    draws = keras.random.categorical(logits, 5000, seed=0).numpy()
    assert draws.dtype == np.int32 and draws.shape == (2, 5000)
    np.testing.assert_allclose(np.bincount(draws[0], minlength=3) / 5000, [0.7, 0.2, 0.1],
                               atol=0.03)
    assert (draws[1] == 2).mean() > 0.99


def test_dropout_and_shuffle():
    x = np.ones((200, 50), np.float32)
    out = keras.random.dropout(x, 0.3, seed=1).numpy()
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((out == 0).mean() - 0.3) < 0.02
    shared = keras.random.dropout(x, 0.5, noise_shape=(None, 1), seed=2).numpy()
    assert all(len(set(row)) == 1 for row in shared)
    with pytest.raises(ConfigError):
        keras.random.dropout(x, 1.0)
    data = np.arange(20).reshape(10, 2)
    shuffled = keras.random.shuffle(data, seed=0).numpy()
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, data))
    assert not np.array_equal(shuffled, data)


def test_backend_and_config():
    assert keras.backend.backend() == "torch" == keras.config.backend()
    assert keras.backend.floatx() == "float32" and keras.config.epsilon() == 1e-7
    assert keras.backend.image_data_format() == "channels_last"
    keras.config.set_epsilon(1e-5)
    try:
        assert keras.backend.epsilon() == 1e-5
    finally:
        keras.config.set_epsilon(1e-7)
    with pytest.raises(NotSupportedError, match="docs/keras.md"):
        keras.backend.set_floatx("float64")
    with pytest.raises(ConfigError):
        keras.config.set_floatx("float13")
    with pytest.raises(NotSupportedError):
        keras.config.set_image_data_format("channels_first")
    keras.backend.set_floatx("float32")
    assert keras.backend.standardize_dtype(torch.int64) == "int64"
    assert keras.backend.is_float_dtype("bfloat16") and keras.backend.is_int_dtype("uint8")


def test_backend_tensor_helpers():
    x = keras.Input((3, 4))
    assert keras.backend.is_keras_tensor(x) and not keras.backend.is_keras_tensor(np.ones(2))
    assert keras.backend.int_shape(x) == (None, 3, 4)
    assert keras.backend.int_shape(np.ones((2, 5))) == (2, 5)
    dense = layers.Dense(3)
    dense(x)
    assert keras.backend.count_params(dense) == 4 * 3 + 3
    assert keras.backend.count_params(np.ones((2, 5))) == 10
    np.testing.assert_array_equal(keras.backend.get_value(dense.bias), np.zeros(3))
    keras.backend.set_value(dense.bias, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(keras.backend.get_value(dense.bias), [1.0, 2.0, 3.0])
    with pytest.raises(BigModelError):
        keras.backend.set_value(0.1, 0.2)
    with pytest.raises(BigModelError):
        keras.backend.get_value(x)


def test_clear_session_restarts_names():
    keras.backend.clear_session()
    first = layers.Dense(2).name
    layers.Dense(2)
    keras.backend.clear_session()
    assert layers.Dense(2).name == first == "dense"
    assert keras.backend.get_uid("x") == 1 and keras.backend.get_uid("x") == 2


def test_unknown_backend_and_config_names_raise_not_supported():
    with pytest.raises(NotSupportedError, match=r"keras\.config\.enable_unsafe_deserialization.*docs"):
        keras.config.enable_unsafe_deserialization()
    with pytest.raises(NotSupportedError, match=r"keras\.backend\.placeholder"):
        keras.backend.placeholder((2,))
    assert not hasattr(keras.backend, "placeholder") and hasattr(keras.backend, "floatx")
