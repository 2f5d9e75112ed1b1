"""Metrics against NumPy references written here (Keras semantics)."""

import numpy as np
import pytest
import torch

from bigmodel.engine import metrics as M
from bigmodel.errors import ShapeError, UnknownNameError

RNG = np.random.default_rng(0)


def stream(metric, y_pred, y_true, weight=None, split=7):
    """Feed the metric in two uneven batches (the result must not depend on batching)."""
    metric.reset()
    for part in (slice(0, split), slice(split, None)):
        w = None if weight is None else torch.as_tensor(weight[part])
        metric.update(torch.as_tensor(y_pred[part]), torch.as_tensor(y_true[part]), w)
    return metric.result()


def weighted_mean(values, weight=None):
    weight = np.ones_like(values, dtype=np.float64) if weight is None else weight
    return float((values * weight).sum() / weight.sum())


def test_sparse_categorical_accuracy():
    scores = RNG.normal(size=(20, 5)).astype(np.float32)
    labels = RNG.integers(0, 5, size=20)
    weight = RNG.uniform(0, 2, size=20)
    hits = (scores.argmax(1) == labels).astype(np.float64)
    metric = M.SparseCategoricalAccuracy()
    assert metric.name == "sparse_categorical_accuracy"
    assert stream(metric, scores, labels) == pytest.approx(hits.mean())
    assert stream(metric, scores, labels, weight) == pytest.approx(weighted_mean(hits, weight))
    assert stream(metric, scores, labels[:, None]) == pytest.approx(hits.mean())  # (N, 1) labels


def test_categorical_and_binary_accuracy():
    scores = RNG.normal(size=(20, 4)).astype(np.float32)
    onehot = np.eye(4)[RNG.integers(0, 4, size=20)].astype(np.float32)
    hits = (scores.argmax(1) == onehot.argmax(1)).astype(np.float64)
    assert stream(M.CategoricalAccuracy(), scores, onehot) == pytest.approx(hits.mean())

    probs = RNG.uniform(size=(20, 1)).astype(np.float32)
    truth = RNG.integers(0, 2, size=20).astype(np.float32)
    for threshold in (0.5, 0.3):
        hits = ((probs[:, 0] > threshold) == truth).astype(np.float64)
        metric = M.BinaryAccuracy(threshold=threshold)
        assert stream(metric, probs, truth) == pytest.approx(hits.mean())  # (N, 1) vs (N,)
        weight = RNG.uniform(size=20)
        assert stream(metric, probs, truth, weight) == pytest.approx(weighted_mean(hits, weight))


def test_top_k_accuracies():
    scores = RNG.normal(size=(30, 6)).astype(np.float32)
    labels = RNG.integers(0, 6, size=30)
    ranks = (scores > scores[np.arange(30), labels][:, None]).sum(1)  # classes scoring higher
    for k in (1, 2, 5):
        expected = (ranks < k).mean()
        assert stream(M.SparseTopKCategoricalAccuracy(k=k), scores, labels) == pytest.approx(expected)
        assert stream(M.TopKCategoricalAccuracy(k=k), scores, np.eye(6)[labels]) == pytest.approx(expected)
    assert M.SparseTopKCategoricalAccuracy().k == 5
    assert stream(M.SparseTopKCategoricalAccuracy(k=10), scores, labels) == 1.0  # k > classes


def test_regression_errors():
    pred = RNG.normal(size=(15, 3)).astype(np.float32)
    true = RNG.normal(size=(15, 3)).astype(np.float32)
    weight = RNG.uniform(size=15)
    mae = np.abs(pred - true).mean(1)
    mse = ((pred - true) ** 2).mean(1)
    assert stream(M.MeanAbsoluteError(), pred, true) == pytest.approx(mae.mean(), rel=1e-6)
    assert stream(M.MeanSquaredError(), pred, true, weight) == pytest.approx(weighted_mean(mse, weight), rel=1e-6)
    assert M.MeanAbsoluteError()._direction == "down"
    one = RNG.normal(size=15).astype(np.float32)
    assert stream(M.MeanAbsoluteError(), one[:, None], true[:, 0]) == pytest.approx(
        np.abs(one - true[:, 0]).mean(), rel=1e-6)


def test_mean():
    values = RNG.normal(size=12)
    weight = RNG.uniform(size=12)
    metric = M.Mean()
    metric.update(torch.tensor(values[:5]))
    metric.update(torch.tensor(values[5:]))
    assert metric.result() == pytest.approx(values.mean())
    metric.reset()
    assert metric.result() == 0.0
    metric.update(torch.tensor(values), sample_weight=torch.tensor(weight))
    assert metric.result() == pytest.approx(weighted_mean(values, weight))


def np_confusion(pred, true, threshold, weight=None):
    weight = np.ones(pred.shape[0]) if weight is None else weight
    weight = np.broadcast_to(weight.reshape(-1, *([1] * (pred.ndim - 1))), pred.shape)
    predicted, actual = pred > threshold, true != 0
    return ((predicted & actual) * weight).sum(), ((predicted & ~actual) * weight).sum(), \
        ((~predicted & actual) * weight).sum()


def test_precision_recall():
    pred = RNG.uniform(size=(25, 3)).astype(np.float32)
    true = RNG.integers(0, 2, size=(25, 3)).astype(np.float32)
    weight = RNG.uniform(size=25)
    for threshold in (0.5, 0.7):
        tp, fp, fn = np_confusion(pred, true, threshold, weight)
        assert stream(M.Precision(thresholds=threshold), pred, true, weight) == pytest.approx(tp / (tp + fp))
        assert stream(M.Recall(thresholds=threshold), pred, true, weight) == pytest.approx(tp / (tp + fn))
    tp, fp, fn = np_confusion(pred[:, 1], true[:, 1], 0.5)
    assert stream(M.Precision(class_id=1), pred, true) == pytest.approx(tp / (tp + fp))
    # top_k=1: only each row's largest score counts as a positive prediction.
    top = np.zeros_like(pred, dtype=bool)
    top[np.arange(25), pred.argmax(1)] = True
    tp = (top & (true != 0)).sum()
    assert stream(M.Precision(top_k=1), pred, true) == pytest.approx(tp / top.sum())
    assert M.Precision().result() == 0.0  # no predictions yet


def np_auc(pred, true, weight=None, n=200, curve="ROC", method="interpolation"):
    """Keras's AUC: confusion counts at fixed thresholds, then a Riemann sum (written from the docs)."""
    thresholds = np.array([-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7])
    pred, true = pred.reshape(-1), true.reshape(-1) != 0
    weight = np.ones_like(pred, dtype=np.float64) if weight is None else weight.reshape(-1)
    above = pred[None, :] > thresholds[:, None]  # (T, N)
    tp = (above & true).astype(float) @ weight
    fp = (above & ~true).astype(float) @ weight
    fn = (~above & true).astype(float) @ weight
    tn = (~above & ~true).astype(float) @ weight

    def div(a, b):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)

    if curve == "PR" and method == "interpolation":
        dtp, p = tp[:-1] - tp[1:], tp + fp
        dp = p[:-1] - p[1:]
        slope = div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), div(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return float(div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)).sum())
    x, y = (div(fp, fp + tn), div(tp, tp + fn)) if curve == "ROC" else (div(tp, tp + fn), div(tp, tp + fp))
    heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
               "majoring": np.maximum(y[:-1], y[1:])}[method]
    return float(((x[:-1] - x[1:]) * heights).sum())


def rank_auc(pred, true):
    """Exact ROC AUC: probability that a positive outscores a negative (ties count half)."""
    pos, neg = pred[true == 1], pred[true == 0]
    return ((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_auc_matches_reference_and_exact_auc():
    true = RNG.integers(0, 2, size=300).astype(np.float32)
    pred = np.clip(0.3 * true + RNG.uniform(size=300) * 0.7, 0, 1).astype(np.float32)
    weight = RNG.uniform(size=300)
    metric = M.AUC()
    assert metric.name == "auc" and metric.num_thresholds == 200
    value = stream(metric, pred, true, split=113)
    assert value == pytest.approx(np_auc(pred, true), abs=1e-9)
    assert value == pytest.approx(rank_auc(pred, true), abs=0.01)
    assert stream(M.AUC(), pred, true, weight) == pytest.approx(np_auc(pred, true, weight), abs=1e-9)
    for curve in ("ROC", "PR"):
        for method in ("interpolation", "minoring", "majoring"):
            got = stream(M.AUC(num_thresholds=50, curve=curve, summation_method=method), pred, true)
            assert got == pytest.approx(np_auc(pred, true, n=50, curve=curve, method=method), abs=1e-9)
    logits = np.log(pred.clip(1e-4, 1 - 1e-4) / (1 - pred.clip(1e-4, 1 - 1e-4)))
    assert stream(M.AUC(from_logits=True), logits, true) == pytest.approx(
        np_auc(1 / (1 + np.exp(-logits)), true), abs=1e-6)


def test_accuracy_name_resolves_by_shape_like_keras():
    scores = RNG.normal(size=(10, 3)).astype(np.float32)
    labels = RNG.integers(0, 3, size=10)
    metric = M.get("accuracy")
    assert metric.name == "accuracy" and metric._direction == "up"
    assert stream(metric, scores, labels) == pytest.approx((scores.argmax(1) == labels).mean())
    assert type(metric._inner) is M.SparseCategoricalAccuracy
    onehot = M.get("acc")
    stream(onehot, scores, np.eye(3)[labels].astype(np.float32))
    assert onehot.name == "acc" and type(onehot._inner) is M.CategoricalAccuracy
    binary = M.get("accuracy")
    stream(binary, RNG.uniform(size=(10, 1)).astype(np.float32), labels.clip(0, 1))
    assert type(binary._inner) is M.BinaryAccuracy


def test_get_resolves_names_and_errors():
    assert isinstance(M.get("mae"), M.MeanAbsoluteError) and M.get("mae").name == "mae"
    assert M.get("AUC").name == "auc"
    assert M.get(M.Recall(name="r")).name == "r"
    with pytest.raises(UnknownNameError, match=r"Unknown metric 'nope'.*accuracy"):
        M.get("nope")

    def my_metric(y_true, y_pred):
        return (y_pred - y_true).abs().mean(-1)

    wrapped = M.get(my_metric)
    assert wrapped.name == "my_metric"
    assert stream(wrapped, np.ones((4, 2)), np.zeros((4, 2))) == pytest.approx(1.0)


def test_shape_mismatch_is_an_error_not_a_broadcast():
    with pytest.raises(ShapeError, match=r"binary_accuracy needs y_true and y_pred of the same shape"):
        M.BinaryAccuracy().update(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ShapeError, match=r"sample_weight"):
        M.Mean().update(torch.zeros(4), sample_weight=torch.ones(3))
