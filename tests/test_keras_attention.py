"""Keras ``MultiHeadAttention``: Keras 3 shapes, counts, masks, numerics (NumPy einsum), training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The machine is shared: one thread avoids OpenMP oversubscription (and is faster here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def np_keras_mha(weights, query, value, key=None, mask=None, use_bias=True):
    """Keras's MultiHeadAttention equations (einsum form) on Keras-shaped NumPy weights."""
    key = value if key is None else key
    if use_bias:
        wq, bq, wk, bk, wv, bv, wo, bo = weights
    else:
        (wq, wk, wv, wo), bq = weights, 0
        bk = bv = bo = 0
    q = np.einsum("btd,dhk->bthk", query, wq) + bq
    k = np.einsum("bsd,dhk->bshk", key, wk) + bk
    v = np.einsum("bsd,dhk->bshk", value, wv) + bv
    scores = np.einsum("bthk,bshk->bhts", q / np.sqrt(wq.shape[-1]), k)
    if mask is not None:  # Keras: add a large negative number where the mask is 0
        scores = scores + (1.0 - mask[:, None].astype(scores.dtype)) * -1e9
    e = np.exp(scores - scores.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    out = np.einsum("bhts,bshv->bthv", probs, v)
    return np.einsum("bthv,hvo->bto", out, wo) + bo, probs


def test_weight_shapes_order_and_parameter_count_are_keras():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=8, value_dim=5, output_shape=7)
    q, v, k = torch.randn(3, 4, 16), torch.randn(3, 6, 12), torch.randn(3, 6, 10)
    out = mha(q, v, k)
    assert out.shape == (3, 4, 7)
    shapes = [w.shape for w in mha.get_weights()]
    assert shapes == [(16, 2, 8), (2, 8), (10, 2, 8), (2, 8), (12, 2, 5), (2, 5), (2, 5, 7), (7,)]
    assert mha.count_params() == (16 * 16 + 16) + (10 * 16 + 16) + (12 * 10 + 10) + (10 * 7 + 7)
    # Keras's documented example: MultiHeadAttention(num_heads=2, key_dim=2) on (8, 16) inputs.
    example = layers.MultiHeadAttention(num_heads=2, key_dim=2)
    out, scores = example(torch.randn(1, 8, 16), torch.randn(1, 4, 16),
                          return_attention_scores=True)
    assert out.shape == (1, 8, 16) and scores.shape == (1, 2, 8, 4)
    assert example.count_params() == 3 * (16 * 4 + 4) + (4 * 16 + 16)
    no_bias = layers.MultiHeadAttention(num_heads=2, key_dim=3, use_bias=False)
    no_bias(torch.randn(1, 2, 4), torch.randn(1, 2, 4))
    assert [w.shape for w in no_bias.get_weights()] == [(4, 2, 3), (4, 2, 3), (4, 2, 3), (2, 3, 4)]


def test_glorot_fans_follow_keras_for_3d_kernels():
    mha = layers.MultiHeadAttention(num_heads=4, key_dim=32)
    mha(torch.zeros(1, 2, 64), torch.zeros(1, 2, 64))
    kernel = mha.get_weights()[0]  # (64, 4, 32): Keras fans = (4*64, 32*64)
    limit = np.sqrt(6.0 / (4 * 64 + 32 * 64))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


@pytest.mark.parametrize("use_bias", [True, False])
def test_outputs_match_numpy_with_masks(use_bias):
    torch.manual_seed(0)
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, use_bias=use_bias,
                                    bias_initializer="random_normal")
    q, v, k = np.random.default_rng(0).normal(size=(3, 2, 5, 6)).astype(np.float32)
    mha(q, v)
    weights = mha.get_weights()
    attention_mask = np.random.default_rng(1).random((2, 5, 5)) > 0.3
    attention_mask[1, 2] = False  # a fully masked query row
    value_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    out, scores = mha(q, v, k, attention_mask=attention_mask, value_mask=value_mask,
                      return_attention_scores=True)
    full = attention_mask & value_mask[:, None, :]
    ref, ref_probs = np_keras_mha([w.astype(np.float64) for w in weights], q, v, k, full, use_bias)
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=2e-5)
    np.testing.assert_allclose(scores.detach().numpy(), ref_probs, atol=2e-6)
    causal = np.tril(np.ones((5, 5), dtype=bool))[None].repeat(2, 0)
    out = mha(q, v, use_causal_mask=True, query_mask=value_mask)
    ref, _ = np_keras_mha(weights, q, v, None, causal & value_mask[:, :, None], use_bias)
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=2e-5)


def test_rank4_inputs_attend_over_all_middle_axes():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    q, v = np.random.default_rng(2).normal(size=(2, 2, 3, 3, 4)).astype(np.float32)
    out = mha(q, v)
    assert out.shape == (2, 3, 3, 4)
    flat = mha(q.reshape(2, 9, 4), v.reshape(2, 9, 4))
    torch.testing.assert_close(out.reshape(2, 9, 4), flat)


def test_functional_model_trains_and_round_trips(tmp_path):
    # Task: is token 7 anywhere in the sequence? Needs attention across positions.
    rng = np.random.default_rng(0)
    x = rng.integers(1, 7, size=(512, 6))
    y = rng.integers(0, 2, size=512)
    where = rng.integers(0, 6, size=512)
    x[y == 1, where[y == 1]] = 7
    torch.manual_seed(0)
    inputs = keras.Input(shape=(6,), dtype="int32")
    h = layers.Embedding(8, 16)(inputs)
    h = layers.MultiHeadAttention(num_heads=2, key_dim=8)(h, h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(2, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:448], y[:448], epochs=15, batch_size=32, verbose=0)
    accuracy = model.evaluate(x[448:], y[448:], verbose=0, return_dict=True)["accuracy"]
    assert accuracy >= 0.9
    model.save(tmp_path / "mha.keras")
    loaded = keras.models.load_model(tmp_path / "mha.keras")
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               atol=1e-6)


def test_functional_causal_flag_survives_config():
    inputs = keras.Input(shape=(5, 4))
    out = layers.MultiHeadAttention(num_heads=1, key_dim=4)(inputs, inputs, use_causal_mask=True)
    model = keras.Model(inputs, out)
    again = layers.deserialize_layer(layers.serialize_layer(model))
    x = torch.randn(1, 5, 4, requires_grad=True)
    y = model(x)
    (grad,) = torch.autograd.grad(y[0, 1].sum(), x)
    assert grad[0, 2:].abs().sum() == 0 and grad[0, :2].abs().sum() > 0
    again.set_weights(model.get_weights())
    torch.testing.assert_close(again(x), y)


def test_dropout_only_in_training_and_gradients_reach_every_weight():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    q = torch.randn(2, 5, 8)
    mha(q, q)
    mha.eval()
    torch.testing.assert_close(mha(q, q), mha(q, q))
    mha.train()
    out = mha(q, q)
    out.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mha.parameters())
    assert not torch.allclose(mha(q, q), mha(q, q))


def test_config_round_trip():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3, dropout=0.1,
                                    output_shape=5, kernel_regularizer="l2")
    again = layers.MultiHeadAttention.from_config({**mha.get_config(), "name": "copy"})
    config = again.get_config()
    assert {k: v for k, v in config.items() if k != "name"} == {
        k: v for k, v in mha.get_config().items() if k != "name"}
    mha(torch.randn(1, 2, 6), torch.randn(1, 2, 6))
    assert len(mha.regularization_losses()) == 4  # the four kernels


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="`key_dim`.*key_dim=0"):
        layers.MultiHeadAttention(num_heads=2, key_dim=0)
    with pytest.raises(ConfigError, match="attention_axes=None"):
        layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(1,))
    with pytest.raises(ConfigError, match="dropout=1.5"):
        layers.MultiHeadAttention(num_heads=2, key_dim=2, dropout=1.5)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2, name="att")
    with pytest.raises(ConfigError, match="needs `value`"):
        mha(torch.randn(1, 3, 4))
    mha(torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    with pytest.raises(ShapeError, match=r"'att'.*query's last axis to be 4.*\(1, 3, 5\)"):
        mha(torch.randn(1, 3, 5), torch.randn(1, 3, 4))
    with pytest.raises(ShapeError, match=r"attention_mask of shape \(1, 2, 3\) does not broadcast"):
        mha(torch.randn(1, 3, 4), torch.randn(1, 3, 4), attention_mask=np.ones((1, 2, 3)))
    with pytest.raises(ShapeError, match=r"value_mask must have shape \(batch, length\) = \(1, 3\)"):
        mha(torch.randn(1, 3, 4), torch.randn(1, 3, 4), value_mask=np.ones((1, 4)))
    with pytest.raises(ShapeError, match="rank >= 3"):
        mha(torch.randn(3, 4), torch.randn(3, 4))


def test_masks_attached_by_embedding_are_used_and_passed_on():
    torch.manual_seed(1)
    embedding = layers.Embedding(10, 8, mask_zero=True)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    ids = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    h = embedding(ids)
    out = mha(h, h)
    mask = ids != 0
    explicit = mha(h.detach().clone(), h.detach().clone(), query_mask=mask, value_mask=mask)
    torch.testing.assert_close(out, explicit)
    torch.testing.assert_close(out[0, :3], mha(h[:1, :3], h[:1, :3])[0])  # padding is ignored
    assert torch.equal(layers.get_keras_mask(out) if hasattr(layers, "get_keras_mask")
                       else out._keras_mask, mask)
