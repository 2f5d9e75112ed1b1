"""keras.layers.RNN with cells (SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells, a user's own
cell) and ConvLSTM1D/2D/3D: outputs and states against real Keras 3 (same weights), masks,
go_backwards, initial/stateful states, a custom cell that learns, nested inputs/states against
NumPy, .keras archives both ways, and bad inputs."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 5, 4)).astype(np.float32)
MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 0, 1, 1, 1]], bool)  # pads and a hole


@pytest.fixture(scope="module")
def rk():
    """Real Keras 3 on its torch backend (imported once per module)."""
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    real = pytest.importorskip("keras", reason="real Keras 3 is not installed")
    if real.backend.backend() != "torch":
        pytest.skip(f"real Keras runs on {real.backend.backend()}, not torch")
    return real


def _np(value):
    if isinstance(value, (list, tuple)):
        return [_np(v) for v in value]
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _close(a, b):
    a, b = _np(a), _np(b)
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y)
        return
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def _jittered(layer):
    """Non-trivial weights (biases too) shared by both libraries."""
    return [w + RNG.uniform(-0.3, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()]


def _minimal_cell(lib):
    """The "Working with RNNs" guide's MinimalRNNCell, written against ``lib``."""
    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="uniform", name="recurrent_kernel")

        def call(self, inputs, states):
            output = lib.ops.matmul(inputs, self.kernel) + lib.ops.matmul(
                states[0], self.recurrent_kernel)
            return lib.ops.tanh(output), [output]

    return MinimalRNNCell


CELLS = [("SimpleRNNCell", {}), ("SimpleRNNCell", {"activation": "relu"}), ("LSTMCell", {}),
         ("LSTMCell", {"activation": "relu"}), ("GRUCell", {}), ("GRUCell", {"reset_after": False}),
         ("minimal", {})]


def _cell(lib, name, kwargs, units=3):
    if name == "minimal":
        return _minimal_cell(lib)(units)
    return getattr(lib.layers, name)(units, **kwargs)


@pytest.mark.parametrize("name,kwargs", CELLS)
def test_rnn_of_each_cell_matches_real_keras(rk, name, kwargs):
    """Every cell under RNN: sequences, states, go_backwards, masks (pads + a hole) equal Keras's
    with the same weights; parameter counts and config keys equal too."""
    for options in ({"return_sequences": True, "return_state": True},
                    {"go_backwards": True, "return_state": True},
                    {"return_sequences": True, "zero_output_for_mask": True}):
        theirs = rk.layers.RNN(_cell(rk, name, kwargs), **options)
        ours = keras.layers.RNN(_cell(keras, name, kwargs), **options)
        theirs(X)
        ours(torch.tensor(X))
        assert ours.count_params() == theirs.count_params()
        weights = _jittered(theirs)
        theirs.set_weights(weights)
        ours.set_weights(weights)
        _close(ours(torch.tensor(X)), [_np(t) for t in theirs(X)] if options.get(
            "return_state") else theirs(X))
        _close(ours(torch.tensor(X), mask=torch.tensor(MASK)),
               _np(theirs(X, mask=MASK)))
    if name != "minimal":
        assert set(ours.cell.get_config()) == set(theirs.cell.get_config()) - {"dtype"}
        assert set(ours.get_config()) == set(theirs.get_config()) - {"dtype"}


def test_cell_step_call_matches_real_keras(rk):
    """``cell(x_t, states)`` on its own: one LSTM and one GRU step, output and new states."""
    for name in ("LSTMCell", "GRUCell"):
        theirs, ours = getattr(rk.layers, name)(3), getattr(keras.layers, name)(3)
        states = [RNG.normal(size=(3, 3)).astype(np.float32)
                  for _ in range(2 if name == "LSTMCell" else 1)]
        theirs(X[:, 0], [t for t in states])
        ours(torch.tensor(X[:, 0]), [torch.tensor(s) for s in states])
        weights = _jittered(theirs)
        theirs.set_weights(weights)
        ours.set_weights(weights)
        out, new = ours(torch.tensor(X[:, 0]), [torch.tensor(s) for s in states])
        ref_out, ref_new = theirs(X[:, 0], list(states))
        _close(out, ref_out)
        _close(list(new), [_np(t) for t in ref_new])
        assert ours.state_size == theirs.state_size
        assert [s.shape for s in ours.get_initial_state(2)] == [
            tuple(s.shape) for s in theirs.get_initial_state(2)]


def test_stacked_cells_match_real_keras(rk):
    """A list of cells (and StackedRNNCells) with return_state: nested final states, Keras's."""
    theirs = rk.layers.RNN([rk.layers.LSTMCell(3), rk.layers.GRUCell(2)], return_sequences=True,
                           return_state=True)
    ours = keras.layers.RNN(keras.layers.StackedRNNCells(
        [keras.layers.LSTMCell(3), keras.layers.GRUCell(2)]), return_sequences=True,
        return_state=True)
    theirs(X)
    ours(torch.tensor(X))
    weights = _jittered(theirs)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert ours.count_params() == theirs.count_params()
    for mask in (None, MASK):
        out, lstm_states, gru_states = ours(torch.tensor(X), mask=None if mask is None
                                            else torch.tensor(mask))
        ref = theirs(X, mask=mask)
        _close(out, ref[0])
        _close(list(lstm_states), [_np(t) for t in ref[1]])
        _close(list(gru_states), [_np(t) for t in ref[2]])
    assert ours.cell.state_size == theirs.cell.state_size == [[3, 3], 2]


def test_rnn_of_lstm_cell_equals_lstm_layer():
    lstm = keras.layers.LSTM(4, return_sequences=True, return_state=True)
    rnn = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True, return_state=True)
    x = torch.tensor(X)
    lstm(x)
    rnn(x)
    weights = _jittered(lstm)
    lstm.set_weights(weights)
    rnn.set_weights(weights)
    assert [w.shape for w in rnn.get_weights()] == [(4, 16), (4, 16), (16,)]
    _close(rnn(x), lstm(x))
    _close(rnn(x, mask=torch.tensor(MASK)), lstm(x, mask=torch.tensor(MASK)))


def test_initial_state_and_stateful_reset():
    cell_rnn = keras.layers.RNN(keras.layers.GRUCell(3), return_state=True)
    x = torch.tensor(X)
    h0 = torch.tensor(RNG.normal(size=(3, 3)).astype(np.float32))
    out, h = cell_rnn(x, initial_state=[h0])
    # the same as running the first two steps, then the rest from their state
    _, h_mid = cell_rnn(x[:, :2], initial_state=[h0])
    _close(cell_rnn(x[:, 2:], initial_state=h_mid), [out, h])
    stateful = keras.layers.RNN(cell_rnn.cell, stateful=True)
    _close(stateful(x[:, :2]), cell_rnn(x[:, :2])[1])  # starts from zeros
    stateful.reset_states([h0])
    stateful(x[:, :2])
    _close(stateful(x[:, 2:]), h)  # states carried across the two calls
    stateful.reset_states()
    _close(stateful(x), cell_rnn(x)[0])  # zero states again
    with pytest.raises(ShapeError, match="batch"):
        stateful(x[:2])


def test_custom_cell_learns_under_fit():
    """The guide's MinimalRNNCell in a Sequential model learns to sum a sequence's signs."""
    torch.manual_seed(0)
    data = RNG.normal(size=(256, 6, 1)).astype(np.float32)
    target = (data.sum(axis=(1, 2)) > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((6, 1)),
                              keras.layers.RNN(_minimal_cell(keras)(8)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(data, target, epochs=12, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.85


class NestedCell(keras.layers.Layer):
    """The "Working with RNNs" guide's nested cell: inputs ``(x1, x2)`` with x2 ``(batch, i2,
    i3)``, ``state_size = [u1, [u2, u3]]`` (a state ``(batch, u2, u3)``), two outputs."""

    def __init__(self, unit_1, unit_2, unit_3, **kwargs):
        self.unit_1, self.unit_2, self.unit_3 = unit_1, unit_2, unit_3
        self.state_size = [unit_1, [unit_2, unit_3]]
        self.output_size = [unit_1, [unit_2, unit_3]]
        super().__init__(**kwargs)

    def build(self, input_shapes):
        i1, (i2, i3) = input_shapes[0][1], input_shapes[1][1:]
        self.kernel_1 = self.add_weight(shape=(i1, self.unit_1), initializer="uniform",
                                        name="kernel_1")
        self.kernel_2_3 = self.add_weight(shape=(i2, i3, self.unit_2, self.unit_3),
                                          initializer="uniform", name="kernel_2_3")

    def call(self, inputs, states):
        input_1, input_2 = inputs
        s1, s2 = states
        output_1 = keras.ops.matmul(input_1, self.kernel_1)
        output_2_3 = keras.ops.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
        return (output_1, output_2_3), (s1 + output_1, s2 + output_2_3)


def test_guide_nested_cell_in_a_functional_model_against_numpy():
    """The guide's model: RNN(NestedCell) on a tuple of two inputs, two outputs, trained by fit;
    outputs (and masked steps, eager) against NumPy. Real Keras 3 cannot build this cell (it
    hands build() one input shape), so NumPy is the reference."""
    a = RNG.normal(size=(6, 4, 3)).astype(np.float32)
    b = RNG.normal(size=(6, 4, 2, 5)).astype(np.float32)
    rnn = keras.layers.RNN(NestedCell(2, 3, 4))
    inputs = [keras.Input((None, 3)), keras.Input((None, 2, 5))]
    model = keras.Model(inputs, rnn(tuple(inputs)))
    assert model.output_shape == [(None, 2), (None, 3, 4)]
    k1, k23 = model.get_weights()
    out_1, out_2 = model.predict([a, b], verbose=0)
    _close([out_1, out_2], [a[:, -1] @ k1, np.einsum("bij,ijkl->bkl", b[:, -1], k23)])
    mask = np.array([[1, 1, 1, 0]] * 6, bool)
    (eager_1, _), s1, s23 = keras.layers.RNN(rnn.cell, return_state=True)(
        (torch.tensor(a), torch.tensor(b)), mask=torch.tensor(mask))
    _close([eager_1, s1, s23], [a[:, 2] @ k1, (a[:, :3] @ k1).sum(1),
                                np.einsum("btij,ijkl->bkl", b[:, :3], k23)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    targets = [RNG.normal(size=(6, 2)).astype(np.float32), np.zeros((6, 3, 4), np.float32)]
    history = model.fit([a, b], targets, epochs=5, batch_size=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_keras_archives_both_ways(rk, tmp_path):
    """Models with RNN(cell), RNN([cells]) and ConvLSTM2D: saved here -> loaded by real Keras ->
    saved there -> loaded here, outputs equal at each step."""
    x = torch.tensor(X)
    model = keras.Sequential([
        keras.Input((5, 4)),
        keras.layers.RNN(keras.layers.GRUCell(3, reset_after=False), return_sequences=True),
        keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.SimpleRNNCell(2)],
                         go_backwards=True)])
    model.set_weights(_jittered(model))
    frames = RNG.normal(size=(2, 3, 6, 6, 2)).astype(np.float32)
    conv = keras.Sequential([keras.Input((None, 6, 6, 2)),
                             keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                             keras.layers.ConvLSTM2D(2, (2, 3))])
    conv.set_weights(_jittered(conv))
    for ours, data, name in ((model, X, "rnn"), (conv, frames, "convlstm")):
        expected = ours.predict(data, verbose=0)
        ours.save(tmp_path / f"{name}.keras")
        theirs = rk.models.load_model(tmp_path / f"{name}.keras")
        _close(theirs.predict(data, verbose=0), expected)
        assert theirs.count_params() == ours.count_params()
        theirs.save(tmp_path / f"{name}_real.keras")
        back = keras.models.load_model(tmp_path / f"{name}_real.keras")
        _close(back.predict(data, verbose=0), expected)
    assert x.shape == (3, 5, 4)


def test_conv_lstm_next_frame_model_matches_real_keras(rk):
    """The keras.io next-frame ConvLSTM model's layer stack (parameter counts at its size; outputs
    at a tiny size with the same weights)."""
    def build(lib, filters, size):
        return lib.Sequential([
            lib.Input((None, size, size, 1)),
            lib.layers.ConvLSTM2D(filters, (5, 5), padding="same", return_sequences=True,
                                  activation="relu"),
            lib.layers.BatchNormalization(),
            lib.layers.ConvLSTM2D(filters, (3, 3), padding="same", return_sequences=True,
                                  activation="relu"),
            lib.layers.BatchNormalization(),
            lib.layers.ConvLSTM2D(filters, (1, 1), padding="same", return_sequences=True,
                                  activation="relu")])
    assert build(keras, 64, 64).count_params() == build(rk, 64, 64).count_params()
    ours, theirs = build(keras, 3, 6), build(rk, 3, 6)
    weights = _jittered(theirs)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    frames = RNG.uniform(size=(2, 3, 6, 6, 1)).astype(np.float32)
    _close(ours.predict(frames, verbose=0), theirs.predict(frames, verbose=0))
    assert ours.output_shape == (None, None, 6, 6, 3)


@pytest.mark.parametrize("cls,shape,kwargs", [
    ("ConvLSTM1D", (2, 3, 7, 2), {"strides": 2, "padding": "same", "return_state": True}),
    ("ConvLSTM2D", (2, 3, 2, 5, 6), {"data_format": "channels_first", "dilation_rate": 2,
                                     "go_backwards": True}),
    ("ConvLSTM3D", (1, 2, 4, 4, 3, 1), {"padding": "same", "return_sequences": True}),
])
def test_conv_lstm_variants_match_real_keras(rk, cls, shape, kwargs):
    x = RNG.normal(size=shape).astype(np.float32)
    theirs, ours = getattr(rk.layers, cls)(3, 2, **kwargs), getattr(keras.layers, cls)(3, 2,
                                                                                      **kwargs)
    theirs(x)
    ours(torch.tensor(x))
    weights = _jittered(theirs)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    result = ours(torch.tensor(x))
    ref = theirs(x)
    _close(result, [_np(t) for t in ref] if isinstance(ref, (list, tuple)) else ref)
    mask = np.ones(shape[:2], bool)
    mask[0, -1] = False
    ref = theirs(x, mask=mask)
    _close(ours(torch.tensor(x), mask=torch.tensor(mask)),
           [_np(t) for t in ref] if isinstance(ref, (list, tuple)) else ref)
    assert set(ours.get_config()) == set(theirs.get_config()) - {"dtype"}


def test_bad_cells_and_states():
    class NoStateSize(keras.layers.Layer):
        def call(self, inputs, states):
            return inputs, states

    with pytest.raises(ConfigError, match="state_size"):
        keras.layers.RNN(NoStateSize())
    with pytest.raises(ConfigError, match="Layer"):
        keras.layers.RNN(lambda x, s: (x, s))
    with pytest.raises(ConfigError, match="non-empty"):
        keras.layers.StackedRNNCells([])
    bad_size = NoStateSize()
    bad_size.state_size = "eight"
    with pytest.raises(ConfigError, match="state_size"):
        keras.layers.RNN(bad_size)
    rnn = keras.layers.RNN(keras.layers.LSTMCell(3))
    x = torch.tensor(X)
    with pytest.raises(ShapeError, match="initial_state must hold 2"):
        rnn(x, initial_state=[torch.zeros(3, 3)])
    with pytest.raises(ShapeError, match=r"initial_state\[1\] must have shape \(3, 3\)"):
        rnn(x, initial_state=[torch.zeros(3, 3), torch.zeros(3, 4)])
    with pytest.raises(ShapeError, match=r"sequences \(batch, timesteps"):
        rnn(torch.zeros(3, 4))
    with pytest.raises(ShapeError, match="axis -1 .* value 4"):
        rnn(torch.zeros(3, 5, 6))  # built for 4 features
    with pytest.raises(ConfigError, match="units"):
        keras.layers.GRUCell(0)
    with pytest.raises(ConfigError, match="dropout"):
        keras.layers.LSTMCell(3, dropout=1.5)
    with pytest.raises(ConfigError, match="strides"):
        keras.layers.ConvLSTM2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ShapeError, match="ndim=5"):
        keras.layers.ConvLSTM2D(2, 3)(torch.zeros(1, 2, 5, 5))
    with pytest.raises(ConfigError, match="not stateful"):
        rnn.reset_states()


def test_embedding_mask_functional_initial_state_and_bidirectional_match_real_keras(rk):
    """Masks from Embedding(mask_zero=True), symbolic initial states (an encoder-decoder graph)
    and Bidirectional(RNN(cell)) against real Keras with the same weights."""
    tokens = np.array([[3, 5, 2, 0, 0], [7, 1, 4, 6, 2], [0, 0, 8, 9, 1]])

    def build(lib):
        encoder_in = lib.Input((5,), dtype="int32")
        embedded = lib.layers.Embedding(10, 4, mask_zero=True)(encoder_in)
        _, h, c = lib.layers.RNN(lib.layers.LSTMCell(3), return_state=True)(embedded)
        decoder_in = lib.Input((4, 2))
        decoded = lib.layers.RNN(lib.layers.LSTMCell(3), return_sequences=True)(
            decoder_in, initial_state=[h, c])
        both = lib.layers.Bidirectional(lib.layers.RNN(lib.layers.GRUCell(2)))(embedded)
        return lib.Model([encoder_in, decoder_in], [decoded, both])

    ours, theirs = build(keras), build(rk)
    weights = _jittered(theirs)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert ours.count_params() == theirs.count_params()
    decoder = RNG.normal(size=(3, 4, 2)).astype(np.float32)
    ours.eval()
    with torch.no_grad():
        result = ours([torch.tensor(tokens), torch.tensor(decoder)])
    _close(list(result), [_np(t) for t in theirs([tokens, decoder])])


def test_cell_dropout_only_in_training():
    """dropout / recurrent_dropout: inference equals the cell without dropout; training draws
    masks (fused path for input dropout, step loop for recurrent dropout), one set per call."""
    x = torch.tensor(X)
    for options in ({"dropout": 0.5}, {"recurrent_dropout": 0.5}):
        plain = keras.layers.RNN(keras.layers.LSTMCell(3), return_sequences=True)
        dropped = keras.layers.RNN(keras.layers.LSTMCell(3, seed=1, **options),
                                   return_sequences=True)
        plain(x)
        dropped(x)
        dropped.set_weights(plain.get_weights())
        _close(dropped(x), plain(x))
        first, second = dropped(x, training=True), dropped(x, training=True)
        assert not torch.allclose(first, plain(x))
        assert not torch.allclose(first, second)
        assert dropped.cell._dropout_masks is None  # nothing kept for the next sequence


def test_registered_custom_cell_archive_both_ways(rk, tmp_path):
    """A user's cell class registered in both libraries travels in .keras files both ways."""
    def register(lib):
        base = _minimal_cell(lib)

        @lib.saving.register_keras_serializable(package="A1Test", name="MinimalRNNCell")
        class MinimalRNNCell(base):
            def get_config(self):
                return {**super().get_config(), "units": self.units}

        return MinimalRNNCell

    ours_cls, theirs_cls = register(keras), register(rk)
    model = keras.Sequential([keras.Input((5, 4)), keras.layers.RNN(ours_cls(3))])
    model.set_weights(_jittered(model))
    expected = model.predict(X, verbose=0)
    model.save(tmp_path / "cell.keras")
    theirs = rk.models.load_model(tmp_path / "cell.keras")
    assert type(theirs.layers[0].cell) is theirs_cls
    _close(theirs.predict(X, verbose=0), expected)
    theirs.save(tmp_path / "cell_real.keras")
    back = keras.models.load_model(tmp_path / "cell_real.keras")
    assert type(back.layers[0].cell) is ours_cls
    _close(back.predict(X, verbose=0), expected)


def test_conv_lstm_initial_state_and_stateful(rk):
    """ConvLSTM2D(initial_state=[h, c]) equals real Keras; a stateful layer fed two halves of a
    sequence ends where one call over the whole sequence ends."""
    x = RNG.normal(size=(2, 4, 5, 5, 2)).astype(np.float32)
    h0, c0 = (RNG.normal(size=(2, 5, 5, 3)).astype(np.float32) for _ in range(2))
    theirs = rk.layers.ConvLSTM2D(3, 3, padding="same", return_state=True)
    ours = keras.layers.ConvLSTM2D(3, 3, padding="same", return_state=True)
    theirs(x)
    ours(torch.tensor(x))
    weights = _jittered(theirs)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    result = ours(torch.tensor(x), initial_state=[torch.tensor(h0), torch.tensor(c0)])
    _close(result, [_np(t) for t in theirs(x, initial_state=[h0, c0])])
    stateful = keras.layers.ConvLSTM2D(3, 3, padding="same", stateful=True)
    stateful(torch.tensor(x[:, :2]))
    stateful.set_weights(weights)
    stateful.reset_states()
    stateful(torch.tensor(x[:, :2]))
    _close(stateful(torch.tensor(x[:, 2:])), ours(torch.tensor(x))[0])
    with pytest.raises(ShapeError, match=r"initial_state must be 2 tensors \[h, c\]"):
        ours(torch.tensor(x), initial_state=[torch.tensor(h0)])


def test_dict_sequences_eager_and_functional_against_numpy():
    class DictCell(keras.layers.Layer):
        state_size = 2

        def build(self, shapes):
            self.k_a = self.add_weight(shape=(shapes["a"][-1], 2), name="k_a")
            self.k_b = self.add_weight(shape=(shapes["b"][-1], 2), name="k_b")

        def call(self, inputs, states):
            out = inputs["a"] @ self.k_a + inputs["b"] @ self.k_b + states[0]
            return out, [out]

    a = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    b = RNG.normal(size=(2, 3, 1)).astype(np.float32)
    rnn = keras.layers.RNN(DictCell(), return_sequences=True)
    eager = rnn({"b": torch.tensor(b), "a": torch.tensor(a)})
    k_a, k_b = rnn.get_weights()
    _close(eager, np.cumsum(a @ k_a + b @ k_b, axis=1))
    inputs = {"a": keras.Input((3, 4)), "b": keras.Input((3, 1))}
    model = keras.Model(inputs, rnn(inputs))
    _close(model.predict({"a": a, "b": b}, verbose=0), eager)
