"""IoU metrics, the four "X at Y" curve-point metrics, Sum, the focal function forms and
keras.metrics.serialize / deserialize: against real Keras 3 (torch backend) on the same batches
(sample weights included), NumPy, compile/fit, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError, UnknownNameError
from bigmodel.keras import layers, losses, metrics

RNG = np.random.default_rng(21)


def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("real Keras runs on another backend")
    return real


def _data():
    labels, preds = RNG.integers(0, 4, 20), RNG.integers(0, 4, 20)
    weights = (RNG.random(20) * 3).astype("float32")
    scores = RNG.random(20).astype("float32")
    binary = (RNG.random(20) > 0.5).astype("float32")
    one_hot, class_scores = np.eye(4)[labels], RNG.random((20, 4)).astype("float32")
    return [
        ("IoU", dict(num_classes=4, target_class_ids=[0, 2]),
         [(labels, preds, None), (labels[::-1].copy(), preds, None)]),
        ("IoU", dict(num_classes=4, target_class_ids=[1, 3], ignore_class=0),
         [(labels, preds, weights)]),
        ("MeanIoU", dict(num_classes=4), [(labels, preds, None), (labels, preds, weights)]),
        ("MeanIoU", dict(num_classes=5, dtype="float32"), [(labels, preds, weights)]),
        ("BinaryIoU", {}, [(binary, scores, None)]),
        ("BinaryIoU", dict(target_class_ids=[1], threshold=0.3), [(binary, scores, weights)]),
        ("OneHotIoU", dict(num_classes=4, target_class_ids=[0, 1]),
         [(one_hot, class_scores, None)]),
        ("OneHotMeanIoU", dict(num_classes=4), [(one_hot, class_scores, weights)]),
        ("PrecisionAtRecall", dict(recall=0.6), [(binary, scores, None),
                                                 (binary[:10], scores[10:], weights[:10])]),
        ("PrecisionAtRecall", dict(recall=0.4, num_thresholds=1), [(binary, scores, weights)]),
        ("RecallAtPrecision", dict(precision=0.6), [(binary, scores, weights)]),
        ("RecallAtPrecision", dict(precision=0.3, num_thresholds=7, class_id=2),
         [(one_hot, class_scores, weights)]),
        ("SensitivityAtSpecificity", dict(specificity=0.5), [(binary, scores, None)]),
        ("SensitivityAtSpecificity", dict(specificity=0.5, class_id=2),
         [(one_hot, class_scores, weights)]),
        ("SpecificityAtSensitivity", dict(sensitivity=0.7), [(binary, scores, weights)]),
    ]


def test_metrics_equal_real_keras_over_batches():
    real = real_keras()
    for name, kwargs, batches in _data():
        theirs, ours = getattr(real.metrics, name)(**kwargs), getattr(metrics, name)(**kwargs)
        for y_true, y_pred, weight in batches:
            theirs.update_state(y_true, y_pred, sample_weight=weight)
            ours.update_state(y_true, y_pred, sample_weight=weight)
        assert float(ours.result()) == pytest.approx(float(theirs.result()), abs=1e-6), name
        their_config = theirs.get_config()
        their_config["name"] = ours.name  # Keras numbers repeated default names (io_u_1)
        assert ours.get_config() == their_config, name
        ours.reset_state()
        assert float(ours.result()) == 0.0


def test_sum_equals_real_keras_and_numpy():
    real = real_keras()
    values, rows = RNG.random(5).astype("float32"), RNG.random((5, 3)).astype("float32")
    weights = RNG.random(5).astype("float32")
    theirs, ours = real.metrics.Sum(), metrics.Sum()
    for v, w in ((values, None), (rows, weights), (rows, None), (values, weights)):
        theirs.update_state(v, sample_weight=w)
        ours.update_state(v, sample_weight=w)
    expected = values.sum() + (rows.sum(1) * weights).sum() + rows.sum() + (values * weights).sum()
    assert float(ours.result()) == pytest.approx(expected, rel=1e-6)
    assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)
    assert ours.get_config() == theirs.get_config()


def test_iou_by_hand():
    # confusion (rows true): class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 1, fp 1, fn 1 -> 1/3
    metric = metrics.MeanIoU(num_classes=3)
    metric.update_state([0, 0, 1, 1], [0, 1, 1, 0])
    assert float(metric.result()) == pytest.approx(1 / 3, rel=1e-5)  # class 2 never seen
    assert metric.total_cm.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_serialize_round_trips_both_ways_with_real_keras():
    real = real_keras()
    for metric in (metrics.IoU(3, [0, 1], name="iou"), metrics.PrecisionAtRecall(0.3),
                   metrics.Sum(name="total"), metrics.AUC(num_thresholds=50),
                   metrics.BinaryIoU(threshold=0.3)):
        spec = metrics.serialize(metric)
        assert spec["class_name"] == type(metric).__name__ and spec["module"] == "keras.metrics"
        assert metrics.deserialize(spec).get_config() == metric.get_config() if hasattr(
            metric, "get_config") else metrics.deserialize(spec).name == metric.name
        theirs = real.metrics.deserialize(spec)
        assert type(theirs).__name__ == type(metric).__name__ and theirs.name == metric.name
    spec = real.metrics.serialize(real.metrics.AUC(num_thresholds=40, curve="PR", name="pr"))
    rebuilt = metrics.deserialize(spec)
    assert (rebuilt.num_thresholds, rebuilt.curve, rebuilt.name) == (40, "PR", "pr")
    with pytest.raises(ConfigError, match="multi_label=True"):
        metrics.deserialize(real.metrics.serialize(real.metrics.AUC(multi_label=True)))
    with pytest.raises(UnknownNameError, match="Nope"):
        metrics.deserialize({"class_name": "Nope", "config": {}})


def test_focal_function_forms_are_the_losses():
    real = real_keras()
    y = (RNG.random((4, 3)) > 0.5).astype("float32")
    p = RNG.random((4, 3)).astype("float32")
    assert metrics.binary_focal_crossentropy is losses.binary_focal_crossentropy
    np.testing.assert_allclose(metrics.binary_focal_crossentropy(y, p, gamma=3.0).numpy(),
                               np.asarray(real.metrics.binary_focal_crossentropy(
                                   y, p, gamma=3.0).cpu()), rtol=1e-5)
    np.testing.assert_allclose(metrics.categorical_focal_crossentropy(y, p).numpy(),
                               np.asarray(real.metrics.categorical_focal_crossentropy(
                                   y, p).cpu()), rtol=1e-5)


def test_new_metrics_log_in_fit():
    torch.manual_seed(0)
    x = RNG.standard_normal((64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=[metrics.BinaryIoU(target_class_ids=[1], name="iou"),
                           metrics.RecallAtPrecision(0.8, name="r_at_p")])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["iou"][-1] > history.history["iou"][0]
    assert 0.5 < history.history["r_at_p"][-1] <= 1.0
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(results) >= {"loss", "iou", "r_at_p"}


def test_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match="out of range"):
        metrics.IoU(num_classes=2, target_class_ids=[0, 2])
    with pytest.raises(ConfigError, match="recall"):
        metrics.PrecisionAtRecall(recall=1.5)
    with pytest.raises(ConfigError, match="num_thresholds"):
        metrics.SensitivityAtSpecificity(0.5, num_thresholds=0)
    with pytest.raises(ShapeError, match="do not match"):
        metrics.PrecisionAtRecall(0.5).update_state(np.ones(3), np.ones(4))
    with pytest.raises(ShapeError, match="labels for"):
        metrics.MeanIoU(3).update_state([0, 1], [0, 1, 2])
    with pytest.raises(UnknownNameError, match="not a metric"):
        metrics.serialize("accuracy")
