"""metrics.F1Score and metrics.FBetaScore: hand-computed counts, every average, thresholds,
sample weights, real Keras 3 parity, compile(), bad arguments."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, NotSupportedError, ShapeError

LABELS = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1]]
SCORES = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3],
                   [0.1, 0.8, 0.1]], np.float32)


def _f(tp, fp, fn, beta=1.0):
    p, r = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    return (1 + beta ** 2) * p * r / (beta ** 2 * p + r + 1e-7)


def test_scores_against_hand_counts():
    # arg-max predictions: classes 0, 0, 2, 1, 1 against labels 0, 1, 2, 2, 1
    tp, fp, fn = np.array([1, 1, 1.0]), np.array([1, 1, 0.0]), np.array([0, 1, 1.0])
    per_class = _f(tp, fp, fn)
    metric = keras.metrics.F1Score()
    metric.update_state(LABELS[:2], SCORES[:2])
    metric.update_state(LABELS[2:], SCORES[2:])
    np.testing.assert_allclose(metric.result().numpy(), per_class, rtol=1e-5)
    for average, expected in (("macro", per_class.mean()), ("micro", _f(3.0, 2.0, 2.0)),
                              ("weighted", (per_class * [1, 2, 2]).sum() / 5)):
        metric = keras.metrics.F1Score(average=average)
        metric.update_state(LABELS, SCORES)
        np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    beta = keras.metrics.FBetaScore(beta=2.0, threshold=0.25, average="macro")
    positive = SCORES > 0.25
    tp = (positive * LABELS).sum(0)
    fp = (positive * (1 - LABELS)).sum(0)
    fn = ((1 - positive) * LABELS).sum(0)
    beta.update_state(LABELS, SCORES)
    np.testing.assert_allclose(float(beta.result()), _f(tp, fp, fn, 2.0).mean(), rtol=1e-5)
    weighted = keras.metrics.F1Score(average="micro")
    weighted.update_state(LABELS, SCORES, sample_weight=np.array([2.0, 0, 1, 1, 1]))
    np.testing.assert_allclose(float(weighted.result()), _f(4.0, 1.0, 1.0), rtol=1e-5)


def test_equal_to_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    data = np.random.default_rng(0)
    for name, kwargs in (("F1Score", {}), ("F1Score", {"average": "weighted"}),
                         ("FBetaScore", {"beta": 0.5, "average": "micro", "threshold": 0.3})):
        ours, theirs = getattr(keras.metrics, name)(**kwargs), getattr(real.metrics, name)(**kwargs)
        for _ in range(2):
            labels = np.eye(4, dtype=np.float32)[data.integers(0, 4, 12)]
            scores = data.uniform(size=(12, 4)).astype(np.float32)
            weights = data.uniform(size=12).astype(np.float32)
            ours.update_state(labels, scores, sample_weight=weights)
            theirs.update_state(labels, scores, sample_weight=weights)
        np.testing.assert_allclose(np.asarray(ours.result()), np.asarray(theirs.result()),
                                   rtol=1e-5, atol=1e-7)
        assert ours.get_config() == theirs.get_config()


def test_in_compile_and_bad_arguments():
    torch.manual_seed(0)
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 0).astype(int)]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy",
                  metrics=[keras.metrics.F1Score(average="macro")])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["f1_score"][-1] > 0.9
    with pytest.raises(NotSupportedError, match=r"F1Score\(average=None\) in compile"):
        model.compile(optimizer="adam", loss="categorical_crossentropy",
                      metrics=[keras.metrics.F1Score()])
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ConfigError, match="average='mean'"):
        keras.metrics.F1Score(average="mean")
    with pytest.raises(ConfigError, match="beta=2"):
        keras.metrics.FBetaScore(beta=2)
    with pytest.raises(ConfigError, match="threshold=1.5"):
        keras.metrics.F1Score(threshold=1.5)
    with pytest.raises(ShapeError, match="2D inputs"):
        keras.metrics.F1Score().update_state(np.zeros(3), np.zeros(3))
