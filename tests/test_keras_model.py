"""Keras Model surface: Sequential/functional, compile/fit/evaluate/predict, summary, weights, saving."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError, CheckpointError, ConfigError, DataError, ShapeError
from bigmodel.keras import layers

SEED_PROGRAM = Path(__file__).resolve().parent / "seed_examples" / "seed_cnn.py"


def seed_cnn() -> keras.Sequential:
    return keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def blobs(n: int = 600, classes: int = 3, dim: int = 8, seed: int = 0):
    """Gaussian blobs: an easy, separable classification problem."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(0, 1, size=(n, dim))
    return x.astype(np.float32), y.astype(np.int64)


def mlp(classes: int = 3, dim: int = 8, activation: str = "softmax") -> keras.Sequential:
    return keras.Sequential([
        layers.Dense(16, activation="relu", input_shape=(dim,)),
        layers.Dense(classes, activation=activation),
    ])


def test_seed_cnn_parameter_counts_and_shapes():
    model = seed_cnn()
    counts = [layer.count_params() for layer in model.layers]
    assert counts == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    assert model.count_params() == 93_322
    assert model.output_shape == (None, 10)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for shape in ["(None, 26, 26, 32)", "(None, 13, 13, 32)", "(None, 11, 11, 64)",
                  "(None, 5, 5, 64)", "(None, 3, 3, 64)", "(None, 576)", "(None, 64)",
                  "(None, 10)"]:
        assert shape in text
    assert "Total params: 93,322" in text


def test_fit_learns_and_history_like_keras():
    torch.manual_seed(0)
    x, y = blobs()
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, validation_split=0.2)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9 and loss < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    probs = model.predict(x[:7], verbose=0)
    assert probs.shape == (7, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_softmax_output_trains_on_stable_log_softmax():
    """A softmax layer + cross-entropy equals log-softmax of the logits, even when saturated."""
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = blobs(64)
    model.fit(x, y, epochs=1, verbose=0)
    assert model._use_logits
    last = model.layers[-1]
    with torch.no_grad():
        last.kernel.mul_(1000.0)  # saturate softmax: log(softmax) would be -inf
    loss = model.evaluate(x, y, verbose=0)
    hidden = model.layers[0](torch.as_tensor(x))
    logits = hidden @ last.kernel.T + last.bias if last.kernel.shape[0] == 3 else \
        hidden @ last.kernel + last.bias
    expected = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).item()
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_functional_model_matches_sequential_weights():
    inputs = keras.Input(shape=(8,))
    hidden = layers.Dense(16, activation="relu")(inputs)
    outputs = layers.Dense(3, activation="softmax")(hidden)
    functional = keras.Model(inputs, outputs)
    assert isinstance(functional, keras.Model)
    sequential = mlp()
    sequential.set_weights(functional.get_weights())
    x, _ = blobs(10)
    np.testing.assert_allclose(functional.predict(x, verbose=0), sequential.predict(x, verbose=0),
                               rtol=1e-6)
    lines: list[str] = []
    functional.summary(print_fn=lines.append)
    assert "Total params: 195" in "\n".join(lines)


def test_get_weights_keras_shapes():
    model = seed_cnn()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes[0] == (3, 3, 1, 32) and shapes[1] == (32,)
    assert shapes[-2] == (64, 10) and shapes[-1] == (10,)
    with pytest.raises(ShapeError):
        model.set_weights(model.get_weights()[:-1])


def test_save_load_round_trip(tmp_path):
    x, y = blobs(64)
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.optimizer.learning_rate == pytest.approx(0.01)
    assert restored.evaluate(x, y, verbose=0)[1] == pytest.approx(model.evaluate(x, y, verbose=0)[1])


def test_load_model_refuses_pickle_and_damaged_files(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.keras"
    evil.write_bytes(pickle.dumps(Payload(), protocol=4))
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        keras.models.load_model(evil)
    assert not marker.exists()
    torch_file = tmp_path / "torch.pt"
    torch.save({"w": torch.zeros(2)}, torch_file)
    with pytest.raises(CheckpointError, match="unpickle"):
        keras.models.load_model(torch_file)

    model = mlp()
    good = tmp_path / "good.safetensors"
    model.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) - 50])
    with pytest.raises(CheckpointError, match="truncated"):
        keras.models.load_model(tmp_path / "truncated.safetensors")
    tampered = bytearray(data)
    tampered[-5] ^= 0xFF
    (tmp_path / "tampered.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="integrity"):
        keras.models.load_model(tmp_path / "tampered.safetensors")
    with pytest.raises(ValueError, match="File not found"):
        keras.models.load_model(tmp_path / "missing.safetensors")


def test_bad_inputs_raise_named_errors():
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = blobs(32)
    with pytest.raises(DataError, match="same number of samples"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\]"):
        model.fit(x, np.full(32, 7), verbose=0)
    with pytest.raises(DataError, match="empty"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(BigModelError, match="NaN"):
        bad = x.copy()
        bad[3, 2] = np.nan
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="Unknown loss 'crossentropyy'"):
        model.compile(optimizer="adam", loss="crossentropyy")
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    fresh = mlp()
    with pytest.raises(ConfigError, match="compile"):
        fresh.fit(x, y, verbose=0)


def test_conv_model_rejects_missing_channel_axis_when_undeclared():
    model = keras.Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ShapeError, match="expected ndim=4, found ndim=3"):
        model(np.zeros((2, 28, 28), np.float32))


def test_declared_channel_axis_is_added_like_keras():
    model = seed_cnn()
    out = model.predict(np.zeros((3, 28, 28), np.uint8), verbose=0)
    assert out.shape == (3, 10)


def test_class_and_sample_weights_change_training():
    x, y = blobs(96)
    results = []
    for kwargs in ({}, {"class_weight": {0: 5.0, 1: 1.0, 2: 1.0}},
                   {"sample_weight": np.linspace(0.1, 2, 96)}):
        torch.manual_seed(0)
        model = mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        h = model.fit(x, y, epochs=1, shuffle=False, verbose=0, **kwargs)
        results.append(h.history["loss"][0])
    assert results[0] != pytest.approx(results[1]) and results[0] != pytest.approx(results[2])


def test_regularizers_add_to_loss():
    x, y = blobs(64)
    torch.manual_seed(0)
    plain = mlp()
    torch.manual_seed(0)
    regularized = keras.Sequential([
        layers.Dense(16, activation="relu", input_shape=(8,), kernel_regularizer="l2"),
        layers.Dense(3, activation="softmax"),
    ])
    regularized.set_weights(plain.get_weights())
    for m in (plain, regularized):
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    base = plain.evaluate(x, y, verbose=0)
    penalty = 0.01 * float((regularized.layers[0].get_weights()[0] ** 2).sum())
    h = regularized.fit(x, y, epochs=1, verbose=0, shuffle=False)
    assert h.history["loss"][0] == pytest.approx(base + penalty, rel=1e-4)


@pytest.mark.skipif(not SEED_PROGRAM.exists(), reason="seed examples not found")
def test_seed_cnn_program_runs_with_only_imports_changed():
    """The contract: the seed program, import lines pointed at bigmodel, data defined."""
    source = SEED_PROGRAM.read_text()
    source = source.replace("import tensorflow as tf\n", "")
    source = source.replace("from tensorflow.keras import layers",
                            "from bigmodel import keras as _keras\nfrom bigmodel.keras import layers")
    source = source.replace("tf.keras.", "_keras.")
    assert "tensorflow" not in source
    rng = np.random.default_rng(0)
    # Two "classes" of 28x28 uint8 images that differ in where the bright stripe is.
    labels = rng.integers(0, 2, size=256)
    images = rng.integers(0, 60, size=(256, 28, 28)).astype(np.uint8)
    images[labels == 0, 5:9, :] = 255
    images[labels == 1, :, 5:9] = 255
    namespace = {"train_images": images, "train_labels": labels}
    torch.manual_seed(0)
    exec(compile(source, str(SEED_PROGRAM), "exec"), namespace)
    model = namespace["model"]
    assert model.count_params() == 93_322
    assert model.history.history["accuracy"][-1] > 0.95
