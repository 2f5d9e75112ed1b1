"""BatchNormalization / LayerNormalization against NumPy formulas; Keras augmentation wrappers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers as L
from bigmodel.nn import augment as A


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def set_random_bn_weights(layer, channels, rng):
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    beta = rng.normal(size=channels).astype(np.float32)
    mean = rng.normal(size=channels).astype(np.float32)
    var = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    layer.set_weights([gamma, beta, mean, var])
    return gamma, beta, mean, var


# ------------------------------------------------------------------------------ BatchNormalization
def test_batchnorm_training_inference_and_keras_momentum():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(4, 3, 5, 2)).astype(np.float32)
    layer = L.BatchNormalization()
    layer(torch.tensor(x))
    gamma, beta, mean0, var0 = set_random_bn_weights(layer, 2, rng)
    assert [w.shape for w in layer.get_weights()] == [(2,), (2,), (2,), (2,)]

    out = _np(layer(torch.tensor(x), training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased variance
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4,
                               atol=1e-4)
    _, _, moving_mean, moving_var = layer.get_weights()
    np.testing.assert_allclose(moving_mean, 0.99 * mean0 + 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(moving_var, 0.99 * var0 + 0.01 * var, rtol=1e-5)

    inference = _np(layer(torch.tensor(x), training=False))
    np.testing.assert_allclose(
        inference, (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta, rtol=1e-4,
        atol=1e-4)
    np.testing.assert_array_equal(layer.get_weights()[2], moving_mean)  # no update at inference
    assert layer.count_params() == 8
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == 4


def test_batchnorm_gradients_match_the_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 4, 2, dtype=torch.float64)
    weights = torch.randn(3, 4, 4, 2, dtype=torch.float64)
    layer = L.BatchNormalization()
    layer(x)  # builds float32 weights
    layer.double()
    layer.set_weights([np.array([1.5, 0.5]), np.array([0.1, -0.2]), np.zeros(2), np.ones(2)])
    xa = x.clone().requires_grad_(True)
    (layer(xa, training=True) * weights).sum().backward()

    xb = x.clone().requires_grad_(True)
    gamma = torch.tensor([1.5, 0.5], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)
    mean = xb.mean(dim=(0, 1, 2))
    var = ((xb - mean) ** 2).mean(dim=(0, 1, 2))
    ((((xb - mean) / torch.sqrt(var + 1e-3)) * gamma + beta) * weights).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(layer.gamma.grad, gamma.grad)
    torch.testing.assert_close(layer.beta.grad, beta.grad)


def test_frozen_batchnorm_runs_in_inference_mode():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    layer = L.BatchNormalization(momentum=0.9, epsilon=0.01)
    layer(torch.tensor(x))
    gamma, beta, mean, var = set_random_bn_weights(layer, 3, rng)
    layer.trainable = False
    out = _np(layer(torch.tensor(x), training=True))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 0.01) * gamma + beta, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(layer.get_weights()[2], mean)
    assert not any(p.requires_grad for p in layer.parameters())


def test_batchnorm_single_value_per_feature_and_axis_one():
    layer = L.BatchNormalization(momentum=0.5)
    x = torch.tensor([[1.0, -2.0, 3.0]])
    out = layer(x, training=True)  # variance 0: output is beta (zeros)
    torch.testing.assert_close(out, torch.zeros(1, 3))
    np.testing.assert_allclose(layer.get_weights()[2], [0.5, -1.0, 1.5])
    np.testing.assert_allclose(layer.get_weights()[3], [0.5, 0.5, 0.5])

    rng = np.random.default_rng(2)
    nchw = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    first = L.BatchNormalization(axis=1, center=False)
    out = _np(first(torch.tensor(nchw), training=True))
    mean = nchw.mean(axis=(0, 2, 3), keepdims=True)
    var = nchw.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (nchw - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    assert len(first.get_weights()) == 3  # gamma, moving_mean, moving_variance


def test_batchnorm_errors_and_roundtrip():
    layer = L.BatchNormalization(name="bn_a")
    layer(torch.zeros(2, 4, 4, 3))
    with pytest.raises(ShapeError, match=r"'bn_a'.*value 3"):
        layer(torch.zeros(2, 4, 4, 5))
    with pytest.raises(ShapeError, match="bn_b"):
        L.BatchNormalization(axis=3, name="bn_b")(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="momentum=1.5"):
        L.BatchNormalization(momentum=1.5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    bn = L.BatchNormalization(momentum=0.9, gamma_regularizer="l2")
    bn(torch.tensor(x))
    set_random_bn_weights(bn, 2, rng)
    bn.eval()
    clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(bn))))
    clone.eval()
    clone(torch.tensor(x))
    clone.set_weights(bn.get_weights())
    np.testing.assert_allclose(_np(clone(torch.tensor(x))), _np(bn(torch.tensor(x))), rtol=1e-6)
    assert clone.momentum == 0.9


# ------------------------------------------------------------------------------ LayerNormalization
def test_layernorm_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(2, 3, 5)).astype(np.float32)
    layer = L.LayerNormalization()
    layer(torch.tensor(x))
    gamma = rng.uniform(0.5, 1.5, 5).astype(np.float32)
    beta = rng.normal(size=5).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(_np(layer(torch.tensor(x))),
                               (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4,
                               atol=1e-5)
    assert layer.count_params() == 10


def test_layernorm_multiple_axes_and_rms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    layer = L.LayerNormalization(axis=[1, 2], epsilon=1e-5)
    layer(torch.tensor(x))
    gamma = rng.uniform(0.5, 1.5, (3, 4)).astype(np.float32)
    beta = rng.normal(size=(3, 4)).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma[None, :, :, None] + beta[None, :, :, None]
    np.testing.assert_allclose(_np(layer(torch.tensor(x))), expected, rtol=1e-4, atol=1e-5)

    trailing = L.LayerNormalization(axis=(-2, -1), center=False)
    out = _np(trailing(torch.tensor(x)))
    mean, var = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)

    rms = L.LayerNormalization(rms_scaling=True)
    out = _np(rms(torch.tensor(x)))
    assert len(rms.get_weights()) == 1  # gamma only
    np.testing.assert_allclose(out, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-3),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match="ln_a"):
        L.LayerNormalization(axis=4, name="ln_a")(torch.tensor(x))
    with pytest.raises(ConfigError, match="axis"):
        L.LayerNormalization(axis="last")
    clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(layer))))
    clone(torch.tensor(x))
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(torch.tensor(x)), layer(torch.tensor(x)))


# ------------------------------------------------------------------------------ augmentation
WRAPPERS = [
    (lambda s: L.RandomFlip("horizontal", seed=s), lambda s: A.RandomFlip("horizontal", seed=s)),
    (lambda s: L.RandomTranslation(0.2, 0.2, seed=s),
     lambda s: A.RandomTranslation(0.2, 0.2, seed=s)),
    (lambda s: L.RandomRotation(0.1, fill_mode="constant", seed=s),
     lambda s: A.RandomRotation(0.1, fill_mode="constant", seed=s)),
    (lambda s: L.RandomZoom(0.2, 0.1, seed=s), lambda s: A.RandomZoom(0.2, 0.1, seed=s)),
    (lambda s: L.RandomErasing(probability=1.0, seed=s),
     lambda s: A.RandomErasing(probability=1.0, seed=s)),
]


@pytest.mark.parametrize("make_layer, make_module", WRAPPERS)
def test_wrappers_are_channels_last_views_of_the_modules(make_layer, make_module):
    x = torch.randn(6, 5, 7, 3)  # NHWC
    layer = make_layer(4)
    assert layer(x, training=False) is x
    layer.eval()
    assert layer(x) is x
    layer.train()
    out = layer(x)
    assert out.shape == x.shape and out.is_contiguous()
    assert not torch.allclose(out, x)
    expected = make_module(4).transform(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, expected)
    assert layer.compute_output_shape((None, 5, 7, 3)) == (None, 5, 7, 3)
    spec = json.loads(json.dumps(L.serialize_layer(layer)))
    clone = L.deserialize_layer(spec)
    torch.testing.assert_close(clone(x, training=True), make_layer(4)(x, training=True))


def test_keras_random_flip_reverses_width_axis():
    x = torch.randn(32, 4, 5, 2)
    out = L.RandomFlip("horizontal", seed=0)(x, training=True)
    flipped = (out == x.flip(2)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped | same).all()) and flipped.any() and same.any()
    out = L.RandomFlip("vertical", seed=0)(x, training=True)
    flipped = (out == x.flip(1)).flatten(1).all(1)
    assert bool((flipped | (out == x).flatten(1).all(1)).all()) and flipped.any()
    single = torch.randn(4, 5, 2)  # one unbatched image
    assert L.RandomFlip(seed=0)(single, training=True).shape == single.shape


def test_augmentation_layer_errors():
    with pytest.raises(ConfigError, match="mode"):
        L.RandomFlip("sideways")
    with pytest.raises(ConfigError, match="factor"):
        L.RandomRotation((0.1, 0.2, 0.3))
    with pytest.raises(ShapeError, match="aug_a"):
        L.RandomZoom(0.1, name="aug_a")(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="data_format"):
        L.RandomFlip(data_format="nhwc")
