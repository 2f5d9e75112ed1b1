"""Focal, generalized cross-entropy, Dice, Tversky, Circle and CTC losses, ``keras.ops.ctc_loss`` /
``ctc_decode``, and the reductions of Keras 3: against real Keras 3 (torch backend) on the same
inputs, NumPy equations, a tiny CTC model that learns to read, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, ShapeError, UnknownNameError
from bigmodel.keras import layers, losses, ops

RNG = np.random.default_rng(5)


def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("real Keras runs on another backend")
    return real


def _inputs():
    y_bin = (RNG.random((6, 4)) > 0.5).astype("float32")
    p_bin = RNG.random((6, 4)).astype("float32")
    y_cat = np.eye(5, dtype="float32")[RNG.integers(0, 5, 6)]
    p_cat = RNG.random((6, 5)).astype("float32")
    emb = RNG.standard_normal((8, 3)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    circle_labels = np.array([0, 1, 0, 1, 2, 2, 0, 1], dtype="float32")
    return [
        ("BinaryFocalCrossentropy", {}, y_bin, p_bin),
        ("BinaryFocalCrossentropy", dict(apply_class_balancing=True, gamma=3.0, from_logits=True,
                                         label_smoothing=0.1), y_bin, p_bin * 6 - 3),
        ("CategoricalFocalCrossentropy", {}, y_cat, p_cat),
        ("CategoricalFocalCrossentropy", dict(from_logits=True, label_smoothing=0.2, alpha=0.5),
         y_cat, p_cat * 4 - 2),
        ("CategoricalGeneralizedCrossEntropy", dict(q=0.7), RNG.integers(0, 5, 6).astype("float32"),
         p_cat / p_cat.sum(-1, keepdims=True)),
        ("Dice", {}, y_bin, p_bin), ("Dice", dict(axis=(1,)), y_bin, p_bin),
        ("Tversky", dict(alpha=0.3, beta=0.7), y_bin, p_bin), ("Tversky", dict(axis=(1,)), y_bin, p_bin),
        ("Circle", {}, circle_labels, emb),
        ("Circle", dict(gamma=10.0, margin=0.2, remove_diagonal=False), circle_labels, emb),
    ]


def test_new_losses_equal_real_keras_with_every_reduction_and_sample_weight():
    real = real_keras()
    for name, kwargs, y, p in _inputs():
        weights = RNG.random(len(y)).astype("float32")
        for reduction in ("sum_over_batch_size", "sum", None, "mean_with_sample_weight"):
            for w in (None, weights):
                theirs = getattr(real.losses, name)(reduction=reduction, **kwargs)(
                    y, p, sample_weight=w)
                ours = getattr(losses, name)(reduction=reduction, **kwargs)(
                    torch.tensor(y), torch.tensor(p),
                    sample_weight=None if w is None else torch.tensor(w))
                np.testing.assert_allclose(ours.numpy(), np.asarray(theirs.cpu()), rtol=1e-5,
                                           atol=1e-6, err_msg=f"{name} {kwargs} {reduction}")
        assert getattr(losses, name)(**kwargs).get_config() == \
            getattr(real.losses, name)(**kwargs).get_config()


def test_function_forms_follow_the_equations():
    y = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    p = np.array([[0.8, 0.3], [0.4, 0.6]], dtype="float32")
    p_t = np.where(y == 1, p, 1 - p)
    bce = -np.log(p_t)
    np.testing.assert_allclose(losses.binary_focal_crossentropy(y, p, gamma=2.0).numpy(),
                               ((1 - p_t) ** 2 * bce).mean(-1), rtol=1e-6)
    q = p / p.sum(-1, keepdims=True)
    np.testing.assert_allclose(losses.categorical_focal_crossentropy(y, p).numpy(),
                               (0.25 * (1 - q) ** 2 * -y * np.log(q)).sum(-1), rtol=1e-6)
    assert float(losses.dice(y, p)) == pytest.approx(1 - 2 * (y * p).sum() / (y.sum() + p.sum()))
    tp, fp, fn = (y * p).sum(), ((1 - p) * y).sum(), (p * (1 - y)).sum()
    assert float(losses.tversky(y, p, alpha=0.2, beta=0.8)) == pytest.approx(
        1 - tp / (tp + 0.2 * fp + 0.8 * fn), rel=1e-6)
    np.testing.assert_allclose(
        losses.categorical_generalized_cross_entropy(np.array([0, 1]), p, q=0.5).numpy(),
        (1 - np.array([0.8, 0.6]) ** 0.5) / 0.5, rtol=1e-6)
    assert losses.get("binary_focal_crossentropy").gamma == 2.0
    assert (type(losses.get("Dice")), losses.get("Dice").name) == (losses.Dice, "dice")
    for name in ("dice", "tversky", "circle", "ctc", "categorical_focal_crossentropy"):
        spec = losses.serialize(losses.get(name))
        assert losses.deserialize(spec).get_config() == losses.get(name).get_config()


def test_ctc_loss_and_decode_equal_real_keras():
    real = real_keras()
    logits = RNG.standard_normal((4, 12, 6)).astype("float32")
    labels = np.array([[1, 2, 3, 0], [2, 2, 0, 0], [5, 1, 4, 3], [3, 0, 0, 0]])
    label_length, steps = np.array([3, 2, 4, 1]), np.array([12, 10, 9, 5])
    np.testing.assert_allclose(ops.ctc_loss(labels, logits, label_length, steps).numpy(),
                               np.asarray(real.ops.ctc_loss(labels, logits, label_length,
                                                            steps).cpu()), rtol=1e-5)
    np.testing.assert_allclose(losses.ctc(labels, logits).numpy(),
                               np.asarray(real.losses.ctc(labels, logits).cpu()), rtol=1e-5)
    assert float(losses.CTC()(labels, torch.tensor(logits))) == pytest.approx(
        float(real.losses.CTC()(labels, logits)), rel=1e-5)
    for kwargs in (dict(), dict(merge_repeated=False, mask_index=5),
                   dict(strategy="beam_search", beam_width=5, top_paths=3),
                   dict(strategy="beam_search", beam_width=10, top_paths=2, mask_index=5)):
        ours = ops.ctc_decode(logits, steps, **kwargs)
        theirs = real.ops.ctc_decode(logits, steps, **kwargs)
        np.testing.assert_array_equal(ours[0].numpy(), np.asarray(theirs[0].cpu()))
        assert ours[0].dtype == torch.int32
        np.testing.assert_allclose(ours[1].numpy(), np.asarray(theirs[1].cpu()), rtol=1e-5)


def test_greedy_decode_by_hand():
    # steps pick 1 1 0 2 2 (blank 0): decoded [1, 2], the rest -1
    picks = [1, 1, 0, 2, 2]
    logits = np.full((1, 5, 3), -5.0, dtype="float32")
    logits[0, range(5), picks] = 1.0
    decoded, scores = ops.ctc_decode(logits, [5])
    assert decoded.tolist() == [[[1, 2, -1, -1, -1]]]
    assert float(scores[0, 0]) == pytest.approx(-5.0)


def test_tiny_ctc_model_learns_to_read_three_symbols():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, per, vocab = 256, 4, 3
    labels = rng.integers(1, vocab + 1, (n, 3))
    x = np.zeros((n, 3 * per, vocab + 1), "float32")
    for i in range(n):
        for j, symbol in enumerate(labels[i]):
            x[i, j * per + 1:(j + 1) * per, symbol] = 1.0  # each block starts with a silent step
    x += rng.normal(0, 0.1, x.shape).astype("float32")
    model = keras.Sequential([keras.Input((3 * per, vocab + 1)),
                              layers.Conv1D(16, 3, padding="same", activation="relu"),
                              layers.Dense(vocab + 1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.CTC())
    history = model.fit(x, labels, epochs=12, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    decoded, _ = ops.ctc_decode(model.predict(x[:32], verbose=0), np.full(32, 3 * per))
    assert (decoded[0, :, :3].numpy() == labels[:32]).all(axis=1).mean() >= 0.9
    assert (decoded[0, :, 3:] == -1).all()


def test_bad_input_gives_clear_errors():
    logits = torch.randn(2, 6, 4)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 3\]"):
        losses.ctc(np.array([[1, 7], [1, 2]]), logits)
    with pytest.raises(ShapeError, match="y_true.shape"):
        losses.ctc(np.array([1, 2]), logits)
    with pytest.raises(ShapeError, match="y_pred.shape"):
        losses.ctc(np.array([[1, 2]]), torch.randn(2, 4))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 3\]"):
        ops.ctc_loss(np.array([[1, -1]]), logits[:1], [2], [6])
    with pytest.raises(ConfigError, match="strategy"):
        ops.ctc_decode(logits, [6, 6], strategy="best")
    with pytest.raises(ConfigError, match="q must be in the interval"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)
    with pytest.raises(ConfigError, match="reduction"):
        losses.Dice(reduction="average")
    with pytest.raises(ConfigError, match="axis"):
        losses.CategoricalFocalCrossentropy(axis=True)
    with pytest.raises(ShapeError, match="do not match"):
        losses.Dice()(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(DataError, match="labels must lie"):
        losses.categorical_generalized_cross_entropy(np.array([0, 5]), torch.rand(2, 3), q=0.5)
    with pytest.raises(UnknownNameError, match="tverskyy"):
        losses.get("tverskyy")


def test_a_subclass_calls_the_base_as_in_keras():
    class Scaled(losses.Loss):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, y_true, y_pred):
            return self.factor * (y_true - y_pred).abs().mean(dim=-1)

    loss = Scaled(name="scaled", reduction="sum", dtype="float32")
    assert loss.name == "scaled"
    assert float(loss(torch.ones(2, 3), torch.zeros(2, 3))) == pytest.approx(4.0)
    positional = Scaled.__mro__[1]("named", "none")  # Keras's order: name, reduction
    assert (positional.name, positional.reduction) == ("named", "none")
    with pytest.raises(NotImplementedError, match="float32"):
        losses.Dice(dtype="float16")


def test_keras_files_carry_the_new_compile_settings_both_ways(tmp_path):
    real = real_keras()
    ours = keras.Sequential([keras.Input((4,)), layers.Dense(1, activation="sigmoid")])
    ours.compile(optimizer=keras.optimizers.Lion(0.01),
                 loss=keras.losses.BinaryFocalCrossentropy(gamma=3.0),
                 metrics=[keras.metrics.BinaryIoU(threshold=0.4)])
    ours.save(tmp_path / "ours.keras")
    loaded = real.models.load_model(tmp_path / "ours.keras")
    assert type(loaded.optimizer).__name__ == "Lion"
    assert loaded.loss.get_config()["gamma"] == 3.0
    theirs = real.Sequential([real.Input((6, 4)), real.layers.Dense(5)])
    theirs.compile(optimizer=real.optimizers.Ftrl(0.1), loss=real.losses.CTC(),
                   metrics=[real.metrics.MeanIoU(2)])
    theirs.save(tmp_path / "theirs.keras")
    back = keras.models.load_model(tmp_path / "theirs.keras")
    assert isinstance(back.optimizer, keras.optimizers.Ftrl)
    assert isinstance(back.loss, losses.CTC)
    labels = np.array([[1, 2, 0], [3, 0, 0]])
    logits = RNG.standard_normal((2, 6, 5)).astype("float32")
    assert float(back.loss(labels, torch.tensor(logits))) == pytest.approx(
        float(theirs.loss(labels, logits)), rel=1e-5)
