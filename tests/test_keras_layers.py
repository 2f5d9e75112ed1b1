"""Keras core layers, initializers, regularizers and activations against NumPy references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import special

from bigmodel.errors import ConfigError, DataError, ShapeError, UnknownNameError
from bigmodel.keras import activations, initializers, regularizers
from bigmodel.keras import layers as L


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def roundtrip(layer: L.Layer, x: np.ndarray) -> None:
    """Config -> JSON -> new layer with the same weights gives the same outputs."""
    layer.eval()
    expected = _np(layer(torch.as_tensor(x)))
    spec = json.loads(json.dumps(L.serialize_layer(layer)))
    clone = L.deserialize_layer(spec)
    clone.eval()
    clone(torch.as_tensor(x))  # build
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(torch.as_tensor(x))), expected, rtol=1e-6, atol=1e-6)
    assert L.serialize_layer(clone)["config"] == spec["config"]


# ------------------------------------------------------------------------------ initializers
def test_glorot_uniform_limits_and_statistics():
    torch.manual_seed(0)
    w = initializers.get("glorot_uniform")((300, 200))
    limit = math.sqrt(6 / (300 + 200))
    assert w.shape == (300, 200) and w.dtype == torch.float32
    assert w.abs().max() <= limit
    assert w.abs().max() > 0.98 * limit
    assert abs(w.std().item() - limit / math.sqrt(3)) < 0.03 * limit
    assert abs(w.mean().item()) < 0.01 * limit


def test_conv_kernel_fans_use_receptive_field():
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((5,)) == (5, 5)
    assert initializers.compute_fans(()) == (1, 1)
    torch.manual_seed(1)
    w = initializers.get("he_uniform")((3, 3, 16, 32))
    assert w.abs().max() <= math.sqrt(6 / 144)
    assert w.abs().max() > 0.95 * math.sqrt(6 / 144)


def test_truncated_normal_family():
    torch.manual_seed(2)
    w = initializers.get("he_normal")((400, 300))
    std = math.sqrt(2 / 400)
    raw = std / 0.87962566103423978
    assert w.abs().max() <= 2 * raw + 1e-6  # truncated at two (untruncated) standard deviations
    assert abs(w.std().item() - std) < 0.03 * std
    t = initializers.get("truncated_normal")((10000,))
    assert t.abs().max() <= 0.1 + 1e-6


def test_default_random_initializers_have_keras_ranges():
    torch.manual_seed(3)
    u = initializers.get("random_uniform")((20000,))
    assert -0.05 <= u.min() and u.max() <= 0.05 and u.max() > 0.049
    assert isinstance(initializers.get("uniform"), initializers.RandomUniform)
    n = initializers.get("random_normal")((20000,))
    assert abs(n.std().item() - 0.05) < 0.002
    assert torch.equal(initializers.get("zeros")((2, 3)), torch.zeros(2, 3))
    assert torch.equal(initializers.get("ones")((2,)), torch.ones(2))
    assert torch.equal(initializers.Constant(2.5)((2,)), torch.full((2,), 2.5))


def test_orthogonal_and_identity():
    q = initializers.get("orthogonal")((3, 3, 4, 8))  # flattened to (36, 8): orthonormal columns
    flat = q.reshape(36, 8).double()
    torch.testing.assert_close(flat.T @ flat, torch.eye(8, dtype=torch.float64), atol=1e-5,
                               rtol=0)
    wide = initializers.OrthogonalInitializer(gain=2.0)((4, 10)).double()
    torch.testing.assert_close(wide @ wide.T, 4 * torch.eye(4, dtype=torch.float64), atol=1e-5,
                               rtol=0)
    assert torch.equal(initializers.get("identity")((3, 3)), torch.eye(3))
    with pytest.raises(ConfigError, match="2D"):
        initializers.get("identity")((3, 3, 3))


def test_seeded_initializer_repeats_and_serializes():
    init = initializers.GlorotNormal(seed=7)
    torch.testing.assert_close(init((5, 4)), init((5, 4)))
    spec = json.loads(json.dumps(initializers.serialize(init)))
    # Keras 3.15's keys: the fan axes are written even when unset
    assert spec == {"class_name": "GlorotNormal",
                    "config": {"seed": 7, "input_axes": None, "output_axes": None}}
    torch.testing.assert_close(initializers.get(spec)((5, 4)), init((5, 4)))
    vs = initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="uniform", seed=1)
    again = initializers.get(initializers.serialize(vs))
    assert again.get_config() == vs.get_config()


def test_unknown_initializer_lists_known_names():
    with pytest.raises(UnknownNameError, match="glorot_uniform") as info:
        initializers.get("glorot_unifrom")
    assert "glorot_unifrom" in str(info.value)
    with pytest.raises(UnknownNameError, match=r"'dense_init'.*kernel_initializer.*'nope'"):
        L.Dense(3, kernel_initializer="nope", name="dense_init")
    with pytest.raises(UnknownNameError, match="bn_init"):
        L.BatchNormalization(gamma_initializer="nope", name="bn_init")
    with pytest.raises(ConfigError, match="scale"):
        initializers.VarianceScaling(scale=-1.0)


# ------------------------------------------------------------------------------ regularizers
def test_regularizer_values():
    w = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    assert regularizers.get("l2")(w).item() == pytest.approx(0.01 * 30)
    assert regularizers.get("l1")(w).item() == pytest.approx(0.01 * 10)
    assert regularizers.get("l1_l2")(w).item() == pytest.approx(0.01 * 10 + 0.01 * 30)
    assert regularizers.L1L2(l1=0.5)(w).item() == pytest.approx(5.0)
    assert regularizers.get(None) is None
    spec = json.loads(json.dumps(regularizers.serialize(regularizers.L2(0.3))))
    assert regularizers.get(spec)(w).item() == pytest.approx(0.3 * 30)
    with pytest.raises(UnknownNameError, match="l1_l2"):
        regularizers.get("l3")
    with pytest.raises(ConfigError, match="l2=-1"):
        regularizers.L2(-1)


def test_layer_regularization_losses():
    torch.manual_seed(0)
    layer = L.Dense(3, kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.5),
                    bias_initializer="ones")
    layer(torch.randn(2, 4))
    kernel, bias = layer.get_weights()
    losses = [t.item() for t in layer.regularization_losses()]
    assert losses == pytest.approx([0.01 * np.sum(kernel ** 2), 0.5 * np.sum(np.abs(bias))],
                                   rel=1e-5)
    act = L.Dense(2, activity_regularizer="l1", kernel_initializer="ones", use_bias=False)
    out = act(torch.ones(4, 3))  # every output is 3
    assert _np(out).sum() == pytest.approx(24.0)
    assert act.losses[0].item() == pytest.approx(0.01 * 24.0 / 4)  # divided by the batch size


# ------------------------------------------------------------------------------ activations
def test_activation_values():
    x = np.linspace(-4, 4, 17).astype(np.float32)
    t = torch.tensor(x)
    expected = {
        "relu": np.maximum(x, 0), "sigmoid": special.expit(x), "tanh": np.tanh(x),
        "elu": np.where(x > 0, x, np.exp(x) - 1),
        "selu": 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
        "softplus": np.log1p(np.exp(x)), "softsign": x / (1 + np.abs(x)),
        "swish": x * special.expit(x), "silu": x * special.expit(x),
        "leaky_relu": np.where(x > 0, x, 0.2 * x), "exponential": np.exp(x),
        "hard_sigmoid": np.clip(x / 6 + 0.5, 0, 1), "linear": x,
        "gelu": 0.5 * x * (1 + special.erf(x / np.sqrt(2))),
    }
    for name, ref in expected.items():
        np.testing.assert_allclose(_np(activations.get(name)(t)), ref, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(_np(activations.get("softmax")(torch.tensor(m))),
                               special.softmax(m, axis=-1), rtol=1e-6)
    assert activations.get(None) is activations.linear
    np.testing.assert_allclose(_np(activations.relu(t, max_value=2.0, negative_slope=0.1)),
                               np.where(x > 0, np.minimum(x, 2.0), 0.1 * x), rtol=1e-6)


def test_activation_names_serialize_and_unknown():
    for name in ("relu", "softmax", "gelu", "swish", "linear", "hard_sigmoid"):
        fn = activations.get(name)
        assert activations.get(activations.serialize(fn)) is fn
    assert activations.is_softmax(activations.get("softmax"))
    assert not activations.is_softmax(activations.get("relu"))
    assert activations.is_sigmoid(activations.get("sigmoid"))
    with pytest.raises(UnknownNameError, match="relu"):
        activations.get("rleu")
    with pytest.raises(UnknownNameError, match=r"'dense_act'.*'rleu'"):
        L.Dense(3, activation="rleu", name="dense_act")
    with pytest.raises(UnknownNameError, match="act_layer"):
        L.Activation("rleu", name="act_layer")
    with pytest.raises(UnknownNameError, match="conv_reg"):
        L.Conv2D(2, 3, kernel_regularizer="l3", name="conv_reg")


# ------------------------------------------------------------------------------ Dense
def test_dense_matches_numpy_on_any_rank():
    torch.manual_seed(0)
    layer = L.Dense(5, activation="tanh")
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    out = _np(layer(torch.tensor(x)))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 5) and bias.shape == (5,)
    assert tuple(layer.kernel.shape) == (5, 4)  # stored for F.linear
    np.testing.assert_allclose(out, np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 5)
    assert layer.count_params() == 4 * 5 + 5
    assert L.Dense(5, use_bias=False).count_params() == 0  # not built yet
    float64 = layer(np.ones((1, 4)))  # NumPy float64 data is cast like Keras does
    assert float64.dtype == torch.float32


def test_dense_set_weights_keras_layout_and_errors():
    layer = L.Dense(3, name="head")
    layer(torch.zeros(1, 2))
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer.set_weights([kernel, np.array([1, 2, 3], dtype=np.float32)])
    out = _np(layer(torch.tensor([[1.0, 1.0]])))
    np.testing.assert_allclose(out, [[1 + 0 + 3, 2 + 1 + 4, 3 + 2 + 5]])
    with pytest.raises(ShapeError, match="head"):
        layer.set_weights([kernel.T, np.zeros(3)])
    with pytest.raises(ShapeError, match=r"'head'.*expected axis -1 of input shape to have value 2"):
        layer(torch.zeros(1, 4))
    with pytest.raises(ShapeError, match="head"):
        L.Dense(3, name="head2")(torch.zeros(4))  # rank 1 < min_ndim 2
    with pytest.raises(ConfigError, match="units=0"):
        L.Dense(0)
    with pytest.raises(ConfigError, match="kernel_constraint.*maxnorm2"):  # unknown name
        L.Dense(2, kernel_constraint="maxnorm2")
    with pytest.raises(ConfigError, match="Unrecognized keyword"):
        L.Dense(2, kernal_initializer="zeros")


def test_call_logits_gives_pre_softmax_output():
    torch.manual_seed(0)
    layer = L.Dense(4, activation="softmax")
    x = torch.randn(3, 6)
    probs = layer(x)
    logits = layer.call_logits(x)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(_np(logits), _np(x) @ kernel + bias, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.softmax(logits, -1), probs)
    torch.testing.assert_close(layer(x, logits=True), logits)
    assert activations.is_softmax(layer.activation)
    act = L.Activation("softmax")
    torch.testing.assert_close(act.call_logits(logits), logits)
    torch.testing.assert_close(act(logits), probs)


def test_symbolic_calls_infer_shapes():
    x = L.KerasTensor((None, 28, 28, 1))
    for layer in (L.Conv2D(8, 3, padding="same", strides=2), L.MaxPooling2D(),
                  L.BatchNormalization(), L.RandomFlip(), L.Flatten(), L.Dropout(0.5),
                  L.Dense(10, activation="softmax")):
        x = layer(x)
        assert layer.built
    assert x.shape == (None, 10)
    tokens = L.Embedding(50, 8)(L.KerasTensor((None, None), dtype="int64"))
    assert tokens.shape == (None, None, 8)
    assert L.LayerNormalization()(tokens).shape == (None, None, 8)


def test_names_follow_keras():
    assert L.Conv2D(2, 3).name.startswith("conv2d")
    assert L.MaxPooling2D().name.startswith("max_pooling2d")
    assert L.BatchNormalization().name.startswith("batch_normalization")
    assert L.Dense(1, name="out").name == "out"


# ------------------------------------------------------------------------------ shape layers
def test_flatten_uses_keras_hwc_order():
    x = np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2)  # (B, H, W, C)
    out = _np(L.Flatten()(torch.tensor(x)))
    np.testing.assert_array_equal(out, x.reshape(2, -1))
    assert out[0, 1] == x[0, 0, 0, 1]  # channel varies fastest
    assert out[0, 2] == x[0, 0, 1, 0]
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    cf = _np(L.Flatten(data_format="channels_first")(torch.tensor(nchw)))
    np.testing.assert_array_equal(cf, x.reshape(2, -1))  # same order as channels-last
    assert L.Flatten().compute_output_shape((None, 5, 5, 64)) == (None, 1600)
    assert L.Flatten().compute_output_shape((None, None, 3)) == (None, None)


def test_reshape_with_minus_one_and_errors():
    x = torch.arange(24.0).reshape(2, 12)
    out = L.Reshape((3, -1))(x)
    assert tuple(out.shape) == (2, 3, 4)
    torch.testing.assert_close(out, x.reshape(2, 3, 4))
    assert L.Reshape((-1, 2)).compute_output_shape((None, 12)) == (None, 6, 2)
    assert L.Reshape((-1, 2)).compute_output_shape((None, None)) == (None, None, 2)
    with pytest.raises(ShapeError, match="reshape_bad"):
        L.Reshape((5, 5), name="reshape_bad")(x)
    with pytest.raises(ConfigError, match="target_shape"):
        L.Reshape((-1, -1))


def test_dropout_training_only_scaled_and_seeded():
    x = torch.ones(200, 50)
    layer = L.Dropout(0.3, seed=5)
    torch.testing.assert_close(layer(x, training=False), x)
    layer.eval()
    torch.testing.assert_close(layer(x), x)
    out = layer(x, training=True)
    zeros = (out == 0).float().mean().item()
    assert abs(zeros - 0.3) < 0.03
    np.testing.assert_allclose(_np(out[out != 0]), 1 / 0.7, rtol=1e-6)
    again = L.Dropout(0.3, seed=5)(x, training=True)
    torch.testing.assert_close(out, again)
    shared = L.Dropout(0.5, noise_shape=(None, 1), seed=1)(x, training=True)
    assert bool(((shared == 0).all(1) | (shared != 0).all(1)).all())  # one draw per row
    unseeded = L.Dropout(0.5)(x, training=True)
    assert 0.4 < (unseeded == 0).float().mean().item() < 0.6
    with pytest.raises(ConfigError, match="rate=1.5"):
        L.Dropout(1.5)


def test_input_layer_checks_shapes():
    inp = L.InputLayer(shape=(4, 3), name="inp")
    assert inp.batch_shape == (None, 4, 3)
    x = torch.zeros(2, 4, 3)
    assert inp(x) is x
    with pytest.raises(ShapeError, match="inp"):
        inp(torch.zeros(2, 4))
    with pytest.raises(ShapeError, match="inp"):
        inp(torch.zeros(2, 4, 5))
    clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(inp))))
    assert clone.batch_shape == (None, 4, 3)
    assert L.InputLayer(input_shape=(7,)).batch_shape == (None, 7)
    tokens = L.InputLayer(shape=(None,), dtype="int32")
    assert L.deserialize_layer(L.serialize_layer(tokens)).get_config()["dtype"] == "int32"
    with pytest.raises(ConfigError):
        L.InputLayer()


# ------------------------------------------------------------------------------ Embedding
def test_embedding_lookup_and_defaults():
    torch.manual_seed(0)
    layer = L.Embedding(10, 4, mask_zero=True)
    ids = np.array([[0, 3, 9], [1, 1, 2]])
    out = _np(layer(torch.tensor(ids)))
    (table,) = layer.get_weights()
    assert table.shape == (10, 4)
    assert np.abs(table).max() <= 0.05
    np.testing.assert_array_equal(out, table[ids])
    np.testing.assert_array_equal(_np(layer(torch.tensor(ids, dtype=torch.float32))), out)
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)
    assert layer.mask_zero
    np.testing.assert_array_equal(_np(layer.compute_mask(torch.tensor(ids))), ids != 0)
    assert layer.count_params() == 40


@pytest.mark.parametrize("bad", [10, -1])
def test_embedding_out_of_range_names_layer(bad):
    layer = L.Embedding(10, 4, name="tokens")
    with pytest.raises(DataError, match=rf"'tokens'.*index {bad}"):
        layer(torch.tensor([[1, bad]]))


def test_embedding_bad_arguments():
    with pytest.raises(ConfigError, match="input_dim=0"):
        L.Embedding(0, 3)


# ------------------------------------------------------------------------------ gradients
def test_every_parameter_gets_a_finite_gradient():
    torch.manual_seed(0)
    stack = [L.Conv2D(4, 3, padding="same", strides=2, activation="relu"),
             L.BatchNormalization(), L.LayerNormalization(), L.AveragePooling2D(padding="same"),
             L.MaxPooling2D(padding="same"), L.Dropout(0.1), L.Flatten(), L.Dense(6),
             L.Reshape((2, 3)), L.Dense(3, activation="softmax")]
    x = torch.randn(4, 9, 9, 3)
    for layer in stack:
        x = layer(x, training=True)
    x.log().sum().backward()
    params = [(layer.name, n, p) for layer in stack for n, p in layer.named_parameters()]
    assert len(params) == 2 * 5  # kernel/bias or gamma/beta of five layers
    for layer_name, name, param in params:
        assert param.grad is not None and torch.isfinite(param.grad).all(), (layer_name, name)
        assert param.grad.abs().sum() > 0, (layer_name, name)
    emb = L.Embedding(5, 2)
    emb(torch.tensor([[1, 1, 3]])).sum().backward()
    np.testing.assert_array_equal(_np(emb.embeddings.grad)[:, 0], [0, 2, 0, 1, 0])


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("make, shape", [
    (lambda: L.Dense(3, activation="relu", kernel_regularizer="l2",
                     kernel_initializer=initializers.HeNormal(seed=1)), (2, 5)),
    (lambda: L.Activation("gelu"), (2, 5)),
    (lambda: L.Flatten(), (2, 3, 4, 2)),
    (lambda: L.Reshape((2, -1)), (2, 6)),
    (lambda: L.Dropout(0.2, noise_shape=(None, 1), seed=3), (2, 6)),
    (lambda: L.Embedding(7, 3, mask_zero=True, embeddings_regularizer="l1"), None),
])
def test_core_config_roundtrip(make, shape):
    layer = make()
    if shape is None:
        x = np.array([[1, 2, 6], [0, 0, 3]])
    else:
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    roundtrip(layer, x)
