"""Real Keras 3 files both ways: ``.keras`` archives and ``.weights.h5`` written by bigmodel load in
real Keras 3 (torch backend) with the same outputs, and files written by real Keras 3 load in
bigmodel; the archive layout byte by byte; every bad file refused with a named error, nothing run,
nothing written."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError, ConfigError
from bigmodel.keras import layers

h5py = pytest.importorskip("h5py", reason="h5py not installed (pip install 'bigmodel[keras]')")

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def rk():
    """Real Keras 3 on its torch backend, imported once per module (the import takes seconds)."""
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    real = pytest.importorskip("keras", reason="real Keras 3 is not installed: "
                                                "pip install -e '.[dev]'")
    if real.backend.backend() != "torch":
        pytest.skip(f"real Keras runs on {real.backend.backend()}, not torch")
    return real


def _jitter(model):
    """Non-trivial weights (BatchNorm statistics and biases too), same in both libraries."""
    model.set_weights([w + RNG.uniform(0.05, 0.3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


def _assert_same(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def _predict(model, x):
    """bigmodel outputs (several inputs: a direct call, in inference mode)."""
    if not isinstance(x, list):
        return model.predict(x, verbose=0)
    model.eval()
    with torch.no_grad():
        return model([torch.as_tensor(v) for v in x]).numpy()


def _both_ways(rk, model, x, tmp_path, name):
    """bigmodel -> real Keras -> bigmodel, outputs equal at each step."""
    _jitter(model)
    ours = _predict(model, x)
    model.save(tmp_path / f"{name}.keras")
    theirs = rk.models.load_model(tmp_path / f"{name}.keras")
    _assert_same(theirs.predict(x, verbose=0), ours)
    theirs.save(tmp_path / f"{name}_real.keras")
    back = keras.models.load_model(tmp_path / f"{name}_real.keras")
    _assert_same(_predict(back, x), ours)
    assert [w.shape for w in back.get_weights()] == [w.shape for w in model.get_weights()]
    return back


def test_cnn_both_ways(rk, tmp_path):
    model = keras.Sequential([
        keras.Input((10, 10, 2)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(),
        layers.BatchNormalization(),
        layers.Conv2D(3, (2, 3), strides=2),
        layers.AveragePooling2D(pool_size=1),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(5, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.005),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = RNG.random((3, 10, 10, 2), dtype=np.float32)
    back = _both_ways(rk, model, x, tmp_path, "cnn")
    theirs = rk.models.load_model(tmp_path / "cnn.keras")  # compile settings reach real Keras
    assert theirs.optimizer.learning_rate.numpy() == pytest.approx(0.005)
    loss = theirs.loss if isinstance(theirs.loss, str) else type(theirs.loss).__name__
    assert loss in ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
    assert back.optimizer.learning_rate == pytest.approx(0.005)
    assert [type(lay).__name__ for lay in back.layers] == [
        "Conv2D", "MaxPooling2D", "BatchNormalization", "Conv2D", "AveragePooling2D",
        "Flatten", "Dropout", "Dense"]


def test_recurrent_models_from_real_keras(rk, tmp_path):
    """Keras -> bigmodel first: LSTM gate order, GRU reset_after bias, Bidirectional, Embedding."""
    real = rk.Sequential([
        rk.Input((6,), dtype="int32"),
        rk.layers.Embedding(12, 5),
        rk.layers.LSTM(4, return_sequences=True),
        rk.layers.GRU(3, return_sequences=True),
        rk.layers.Bidirectional(rk.layers.LSTM(2, return_sequences=True)),
        rk.layers.SimpleRNN(3),
        rk.layers.Dense(2),
    ])
    real.set_weights([w + RNG.uniform(-0.2, 0.2, w.shape).astype(w.dtype)
                      for w in real.get_weights()])
    x = RNG.integers(0, 12, (4, 6))
    expected = real.predict(x, verbose=0)
    real.save(tmp_path / "rnn_real.keras")
    ours = keras.models.load_model(tmp_path / "rnn_real.keras")
    _assert_same(ours.predict(x, verbose=0), expected)
    ours.save(tmp_path / "rnn.keras")
    _assert_same(rk.models.load_model(tmp_path / "rnn.keras").predict(x, verbose=0), expected)


def test_two_input_functional_both_ways(rk, tmp_path):
    if not hasattr(layers, "Concatenate"):
        pytest.skip("layers.Concatenate not available")
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    deep = layers.Dense(5, activation="relu")(layers.Dense(6, activation="tanh")(a))
    merged = layers.Concatenate()([deep, layers.Dense(2)(b)])
    model = keras.Model([a, b], layers.Dense(1)(merged))
    x = [RNG.random((5, 4), dtype=np.float32), RNG.random((5, 3), dtype=np.float32)]
    back = _both_ways(rk, model, x, tmp_path, "two")
    assert len(back.inputs) == 2


def test_transformer_block_both_ways(rk, tmp_path):
    inputs = keras.Input((7, 8))
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    if hasattr(layers, "Add"):
        attended = layers.Add()([inputs, attended])
    x = layers.LayerNormalization(epsilon=1e-6)(attended)
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.LayerNormalization()(layers.Dense(8)(x))
    model = keras.Model(inputs, outputs)
    _both_ways(rk, model, RNG.random((2, 7, 8), dtype=np.float32), tmp_path, "block")


# (input shape without batch, layer class, arguments): every layer that both libraries have.
LAYER_CASES = [
    ((6, 3), "Conv1D", dict(filters=4, kernel_size=2, activation="relu")),
    ((6, 3), "Conv1DTranspose", dict(filters=4, kernel_size=3, strides=2)),
    ((6, 6, 3), "Conv2D", dict(filters=2, kernel_size=3, dilation_rate=2, use_bias=False)),
    ((6, 6, 3), "Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same")),
    ((6, 6, 3), "DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2)),
    ((6, 6, 3), "SeparableConv2D", dict(filters=4, kernel_size=3)),
    ((6, 3), "SeparableConv1D", dict(filters=4, kernel_size=3)),
    ((6, 3), "MaxPooling1D", dict(pool_size=2)),
    ((6, 3), "AveragePooling1D", dict(pool_size=2)),
    ((6, 6, 3), "MaxPooling2D", dict(pool_size=2, strides=1)),
    ((6, 3), "GlobalAveragePooling1D", {}),
    ((6, 3), "GlobalMaxPooling1D", {}),
    ((6, 6, 3), "GlobalAveragePooling2D", {}),
    ((6, 6, 3), "GlobalMaxPooling2D", dict(keepdims=True)),
    ((6, 3), "Cropping1D", dict(cropping=1)),
    ((6, 6, 3), "Cropping2D", dict(cropping=1)),
    ((6, 3), "ZeroPadding1D", dict(padding=1)),
    ((6, 6, 3), "ZeroPadding2D", dict(padding=1)),
    ((6, 3), "UpSampling1D", dict(size=2)),
    ((6, 6, 3), "UpSampling2D", dict(size=2)),
    ((6,), "RepeatVector", dict(n=3)),
    ((6, 3), "Permute", dict(dims=(2, 1))),
    ((6, 3), "Reshape", dict(target_shape=(3, 6))),
    ((6,), "LeakyReLU", dict(negative_slope=0.2)),
    ((6,), "PReLU", {}),
    ((6,), "ELU", {}),
    ((6,), "ReLU", dict(max_value=0.5)),
    ((6,), "Softmax", {}),
    ((6,), "Rescaling", dict(scale=0.5, offset=1.0)),
    ((6,), "Normalization", dict(mean=[0.5] * 6, variance=[2.0] * 6)),
    ((6, 6, 3), "CenterCrop", dict(height=4, width=4)),
    ((6, 6, 3), "Resizing", dict(height=3, width=3)),
    ((6,), "GaussianNoise", dict(stddev=0.1)),
    ((6,), "GaussianDropout", dict(rate=0.1)),
    ((6, 3), "SpatialDropout1D", dict(rate=0.1)),
    ((6, 6, 3), "SpatialDropout2D", dict(rate=0.1)),
    ((6,), "ActivityRegularization", dict(l1=0.01)),
    ((6,), "Identity", {}),
    ((6,), "Activation", dict(activation="tanh")),
    ((5, 3), "Masking", dict(mask_value=0.0)),
    ((5, 3), "GRU", dict(units=3, reset_after=False)),
    ((5, 3), "LSTM", dict(units=2, use_bias=False, unit_forget_bias=False)),
    ((5, 3), "SimpleRNN", dict(units=2, return_sequences=True)),
    ((6,), "Dense", dict(units=3, use_bias=False, activation="gelu")),
    ((6, 6, 3), "RandomFlip", {}),
    ((6, 6, 3), "BatchNormalization", dict(center=False)),
    ((6, 3), "LayerNormalization", dict(scale=False)),
]


@pytest.mark.parametrize("shape, name, kwargs", LAYER_CASES, ids=[c[1] for c in LAYER_CASES])
def test_every_layer_both_ways(rk, tmp_path, shape, name, kwargs):
    if not hasattr(layers, name):
        pytest.skip(f"layers.{name} not available")
    model = keras.Sequential([keras.Input(shape), getattr(layers, name)(**kwargs)])
    _both_ways(rk, model, RNG.random((2, *shape), dtype=np.float32), tmp_path, name)


def test_wrappers_and_merges_both_ways(rk, tmp_path):
    needed = ("TimeDistributed", "Average", "Maximum", "Minimum", "Multiply", "Subtract", "Dot")
    if not all(hasattr(layers, n) for n in needed):
        pytest.skip("merge layers not available")
    inputs = keras.Input((5, 3))
    a = layers.TimeDistributed(layers.Dense(4))(inputs)
    b = layers.Bidirectional(layers.GRU(2, return_sequences=True))(inputs)
    merged = [layers.Average()([a, b]), layers.Maximum()([a, b]), layers.Minimum()([a, b]),
              layers.Multiply()([a, b]), layers.Subtract()([a, b])]
    x = layers.Concatenate()(merged)
    pooled = layers.GlobalAveragePooling1D()(x)
    out = layers.Dot(axes=1)([layers.Dense(3)(pooled), layers.Dense(3)(pooled)])
    model = keras.Model(inputs, out)
    _both_ways(rk, model, RNG.random((2, 5, 3), dtype=np.float32), tmp_path, "merges")


def test_bigmodel_only_layer_round_trips_in_bigmodel(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.RecurrentConv2D(2, 3, steps=2),
                              layers.GlobalMaxPooling2D(), layers.Dense(2)])
    _jitter(model)
    model.save(tmp_path / "rcl.keras")
    with zipfile.ZipFile(tmp_path / "rcl.keras") as archive:
        spec = json.loads(archive.read("config.json"))["config"]["layers"][1]
    assert spec["registered_name"] == "bigmodel>RecurrentConv2D"
    x = RNG.random((2, 8, 8, 1), dtype=np.float32)
    _assert_same(keras.models.load_model(tmp_path / "rcl.keras").predict(x, verbose=0),
                 model.predict(x, verbose=0))


def test_real_keras_operator_nodes_and_compile_config(rk, tmp_path):
    """``x + y`` on Keras tensors is saved as a keras.ops node; compile settings come along."""
    inputs = rk.Input((5,))
    h = rk.layers.Dense(5)(inputs)
    real = rk.Model(inputs, rk.layers.Dense(2)(rk.ops.exp(-(h + inputs) * 0.5)))
    real.compile(optimizer=rk.optimizers.Adam(learning_rate=0.02), loss="mse", metrics=["mae"])
    real.save(tmp_path / "ops.keras")
    x = RNG.random((3, 5), dtype=np.float32)
    ours = keras.models.load_model(tmp_path / "ops.keras")
    _assert_same(ours.predict(x, verbose=0), real.predict(x, verbose=0))
    assert ours.optimizer.learning_rate == pytest.approx(0.02)


def test_operator_nodes_from_bigmodel(rk, tmp_path):
    inputs = keras.Input((4,))
    h = layers.Dense(4)(inputs)
    model = keras.Model(inputs, layers.Dense(3)((h + inputs) * 2.0 - h / 3.0))
    x = RNG.random((2, 4), dtype=np.float32)
    _both_ways(rk, model, x, tmp_path, "ops")


def test_weights_h5_both_ways(rk, tmp_path):
    def build(lib):
        return lib.Sequential([lib.Input((6,)), lib.layers.Dense(4, activation="relu"),
                               lib.layers.BatchNormalization(), lib.layers.Dense(2)])

    ours, real = build(keras), build(rk)
    _jitter(ours)
    ours.save_weights(tmp_path / "ours.weights.h5")
    real.load_weights(tmp_path / "ours.weights.h5")
    x = RNG.random((4, 6), dtype=np.float32)
    _assert_same(real.predict(x, verbose=0), ours.predict(x, verbose=0))
    real.set_weights([w * 0.5 for w in real.get_weights()])
    real.save_weights(tmp_path / "real.weights.h5")
    ours.load_weights(tmp_path / "real.weights.h5")
    _assert_same(ours.predict(x, verbose=0), real.predict(x, verbose=0))


def test_archive_layout(tmp_path):
    model = keras.Sequential([keras.Input((5, 5, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                              layers.Dense(3), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    assert data[:4] == b"PK\x03\x04"  # a zip, not safetensors
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))
        weights = archive.read("model.weights.h5")
    assert weights[:8] == b"\x89HDF\r\n\x1a\n"
    assert set(metadata) >= {"keras_version", "date_saved"}
    assert metadata["keras_version"].startswith("3.")
    assert (config["module"], config["class_name"]) == ("keras", "Sequential")
    loss = config["compile_config"]["loss"]  # as given (Keras 3), or as an object
    assert loss == "mse" or loss["class_name"] == "MeanSquaredError"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    specs = config["config"]["layers"]
    assert [s["class_name"] for s in specs] == ["InputLayer", "Conv2D", "Flatten", "Dense",
                                                "Dense"]
    assert all(s["module"] == "keras.layers" for s in specs)
    assert specs[1]["config"]["kernel_size"] == [3, 3]
    kernel, bias = model.layers[0].get_weights()
    with h5py.File(io.BytesIO(weights), "r") as h5:
        np.testing.assert_array_equal(h5["layers/conv2d/vars/0"][()], kernel)  # (kh, kw, in, out)
        assert h5["layers/conv2d/vars/0"].shape == (3, 3, 1, 2)
        np.testing.assert_array_equal(h5["layers/conv2d/vars/1"][()], bias)
        np.testing.assert_array_equal(h5["layers/dense_1/vars/0"][()],
                                      model.layers[3].get_weights()[0])
        assert "layers/flatten/vars" in h5 and len(h5["layers/flatten/vars"]) == 0


def test_lstm_layout_matches_get_weights(tmp_path):
    model = keras.Sequential([keras.Input((4, 3)), layers.LSTM(2)])
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as h5:
        stored = [h5[f"layers/lstm/cell/vars/{i}"][()] for i in range(3)]
    for ours, theirs in zip(model.get_weights(), stored):
        np.testing.assert_array_equal(ours, theirs)


def test_safetensors_names_keep_their_format(tmp_path):
    from bigmodel.utils.loading import read_safetensors_header

    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    model.save(tmp_path / "m.safetensors")
    model.save_weights(tmp_path / "w.safetensors")
    read_safetensors_header(tmp_path / "m.safetensors")
    read_safetensors_header(tmp_path / "w.safetensors")
    again = keras.models.load_model(tmp_path / "m.safetensors")
    _assert_same(again.predict(np.ones((1, 3)), verbose=0), model.predict(np.ones((1, 3)),
                                                                          verbose=0))


@pytest.mark.parametrize("call, name", [("save", "m.h5"), ("save", "m.bin"),
                                         ("save", "m.weights.h5"), ("save_weights", "w.h5"),
                                         ("save_weights", "w.keras")])
def test_other_file_names_refused_nothing_written(tmp_path, call, name):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(BigModelError, match=r"\.keras|\.weights\.h5") as info:
        getattr(model, call)(tmp_path / name)
    assert ".safetensors" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_subclassed_model_refused_nothing_written(tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="subclassed"):
        net.save(tmp_path / "net.keras")
    assert not (tmp_path / "net.keras").exists()
    net.save_weights(tmp_path / "net.weights.h5")  # weights alone are fine
    other = Net()
    other(np.ones((1, 3), dtype=np.float32))
    other.load_weights(tmp_path / "net.weights.h5")
    _assert_same(other.dense.get_weights()[0], net.dense.get_weights()[0])


def _subclassed(lib):
    """The same subclassed model in either library: layers in a list, a weight of its own."""

    class Block(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.denses = [lib.layers.Dense(4, activation="relu"), lib.layers.Dense(4)]
            self.norm = lib.layers.LayerNormalization()

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(4,), initializer="ones", name="scale")

        def call(self, x):
            for dense in self.denses:
                x = dense(x)
            return self.norm(x) * self.scale

    class Net(lib.Model):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.head = lib.layers.Dense(2)

        def call(self, x):
            return self.head(self.block(x))

    return Net()


def test_subclassed_model_weights_both_ways(rk, tmp_path):
    x = RNG.random((3, 5), dtype=np.float32)
    ours, theirs = _subclassed(keras), _subclassed(rk)
    ours(x)
    theirs(x)
    theirs.set_weights([w + RNG.uniform(0.1, 0.3, w.shape).astype(w.dtype)
                        for w in theirs.get_weights()])
    theirs.save_weights(tmp_path / "real.weights.h5")
    ours.load_weights(tmp_path / "real.weights.h5")
    _assert_same(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    _jitter(ours)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    _assert_same(theirs.predict(x, verbose=0), ours.predict(x, verbose=0))


def test_multi_output_model_with_rnn_states_both_ways(rk, tmp_path):
    if not hasattr(layers, "Concatenate"):
        pytest.skip("layers.Concatenate not available")
    inputs = keras.Input((5, 3))
    sequence, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(inputs)
    states = layers.Concatenate()([layers.Dense(2)(h), layers.Dense(2)(c)])
    model = keras.Model(inputs, [states, layers.GlobalAveragePooling1D()(sequence)])
    _jitter(model)
    x = RNG.random((2, 5, 3), dtype=np.float32)

    def run(net):
        net.eval()
        with torch.no_grad():
            return [t.numpy() for t in net(torch.as_tensor(x))]

    ours = run(model)
    model.save(tmp_path / "multi.keras")
    theirs = rk.models.load_model(tmp_path / "multi.keras")
    for a, b in zip(theirs.predict(x, verbose=0), ours):
        _assert_same(a, b)
    theirs.save(tmp_path / "multi_real.keras")
    for a, b in zip(run(keras.models.load_model(tmp_path / "multi_real.keras")), ours):
        _assert_same(a, b)
