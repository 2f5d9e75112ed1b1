"""Keras recurrent layers: Keras equations (NumPy), weights and counts, masks, wrappers, states,
functional API, saving, the seed RNN program, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers
from rnn_numpy import keras_rnn, random_keras_weights

SEED_RNN = Path(__file__).resolve().parent / "seed_examples" / "seed_rnn.py"
LAYERS = {"simple": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def _np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_cudnn", ["auto", False])
def test_layers_compute_keras_equations(cell, go_backwards, use_cudnn):
    rng = np.random.default_rng(0)
    weights = random_keras_weights(cell, 5, 4, rng)
    x = rng.normal(size=(3, 6, 5)).astype(np.float32)
    layer = LAYERS[cell](4, return_sequences=True, return_state=True, go_backwards=go_backwards,
                         use_cudnn=use_cudnn)
    layer(x[:1])  # build
    layer.set_weights(weights)
    out, *states = layer(x)
    ref_out, ref_h, ref_c = keras_rnn(cell, x, weights, go_backwards=go_backwards)
    np.testing.assert_allclose(_np(out), ref_out, atol=1e-5)  # reversed order when go_backwards
    np.testing.assert_allclose(_np(states[0]), ref_h, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(_np(states[1]), ref_c, atol=1e-5)
    last = LAYERS[cell](4, go_backwards=go_backwards)
    last(x[:1])
    last.set_weights(weights)
    np.testing.assert_allclose(_np(last(x)), ref_h, atol=1e-5)


def test_gru_reset_before_and_custom_activations_use_the_loop():
    rng = np.random.default_rng(1)
    weights = random_keras_weights("gru", 3, 4, rng, reset_after=False)
    layer = layers.GRU(4, reset_after=False, activation="relu", return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    layer(x)
    assert [w.shape for w in layer.get_weights()] == [(3, 12), (4, 12), (12,)]
    layer.set_weights(weights)
    ref, _, _ = keras_rnn("gru", x, weights, reset_after=False, activation=lambda v: np.maximum(v, 0))
    np.testing.assert_allclose(_np(layer(x)), ref, atol=1e-5)
    with pytest.raises(ConfigError, match="use_cudnn=True was specified"):
        layers.GRU(4, reset_after=False, use_cudnn=True)(x)


def test_weight_shapes_counts_and_initialization():
    lstm, gru, simple = layers.LSTM(7), layers.GRU(7), layers.SimpleRNN(7)
    x = np.zeros((1, 2, 3), np.float32)
    for layer in (lstm, gru, simple):
        layer(x)
    assert [w.shape for w in lstm.get_weights()] == [(3, 28), (7, 28), (28,)]
    assert [w.shape for w in gru.get_weights()] == [(3, 21), (7, 21), (2, 21)]
    assert [w.shape for w in simple.get_weights()] == [(3, 7), (7, 7), (7,)]
    assert lstm.count_params() == 4 * (7 * (3 + 7) + 7)
    assert gru.count_params() == 3 * (7 * (3 + 7) + 2 * 7)
    assert simple.count_params() == 7 * (3 + 7) + 7
    kernel, recurrent, bias = lstm.get_weights()
    np.testing.assert_array_equal(bias, np.r_[np.zeros(7), np.ones(7), np.zeros(14)])
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(7), atol=1e-5)  # orthogonal
    no_forget = layers.LSTM(7, unit_forget_bias=False)
    no_forget(x)
    assert not no_forget.get_weights()[2].any()


@pytest.mark.skipif(not SEED_RNN.exists(), reason="seed examples (../shared) not found")
def test_seed_rnn_program_runs_with_only_imports_changed():
    """The contract: the seed RNN program, import lines pointed at bigmodel, data defined."""
    source = SEED_RNN.read_text()
    source = source.replace("import tensorflow as tf\n", "")
    source = source.replace("from tensorflow.keras.models import", "from bigmodel.keras.models import")
    source = source.replace("from tensorflow.keras.layers import", "from bigmodel.keras.layers import")
    assert "tensorflow" not in source
    rng = np.random.default_rng(0)
    # Two classes of 28x28 "images" read as 28 rows: a bright band in the top or the bottom half.
    labels = rng.integers(0, 2, size=128)
    images = rng.uniform(0, 0.2, size=(128, 28, 28)).astype(np.float32)
    images[labels == 0, 4:8, :] = 1.0
    images[labels == 1, 20:24, :] = 1.0
    namespace = {"train_data": images, "train_labels": labels}
    torch.manual_seed(0)
    exec(compile(source, str(SEED_RNN), "exec"), namespace)
    model = namespace["model"]
    assert [layer.count_params() for layer in model.layers] == [80_384, 131_584, 1_290]
    assert model.count_params() == 213_258
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert "80,384" in lines[0] and "Total params: 213,258" in lines[0]
    assert model.history.history["accuracy"][-1] > 0.95


def _emb_lstm(**lstm_kwargs):
    return keras.Sequential([layers.Embedding(10, 3, mask_zero=True),
                             layers.LSTM(4, **lstm_kwargs)])


def test_embedding_mask_reaches_the_rnn_and_matches_numpy():
    torch.manual_seed(0)
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [0, 0, 7, 8, 9], [6, 0, 6, 0, 6]])
    model = _emb_lstm(return_sequences=True)
    out = model(ids)
    embeddings, *weights = model.get_weights()
    mask = ids != 0
    ref, _, _ = keras_rnn("lstm", embeddings[ids], weights, mask=mask)
    np.testing.assert_allclose(_np(out), ref, atol=1e-5)
    assert torch.equal(out._keras_mask, torch.from_numpy(mask))
    # return_sequences=False: the mask stops; each sequence equals itself alone (unpadded).
    last = _emb_lstm()
    last(ids[:1])
    last.set_weights(model.get_weights())
    final = _np(last(ids))
    assert getattr(last(ids), "_keras_mask", None) is None
    for row in range(len(ids)):
        alone = ids[row][ids[row] != 0][None]
        np.testing.assert_allclose(final[row], _np(last(alone))[0], atol=1e-5)


def test_masking_layer_and_explicit_mask():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 2)).astype(np.float32)
    x[0, 4:] = 0.0
    x[1, :2] = 0.0
    x[2, 3] = 0.0
    model = keras.Sequential([keras.Input((6, 2)), layers.Masking(0.0),
                              layers.GRU(3, return_sequences=True, zero_output_for_mask=True)])
    out = model(x)
    mask = np.abs(x).sum(-1) != 0
    ref, _, _ = keras_rnn("gru", x, model.get_weights(), mask=mask, zero_output_for_mask=True)
    np.testing.assert_allclose(_np(out), ref, atol=1e-5)
    direct = model.layers[-1](torch.from_numpy(x), mask=torch.from_numpy(mask))
    np.testing.assert_allclose(_np(direct), ref, atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(merge_mode):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    layer = layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode=merge_mode)
    out = layer(x)
    weights = layer.get_weights()
    assert len(weights) == 6 and layer.count_params() == 2 * 4 * (4 * (3 + 4) + 4)
    assert layer.forward_layer.name.startswith("forward_")
    fwd, _, _ = keras_rnn("lstm", x, weights[:3])
    bwd, _, _ = keras_rnn("lstm", x, weights[3:], go_backwards=True)
    bwd = bwd[:, ::-1]
    expected = {"concat": np.concatenate([fwd, bwd], -1), "sum": fwd + bwd, "mul": fwd * bwd,
                "ave": (fwd + bwd) / 2, None: [fwd, bwd]}[merge_mode]
    if merge_mode is None:
        for got, want in zip(out, expected):
            np.testing.assert_allclose(_np(got), want, atol=1e-5)
    else:
        np.testing.assert_allclose(_np(out), expected, atol=1e-5)
    assert layer.compute_output_shape((None, 5, 3)) == (
        [(None, 5, 4), (None, 5, 4)] if merge_mode is None
        else (None, 5, 8 if merge_mode == "concat" else 4))


def test_bidirectional_with_mask_state_and_padding_invariance():
    torch.manual_seed(0)
    ids = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    model = keras.Sequential([layers.Embedding(10, 3, mask_zero=True),
                              layers.Bidirectional(layers.GRU(4))])
    out = _np(model(ids))
    alone = _np(model(ids[:1, :3]))
    np.testing.assert_allclose(out[0], alone[0], atol=1e-5)
    seq = keras.Sequential([layers.Embedding(10, 3, mask_zero=True),
                            layers.Bidirectional(layers.LSTM(4, return_sequences=True))])
    full = seq(ids)
    assert torch.all(full[0, 3:] == 0)  # masked steps output zeros in a Bidirectional
    np.testing.assert_allclose(_np(full[0, :3]), _np(seq(ids[:1, :3]))[0], atol=1e-5)
    with_state = layers.Bidirectional(layers.LSTM(4, return_state=True))
    results = with_state(np.random.rand(2, 5, 3).astype(np.float32))
    assert [tuple(r.shape) for r in results] == [(2, 8)] + [(2, 4)] * 4


def test_time_distributed_dense_and_masked_loss():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    td = layers.TimeDistributed(layers.Dense(5))
    out = td(x)
    kernel, bias = td.get_weights()
    np.testing.assert_allclose(_np(out), x @ kernel + bias, atol=1e-5)
    assert td.compute_output_shape((None, 4, 3)) == (None, 4, 5) and td.count_params() == 20

    # A tagger on padded sequences: the loss is the mean over the unpadded steps only (Keras 3).
    torch.manual_seed(0)
    ids = np.array([[3, 4, 0, 0], [1, 2, 3, 4]])
    tags = np.array([[1, 2, 0, 0], [2, 1, 0, 1]])
    model = keras.Sequential([layers.Embedding(10, 3, mask_zero=True),
                              layers.LSTM(4, return_sequences=True),
                              layers.TimeDistributed(layers.Dense(3, activation="softmax"))])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probs = _np(model(ids))
    valid = ids != 0
    picked = np.take_along_axis(probs, tags[..., None], -1)[..., 0]
    expected_loss = -np.log(picked[valid]).mean()
    expected_accuracy = (probs.argmax(-1) == tags)[valid].mean()
    loss, accuracy = model.evaluate(ids, tags, verbose=0)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert accuracy == pytest.approx(expected_accuracy)


def test_tagger_learns_on_padded_batches():
    """Tag each token with whether it is larger than the token before it; padded with 0."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(3, 9, size=256)
    ids = np.zeros((256, 8), np.int64)
    tags = np.zeros((256, 8), np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 12, length)
        tags[row, 1:length] = ids[row, 1:length] > ids[row, :length - 1]
    torch.manual_seed(0)
    model = keras.Sequential([layers.Embedding(12, 8, mask_zero=True),
                              layers.Bidirectional(layers.LSTM(16, return_sequences=True)),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(ids, tags, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9


def test_stateful_continues_across_calls_and_resets():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    whole = layers.LSTM(4, return_sequences=True)
    expected = _np(whole(x))
    stateful = layers.LSTM(4, return_sequences=True, stateful=True)
    stateful(x[:, :1])
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    parts = np.concatenate([_np(stateful(x[:, :3])), _np(stateful(x[:, 3:]))], 1)
    np.testing.assert_allclose(parts, expected, atol=1e-5)
    stateful.reset_states()
    np.testing.assert_allclose(_np(stateful(x[:, :3])), expected[:, :3], atol=1e-5)
    with pytest.raises(ShapeError, match="keeps states for batches of 2; received a batch of 3"):
        stateful(np.zeros((3, 2, 3), np.float32))
    with pytest.raises(ConfigError, match="not stateful"):
        whole.reset_states()


def test_dropout_and_recurrent_dropout():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3)
    layer = layers.LSTM(5, dropout=0.5, recurrent_dropout=0.5, seed=1)
    layer(x)
    assert torch.equal(layer(x, training=False), layer(x, training=False))
    trained = layer(x, training=True)
    assert not torch.allclose(trained, layer(x, training=False))
    trained.sum().backward()  # the loop path trains
    assert all(p.grad is not None for p in layer.parameters())
    only_input = layers.GRU(5, dropout=0.5)
    only_input(x)
    assert not torch.allclose(only_input(x, training=True), only_input(x, training=False))


def test_functional_encoder_decoder_with_states_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    encoder_in = keras.Input((None, 3))
    decoder_in = keras.Input((None, 2))
    _, h, c = layers.LSTM(6, return_state=True)(encoder_in)
    decoded = layers.LSTM(6, return_sequences=True)(decoder_in, initial_state=[h, c])
    outputs = layers.Dense(2)(decoded)
    model = keras.Model([encoder_in, decoder_in], outputs)
    a, b = np.random.rand(2, 4, 3).astype(np.float32), np.random.rand(2, 5, 2).astype(np.float32)
    result = _np(model([torch.from_numpy(a), torch.from_numpy(b)]))
    assert result.shape == (2, 5, 2)
    # The decoder really starts from the encoder's states.
    assert [type(lay).__name__ for lay in model.layers[:2]] == ["InputLayer"] * 2  # as Keras
    enc, dec = model.layers[2], model.layers[3]
    _, h0, c0 = enc(torch.from_numpy(a))
    manual = model.layers[4](dec(torch.from_numpy(b), initial_state=[h0, c0]))
    np.testing.assert_allclose(result, _np(manual), atol=1e-6)
    model.save(tmp_path / "seq2seq.safetensors")
    loaded = keras.models.load_model(tmp_path / "seq2seq.safetensors")
    np.testing.assert_allclose(_np(loaded([torch.from_numpy(a), torch.from_numpy(b)])), result,
                               atol=1e-6)


def test_sequential_with_wrappers_round_trips(tmp_path):
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((7,), dtype="int32"),
                              layers.Embedding(20, 4, mask_zero=True),
                              layers.Bidirectional(layers.GRU(5, return_sequences=True),
                                                   merge_mode="sum"),
                              layers.SimpleRNN(3, go_backwards=True, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.array([[1, 2, 3, 0, 0, 0, 0], [4, 5, 6, 7, 8, 9, 1]])
    expected = model.predict(ids, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = keras.models.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), expected, atol=1e-6)
    for original, copy in zip(model.layers, loaded.layers):
        assert original.get_config() == copy.get_config()


def test_bad_input_errors_name_the_layer():
    lstm = layers.LSTM(4, name="encoder")
    for _ in range(2):  # before and after the layer is built
        with pytest.raises(ShapeError, match=r"layer 'encoder' \(LSTM\).*expected ndim=3, found "
                                             r"ndim=4.*28, 28, 1\)"):
            lstm(np.zeros((2, 28, 28, 1), np.float32))
        lstm(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ShapeError, match=r"'encoder' \(LSTM\).*axis -1 .* value 28.*\(2, 28, 27\)"):
        lstm(np.zeros((2, 28, 27), np.float32))
    with pytest.raises(ShapeError, match=r"'encoder' \(LSTM\): the mask must have shape \(batch, "
                                         r"timesteps\) = \(2, 28\)"):
        lstm(torch.zeros(2, 28, 28), mask=torch.ones(2, 27, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"'encoder' \(LSTM\): initial_state must be 2 tensor"):
        lstm(torch.zeros(2, 28, 28), initial_state=[torch.zeros(2, 4)])
    with pytest.raises(ConfigError, match=r"invalid value for argument `units`.*units=0"):
        layers.GRU(0)
    with pytest.raises(ConfigError, match="`dropout` must be a float between 0 and 1"):
        layers.LSTM(3, dropout=1.5)
    with pytest.raises(ConfigError, match="Invalid merge mode"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(ConfigError, match="needs a recurrent layer"):
        layers.Bidirectional(layers.Dense(3))
    with pytest.raises(ShapeError, match=r"\(TimeDistributed\).*min_ndim=3, found ndim=2"):
        layers.TimeDistributed(layers.Dense(3))(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match="last dimension of the inputs .* must be defined"):
        keras.Sequential([keras.Input((5, None)), layers.SimpleRNN(2)])
