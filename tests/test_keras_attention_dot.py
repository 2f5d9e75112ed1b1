"""layers.Attention and layers.AdditiveAttention: NumPy references, masks, real Keras 3 parity
(same weights), functional models with Embedding masks, .keras archives both ways, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, NotSupportedError, ShapeError
from keras_reference import real_keras as _real_keras

rng = np.random.default_rng(0)
Q = rng.normal(size=(2, 3, 4)).astype(np.float32)
V = rng.normal(size=(2, 5, 4)).astype(np.float32)
K = rng.normal(size=(2, 5, 4)).astype(np.float32)
QUERY_MASK = np.array([[1, 1, 0], [1, 1, 1]], bool)
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference(scores, value, query_mask=None, value_mask=None, causal=False):
    allowed = np.ones(scores.shape, bool)
    if value_mask is not None:
        allowed &= value_mask[:, None, :]
    if causal:
        allowed &= np.tril(np.ones(scores.shape[-2:], bool))
    weights = _softmax(np.where(allowed, scores, scores - 1e9))
    out = weights @ value
    if query_mask is not None:
        out = np.where(query_mask[..., None], out, 0.0)
    return out, weights


def _call(layer, *, mask=None, **kwargs):
    masks = None if mask is None else [torch.tensor(m) for m in mask]
    out, weights = layer([torch.tensor(Q), torch.tensor(V), torch.tensor(K)], mask=masks,
                         return_attention_scores=True, **kwargs)
    return out.detach().numpy(), weights.detach().numpy()


def test_dot_attention_against_numpy_with_masks_and_causal_mask():
    layer = keras.layers.Attention(use_scale=True)
    layer.build([Q.shape, V.shape, K.shape])
    layer.set_weights([np.array(0.7, np.float32)])
    scores = 0.7 * Q @ K.transpose(0, 2, 1)
    for kwargs in ({}, {"mask": [QUERY_MASK, VALUE_MASK]}, {"use_causal_mask": True},
                   {"mask": [QUERY_MASK, VALUE_MASK], "use_causal_mask": True}):
        out, weights = _call(layer, **kwargs)
        mask = kwargs.get("mask", [None, None])
        expected, expected_weights = _reference(scores, V, mask[0], mask[1],
                                                kwargs.get("use_causal_mask", False))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-7)
    # the output of a query a mask hides is zero, and masked keys get no weight
    out, weights = _call(layer, mask=[QUERY_MASK, VALUE_MASK])
    assert not out[0, 2].any() and not weights[0, :, 3:].any()


def test_concat_and_additive_scores_against_numpy():
    concat = keras.layers.Attention(score_mode="concat", use_scale=True)
    concat.build([Q.shape, V.shape, K.shape])
    concat.set_weights([np.array(0.5, np.float32), np.array(1.5, np.float32)])
    scores = 1.5 * np.tanh(0.5 * (Q[:, :, None, :] + K[:, None, :, :])).sum(-1)
    np.testing.assert_allclose(_call(concat)[0], _reference(scores, V)[0], rtol=1e-5, atol=1e-6)
    additive = keras.layers.AdditiveAttention()
    additive.build([Q.shape, V.shape, K.shape])
    scale = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    additive.set_weights([scale])
    scores = (scale * np.tanh(Q[:, :, None, :] + K[:, None, :, :])).sum(-1)
    np.testing.assert_allclose(_call(additive)[0], _reference(scores, V)[0], rtol=1e-5, atol=1e-6)
    assert [w.shape for w in additive.get_weights()] == [(4,)]


def test_same_as_real_keras_with_the_same_weights():
    real = _real_keras()
    cases = [("Attention", {}), ("Attention", {"use_scale": True}),
             ("Attention", {"score_mode": "concat", "use_scale": True}),
             ("AdditiveAttention", {}), ("AdditiveAttention", {"use_scale": False})]
    for name, kwargs in cases:
        theirs, ours = getattr(real.layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
        for layer in (theirs, ours):
            layer.build([Q.shape, V.shape, K.shape])
        weights = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in theirs.get_weights()]
        theirs.set_weights(weights)
        ours.set_weights(weights)
        assert ({k: v for k, v in theirs.get_config().items() if k not in ("dtype", "name")}
                == {k: v for k, v in ours.get_config().items() if k != "name"})
        for kwargs_call in ({}, {"mask": [QUERY_MASK, VALUE_MASK], "use_causal_mask": True}):
            out, scores = theirs([Q, V, K], return_attention_scores=True, **kwargs_call)
            ours_out, ours_scores = _call(ours, **kwargs_call)
            np.testing.assert_allclose(ours_out, np.asarray(out.detach()), atol=1e-6)
            np.testing.assert_allclose(ours_scores, np.asarray(scores.detach()), atol=1e-7)


def _functional(library, mask_zero):
    query_ids = library.Input((4,), dtype="int32")
    value_ids = library.Input((6,), dtype="int32")
    embedding = library.layers.Embedding(10, 8, mask_zero=mask_zero)
    query, value = embedding(query_ids), embedding(value_ids)
    merged = library.layers.Concatenate()([library.layers.Attention(use_scale=True)([query, value]),
                                           library.layers.AdditiveAttention()([query, value])])
    pooled = library.layers.GlobalAveragePooling1D()(merged)
    return library.Model([query_ids, value_ids],
                         library.layers.Dense(2, activation="softmax")(pooled))


def test_functional_model_with_embedding_masks_equals_real_keras_and_archives(tmp_path):
    real = _real_keras()
    pytest.importorskip("h5py")
    ids = np.random.default_rng(2)
    query_ids, value_ids = ids.integers(1, 10, (5, 4)), ids.integers(1, 10, (5, 6))
    query_ids[:, 3], value_ids[:, 4:] = 0, 0
    for mask_zero in (True, False):
        theirs, ours = _functional(real, mask_zero), _functional(keras, mask_zero)
        weights = [ids.uniform(-1, 1, w.shape).astype(np.float32) for w in theirs.get_weights()]
        theirs.set_weights(weights)
        ours.set_weights(weights)
        expected = theirs.predict([query_ids, value_ids], verbose=0)
        np.testing.assert_allclose(ours.predict([query_ids, value_ids], verbose=0), expected,
                                   atol=1e-6)
    ours.save(tmp_path / "ours.keras")  # the mask-free model both ways
    np.testing.assert_allclose(real.saving.load_model(tmp_path / "ours.keras").predict(
        [query_ids, value_ids], verbose=0), expected, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "theirs.keras").predict(
        [query_ids, value_ids], verbose=0), expected, atol=1e-6)


def test_attention_model_learns_and_dropout_acts_in_training_only():
    torch.manual_seed(0)
    data = np.random.default_rng(3)
    x_query, x_value = data.normal(size=(64, 3, 4)), data.normal(size=(64, 5, 4))
    y = (x_value[:, :, 0].mean(1) > 0).astype(np.int64)
    query, value = keras.Input((3, 4)), keras.Input((5, 4))
    attended = keras.layers.Attention(dropout=0.2, seed=1)([query, value])
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(attended))
    model = keras.Model([query, value], outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    history = model.fit([x_query, x_value], y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    layer = keras.layers.Attention(dropout=0.5, seed=0)
    inputs = [torch.tensor(Q), torch.tensor(V)]
    assert torch.equal(layer(inputs, training=False), layer(inputs, training=False))
    assert not torch.equal(layer(inputs, training=True), layer(inputs, training=False))


def test_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match=r"score_mode='add'"):
        keras.layers.Attention(score_mode="add")
    with pytest.raises(ConfigError, match=r"dropout=1\.5"):
        keras.layers.AdditiveAttention(dropout=1.5)
    with pytest.raises(ShapeError, match=r"list of inputs"):
        keras.layers.Attention()(torch.tensor(Q))
    with pytest.raises(ShapeError, match=r"same last dimension"):
        keras.layers.Attention()([torch.tensor(Q), torch.zeros(2, 5, 3), torch.zeros(2, 5, 3)])
    with pytest.raises(ShapeError, match=r"same number of steps"):
        keras.layers.Attention()([torch.tensor(Q), torch.zeros(2, 5, 4), torch.zeros(2, 6, 4)])


def test_symbolic_call_options_a_graph_cannot_replay_are_refused():
    query, value = keras.Input((3, 4)), keras.Input((5, 4))
    for kwargs in ({"use_causal_mask": True}, {"return_attention_scores": True}):
        name = next(iter(kwargs))
        with pytest.raises(NotSupportedError, match=rf"'attention.*{name}=True"):
            keras.layers.Attention()([query, value], **kwargs)
    # what the graph replays exactly: the plain call (and training=...)
    out = keras.layers.Attention()([query, value], training=False)
    assert tuple(out.shape) == (None, 3, 4)
