"""Keras 3 names added for docs/keras_api.md: aliases as Keras has them, the activations of
keras.ops.nn, and the hinge / Poisson / KL / log-cosh / MSLE / MAPE / cosine losses and metrics
(against NumPy, and against real Keras 3 where installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import (
    ConfigError,
    DataError,
    DataFileError,
    NotSupportedError,
    ShapeError,
    UnknownNameError,
)
from bigmodel.keras.unsupported import UnsupportedNamespace
from keras_reference import real_keras as _real_keras

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-7
rng = np.random.default_rng(0)
Y_TRUE = rng.uniform(0.05, 1.0, (6, 4)).astype(np.float32)
Y_PRED = rng.uniform(0.05, 1.0, (6, 4)).astype(np.float32)
BINARY = (rng.uniform(size=(6, 4)) > 0.5).astype(np.float32)
ONE_HOT = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]


def test_aliases_are_the_same_objects():
    init, utils = keras.initializers, keras.utils
    assert init.glorot_uniform is init.GlorotUniform and init.he_normal is init.HeNormal
    assert init.Orthogonal is init.orthogonal is init.OrthogonalInitializer
    assert init.identity is init.IdentityInitializer is init.Identity
    assert utils.Sequence is utils.PyDataset
    assert utils.register_keras_serializable is keras.saving.register_keras_serializable
    assert utils.clear_session is keras.backend.clear_session
    assert keras.config.set_dtype_policy is keras.mixed_precision.set_dtype_policy
    assert keras.metrics.hinge is keras.losses.hinge
    assert keras.Loss is keras.losses.Loss and keras.Metric is keras.metrics.Metric
    # Keras 3's l1_l2() is L1L2(): no penalty unless given (tf.keras's defaulted to 0.01)
    assert keras.regularizers.l1_l2 is keras.regularizers.L1L2
    assert keras.regularizers.l1_l2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert keras.ops.nn.conv is keras.ops.conv and keras.ops.numpy.ndim is keras.ops.ndim
    # an alias makes what its class makes
    torch.manual_seed(0)
    a = init.glorot_uniform(seed=3)((4, 5))
    assert torch.equal(a, init.GlorotUniform(seed=3)((4, 5)))


def test_alias_groups_match_real_keras():
    """Every set of names that are one object in real Keras is one object here too (where
    bigmodel has any of them), across modules as well (keras.utils.clear_session ...)."""
    real = _real_keras()
    index = json.loads((ROOT / "docs" / "keras_api.json").read_text())["modules"]

    def walk(root, path):
        for part in path.split(".")[1:]:
            root = getattr(root, part)
        return root

    groups: dict[int, list[tuple[str, str]]] = {}
    for module, names in index.items():
        for name in names:
            groups.setdefault(id(getattr(walk(real, module), name)), []).append((module, name))
    wrong = []
    for group in groups.values():
        ours = {}
        for module, name in group:
            owner = walk(keras, module)
            if isinstance(owner, UnsupportedNamespace):
                continue  # a whole Keras module bigmodel does not have (keras.dtype_policies)
            try:
                ours[f"{module}.{name}"] = getattr(owner, name)
            except AttributeError:
                ours[f"{module}.{name}"] = None
        present = [v for v in ours.values() if v is not None]
        # all or none of the names; classes the very same (isinstance, subclassing)
        if len(ours) > 1 and present and (len(present) < len(ours) or (
                isinstance(present[0], type) and any(v is not present[0] for v in present))):
            wrong.append(sorted(ours))
    assert wrong == [], "\n".join(map(str, wrong))


def _sparsemax(x):
    z = np.sort(x, axis=-1)[..., ::-1]
    k = np.arange(1, x.shape[-1] + 1)
    cumulative = np.cumsum(z, axis=-1)
    support = 1 + k * z > cumulative
    k_max = support.sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumulative, k_max - 1, axis=-1) - 1) / k_max
    return np.maximum(x - tau, 0)


ACTIVATIONS = {  # name -> (NumPy reference, extra arguments)
    "celu": (lambda x: np.maximum(x, 0) + np.minimum(0, np.expm1(x)), {}),
    "glu": (lambda x: x[:, :2] / (1 + np.exp(-x[:, 2:])), {}),
    "hard_shrink": (lambda x: np.where(np.abs(x) > 0.5, x, 0), {}),
    "hard_tanh": (lambda x: np.clip(x, -1, 1), {}),
    "log_sigmoid": (lambda x: -np.log1p(np.exp(-x)), {}),
    "soft_shrink": (lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0), {}),
    "sparse_plus": (lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)), {}),
    "sparse_sigmoid": (lambda x: np.clip(0.5 * (x + 1), 0, 1), {}),
    "sparsemax": (_sparsemax, {}),
    "squareplus": (lambda x: (x + np.sqrt(x * x + 4)) / 2, {}),
    "tanh_shrink": (lambda x: x - np.tanh(x), {}),
    "threshold": (lambda x: np.where(x > 0.3, x, -2.0), {"threshold": 0.3, "default_value": -2.0}),
}


def test_activations_from_keras_ops_nn_against_numpy():
    x = np.linspace(-2.5, 2.5, 24, dtype=np.float32).reshape(6, 4)
    for name, (reference, kwargs) in ACTIVATIONS.items():
        fn = keras.activations.get(name)
        assert fn is getattr(keras.activations, name)
        np.testing.assert_allclose(fn(torch.tensor(x), **kwargs).numpy(), reference(x),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
        assert keras.activations.serialize(fn) == name
    dense = keras.layers.Dense(3, activation="squareplus")
    out = dense(torch.ones(2, 4)).detach().numpy()
    logits = dense(torch.ones(2, 4), logits=True).detach().numpy()
    np.testing.assert_allclose(out, (logits + np.sqrt(logits ** 2 + 4)) / 2, rtol=1e-6)
    assert dense.get_config()["activation"] == "squareplus"
    deserialize = keras.activations.deserialize
    assert deserialize("gelu") is keras.activations.gelu
    assert deserialize({"module": "keras.activations", "class_name": "function",
                        "config": "relu", "registered_name": "relu"}) is keras.activations.relu
    assert deserialize("mine", custom_objects={"mine": np.tanh}) is np.tanh
    with pytest.raises(UnknownNameError, match="Unknown activation: 'nope'"):
        deserialize("nope")


def _hinge_labels(y):
    return 2 * y - 1 if np.isin(y, (0, 1)).all() else y


LOSSES = {  # name -> (class name, NumPy per-sample reference, labels, predictions)
    "hinge": ("Hinge", lambda t, p: np.maximum(1 - _hinge_labels(t) * p, 0).mean(-1),
              BINARY, Y_PRED * 2 - 1),
    "squared_hinge": ("SquaredHinge",
                      lambda t, p: (np.maximum(1 - _hinge_labels(t) * p, 0) ** 2).mean(-1),
                      BINARY, Y_PRED * 2 - 1),
    "categorical_hinge": ("CategoricalHinge", lambda t, p: np.maximum(
        ((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0), ONE_HOT, Y_PRED),
    "poisson": ("Poisson", lambda t, p: (p - t * np.log(p + EPS)).mean(-1), Y_TRUE, Y_PRED),
    "kl_divergence": ("KLDivergence", lambda t, p: (np.clip(t, EPS, 1) * np.log(
        np.clip(t, EPS, 1) / np.clip(p, EPS, 1))).sum(-1), Y_TRUE, Y_PRED),
    "log_cosh": ("LogCosh", lambda t, p: np.log(np.cosh(p - t)).mean(-1), Y_TRUE, Y_PRED * 3),
    "mean_squared_logarithmic_error": ("MeanSquaredLogarithmicError", lambda t, p: (
        (np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(t, EPS))) ** 2).mean(-1),
        Y_TRUE, Y_PRED),
    "mean_absolute_percentage_error": ("MeanAbsolutePercentageError", lambda t, p: 100 * (
        np.abs(t - p) / np.maximum(np.abs(t), EPS)).mean(-1), Y_TRUE, Y_PRED),
    "cosine_similarity": ("CosineSimilarity", lambda t, p: -(t * p).sum(-1) / (
        np.linalg.norm(t, axis=-1) * np.linalg.norm(p, axis=-1)), Y_TRUE - 0.5, Y_PRED - 0.5),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_against_numpy(name):
    class_name, reference, y_true, y_pred = LOSSES[name]
    expected = reference(y_true.astype(np.float64), y_pred.astype(np.float64))
    per_sample = getattr(keras.losses, name)(y_true, torch.tensor(y_pred)).numpy()
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-6)
    weights = np.linspace(0.5, 2.0, len(y_true)).astype(np.float32)
    loss = getattr(keras.losses, class_name)()
    value = loss(y_true, torch.tensor(y_pred), sample_weight=torch.tensor(weights))
    np.testing.assert_allclose(float(value), (expected * weights).mean(), rtol=1e-5)
    by_name = keras.losses.get(name)
    np.testing.assert_allclose(float(by_name(y_true, torch.tensor(y_pred))), expected.mean(),
                               rtol=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_losses_and_metrics_against_real_keras():
    real = _real_keras()
    for name, (class_name, _, y_true, y_pred) in LOSSES.items():
        ours = getattr(keras.losses, class_name)()(y_true, torch.tensor(y_pred))
        theirs = getattr(real.losses, class_name)()(y_true, y_pred)
        np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5, err_msg=name)
    for class_name in ("Hinge", "SquaredHinge", "CategoricalHinge", "Poisson", "KLDivergence",
                       "LogCoshError", "MeanSquaredLogarithmicError", "CosineSimilarity"):
        ours, theirs = getattr(keras.metrics, class_name)(), getattr(real.metrics, class_name)()
        for a, b in ((Y_TRUE, Y_PRED), (Y_PRED, BINARY)):
            ours.update_state(torch.tensor(a), torch.tensor(b))
            theirs.update_state(a, b)
        assert ours.name == theirs.name
        np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-5,
                                   err_msg=class_name)


def test_hinge_loss_trains_a_classifier_with_a_metric_by_name():
    torch.manual_seed(0)
    x = np.random.default_rng(1).normal(size=(128, 2)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)  # 0/1 labels: the loss maps them to -1/1
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="hinge", metrics=["squared_hinge"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert "squared_hinge" in history.history
    accuracy = ((model.predict(x, verbose=0) > 0) == (y > 0)).mean()
    assert accuracy > 0.9


def test_bad_inputs_to_the_new_losses():
    with pytest.raises(ShapeError, match="hinge"):
        keras.losses.Hinge()(np.zeros((4, 3)), torch.zeros(4, 2))
    with pytest.raises(UnknownNameError, match="Known losses"):
        keras.losses.get("hinge_loss_typo")


def test_optimizer_options_that_are_not_implemented_are_refused_not_ignored():
    # Keras's defaults (every saved optimizer config holds them) are accepted
    keras.optimizers.Adam(use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                          loss_scale_factor=None)
    with pytest.raises(NotSupportedError, match=r"SGD: .*loss_scale_factor=128"):
        keras.optimizers.SGD(loss_scale_factor=128)


def test_utils_normalize_pack_unpack_and_preprocessing_pad_sequences():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])
    # a zero row stays zero (its norm counts as 1)
    np.testing.assert_allclose(keras.utils.normalize(x),
                               [[0.6, 0.8], [0.0, 0.0], [1 / np.sqrt(5), 2 / np.sqrt(5)]])
    np.testing.assert_allclose(keras.utils.normalize(x, axis=0, order=1), x / np.abs(x).sum(0))
    tensor = keras.utils.normalize(torch.tensor(x[:1], dtype=torch.float32))
    np.testing.assert_allclose(tensor.numpy(), [[0.6, 0.8]], rtol=1e-6)
    a, b, w = np.zeros(2), np.ones(2), np.full(2, 0.5)
    for packed in ((a,), (a, b), (a, b, w)):
        data = keras.utils.pack_x_y_sample_weight(*packed)
        assert keras.utils.unpack_x_y_sample_weight(data)[:len(packed)] == packed
    assert keras.utils.pack_x_y_sample_weight(a) is a
    assert keras.utils.pack_x_y_sample_weight([a, b]) == ([a, b],)
    from bigmodel.keras.preprocessing.sequence import pad_sequences

    assert pad_sequences is keras.utils.pad_sequences
    # keras.preprocessing.image.load_img exists now: a missing file is named
    with pytest.raises(DataFileError, match=r"load_img: cannot read .*x\.png"):
        keras.preprocessing.image.load_img("x.png")


def test_utils_normalize_against_real_keras():
    real = _real_keras()
    x = np.random.default_rng(2).normal(size=(4, 3))
    for kwargs in ({}, {"order": 1}, {"axis": 1, "order": 3}):
        np.testing.assert_allclose(keras.utils.normalize(x, **kwargs),
                                   real.utils.normalize(x, **kwargs), rtol=1e-12)


def _unit_norm(x, axes):
    return x / np.sqrt(np.maximum((x ** 2).sum(axis=axes, keepdims=True), 1e-12))


def test_unit_and_rms_normalization_against_numpy():
    x = np.random.default_rng(3).normal(size=(2, 3, 4)).astype(np.float32)
    x[0, 0] = 0.0  # a zero vector stays zero
    out = keras.layers.UnitNormalization()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(out, _unit_norm(x, -1), rtol=1e-5, atol=1e-7)
    out = keras.layers.UnitNormalization(axis=[1, 2])(torch.tensor(x)).numpy()
    np.testing.assert_allclose(out, _unit_norm(x, (1, 2)), rtol=1e-5)
    layer = keras.layers.RMSNormalization(axis=[1, 2], epsilon=1e-3)
    model = keras.Sequential([keras.Input((3, 4)), layer])
    scale = np.random.default_rng(4).uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    model.set_weights([scale])
    expected = x / np.sqrt((x ** 2).mean(axis=(1, 2), keepdims=True) + 1e-3) * scale
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.count_params() == 12 and [w.shape for w in model.get_weights()] == [(3, 4)]
    again = keras.layers.RMSNormalization.from_config(layer.get_config())
    assert (again.axis, again.epsilon) == ([1, 2], 1e-3)


def test_unit_and_rms_normalization_bad_arguments():
    with pytest.raises(ConfigError, match=r"UnitNormalization.*axis='x'"):
        keras.layers.UnitNormalization(axis="x")
    with pytest.raises(ConfigError, match=r"RMSNormalization.*epsilon=-1"):
        keras.layers.RMSNormalization(epsilon=-1)
    with pytest.raises(ShapeError, match=r"axis 3 is out of bounds"):
        keras.Sequential([keras.Input((3, 4)), keras.layers.RMSNormalization(axis=3)])
    with pytest.raises(ShapeError, match=r"batch axis"):
        keras.layers.UnitNormalization(axis=0)(torch.ones(2, 3))


def test_unit_and_rms_normalization_archives_both_ways_with_real_keras(tmp_path):
    real = _real_keras()
    pytest.importorskip("h5py")
    x = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
    ours = keras.Sequential([keras.Input((3, 4)), keras.layers.UnitNormalization(axis=1),
                             keras.layers.RMSNormalization()])
    ours.set_weights([np.linspace(0.5, 2.0, 4, dtype=np.float32)])
    ours.save(tmp_path / "ours.keras")
    theirs = real.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    back = keras.models.load_model(tmp_path / "theirs.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_accuracy_functions_against_numpy_and_the_accuracy_metric():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]],
                      np.float32)
    labels = np.array([1, 2, 0, 2])
    one_hot = np.eye(3, dtype=np.float32)[labels]
    m = keras.metrics
    assert m.sparse_categorical_accuracy(labels, scores).tolist() == [1, 0, 0, 1]
    assert m.sparse_categorical_accuracy(labels[:, None], scores).tolist() == [1, 0, 0, 1]
    assert m.categorical_accuracy(one_hot, scores).tolist() == [1, 0, 0, 1]
    # label 0 of row 2 ties the 2nd-best score (0.3): a hit for k=2, as in Keras
    assert m.sparse_top_k_categorical_accuracy(labels, scores, k=2).tolist() == [1, 0, 1, 1]
    assert m.top_k_categorical_accuracy(one_hot, scores, k=1).tolist() == [1, 0, 0, 1]
    sorted_ids = np.argsort(-scores, axis=1, kind="stable")
    assert m.sparse_top_k_categorical_accuracy(labels, sorted_ids, k=2,
                                               from_sorted_ids=True).tolist() == [1, 0, 1, 1]
    probs, truth = np.array([[0.2], [0.6], [0.4]]), np.array([0.0, 1.0, 1.0])
    assert m.binary_accuracy(truth, probs).tolist() == [[1], [1], [0]]
    assert m.binary_accuracy(truth, probs, threshold=0.3).tolist() == [[1], [1], [1]]
    metric = m.Accuracy()
    metric.update_state(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]))
    assert metric.name == "accuracy" and float(metric.result()) == 0.75


def test_accuracy_functions_against_real_keras():
    real = _real_keras()
    data = np.random.default_rng(6)
    scores = data.uniform(size=(16, 5)).astype(np.float32)
    scores[0] = 0.5  # all tied
    labels = data.integers(0, 5, 16)
    one_hot = np.eye(5, dtype=np.float32)[labels]
    probs = data.uniform(size=(16, 1)).astype(np.float32)
    truth = (data.uniform(size=(16, 1)) > 0.5).astype(np.float32)
    cases = [("binary_accuracy", (truth, probs), {}),
             ("binary_accuracy", (truth[:, 0], probs), {"threshold": 0.3}),
             ("categorical_accuracy", (one_hot, scores), {}),
             ("sparse_categorical_accuracy", (labels[:, None], scores), {}),
             ("top_k_categorical_accuracy", (one_hot, scores), {"k": 2}),
             ("sparse_top_k_categorical_accuracy", (labels, scores), {"k": 3}),
             ("sparse_top_k_categorical_accuracy", (labels, np.argsort(-scores, axis=1)),
              {"k": 2, "from_sorted_ids": True})]
    for name, args, kwargs in cases:
        ours = getattr(keras.metrics, name)(*args, **kwargs).numpy()
        theirs = np.asarray(getattr(real.metrics, name)(*args, **kwargs))
        assert ours.shape == theirs.shape, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


def _group_norm(x, groups, eps):
    b, *spatial, c = x.shape
    g = x.reshape(b, -1, groups, c // groups)
    mean, var = g.mean(axis=(1, 3), keepdims=True), g.var(axis=(1, 3), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)


def test_group_normalization_against_numpy_and_bad_arguments():
    x = (np.random.default_rng(7).normal(size=(2, 4, 4, 6)) * 3 + 1).astype(np.float32)
    model = keras.Sequential([keras.Input((4, 4, 6)), keras.layers.GroupNormalization(groups=3)])
    gamma, beta = np.linspace(0.5, 1.5, 6, dtype=np.float32), np.linspace(-1, 1, 6, dtype=np.float32)
    model.set_weights([gamma, beta])
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               _group_norm(x.astype(np.float64), 3, 1e-3) * gamma + beta,
                               rtol=1e-4, atol=1e-5)
    channels_first = keras.layers.GroupNormalization(groups=-1, axis=1, center=False, scale=False)
    moved = np.moveaxis(x, -1, 1)
    np.testing.assert_allclose(channels_first(torch.tensor(moved)).numpy(), np.moveaxis(
        _group_norm(x.astype(np.float64), 6, 1e-3), -1, 1), rtol=1e-4, atol=1e-5)
    assert channels_first.groups == 6 and channels_first.count_params() == 0
    with pytest.raises(ConfigError, match=r"groups=0"):
        keras.layers.GroupNormalization(groups=0)
    with pytest.raises(ShapeError, match=r"groups \(4\) must divide the number of channels \(6\)"):
        keras.Sequential([keras.Input((4, 6)), keras.layers.GroupNormalization(groups=4)])


def test_group_normalization_equals_real_keras_both_ways(tmp_path):
    real = _real_keras()
    pytest.importorskip("h5py")
    x = np.random.default_rng(8).normal(size=(2, 5, 8)).astype(np.float32)
    theirs = real.Sequential([real.Input((5, 8)), real.layers.GroupNormalization(groups=4)])
    ours = keras.Sequential([keras.Input((5, 8)), keras.layers.GroupNormalization(groups=4)])
    weights = [np.linspace(0.5, 1.5, 8, dtype=np.float32), np.linspace(-1, 1, 8, dtype=np.float32)]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, atol=2e-6)
    ours.save(tmp_path / "ours.keras")
    np.testing.assert_allclose(real.saving.load_model(tmp_path / "ours.keras").predict(
        x, verbose=0), expected, atol=2e-6)
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "theirs.keras").predict(
        x, verbose=0), expected, atol=2e-6)


def test_category_encoding_modes_against_numpy_and_bad_inputs():
    ids = np.array([[0, 1, 1], [3, 3, 2]])
    eye = np.eye(4, dtype=np.float32)
    layer = keras.layers.CategoryEncoding
    np.testing.assert_array_equal(layer(4, "one_hot")(torch.tensor(ids)).numpy(), eye[ids])
    np.testing.assert_array_equal(layer(4, "one_hot")(torch.tensor(ids[:, :1])).numpy(),
                                  eye[ids[:, 0]])
    counts = np.stack([np.bincount(row, minlength=4) for row in ids]).astype(np.float32)
    np.testing.assert_array_equal(layer(4, "count")(torch.tensor(ids)).numpy(), counts)
    np.testing.assert_array_equal(layer(4)(torch.tensor(ids)).numpy(), (counts > 0) * 1.0)
    weights = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 1.0]], np.float32)
    weighted = np.stack([np.bincount(r, w, minlength=4) for r, w in zip(ids, weights)])
    np.testing.assert_allclose(layer(4, "count")(torch.tensor(ids), count_weights=weights).numpy(),
                               weighted)
    assert layer(4)(torch.tensor([0, 3, 3])).tolist() == [1, 0, 0, 1]  # rank 1: one sample
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, layer(5)(inputs))
    assert model.predict(np.array([[0, 4, 4]]), verbose=0).tolist() == [[1, 0, 0, 0, 1]]
    with pytest.raises(DataError, match=r"ids must lie in \[0, 4\); received ids in \[0, 5\]"):
        layer(4)(torch.tensor([[0, 5]]))
    with pytest.raises(DataError, match="integer ids"):
        layer(4)(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ConfigError, match="num_tokens=None"):
        layer()
    with pytest.raises(ConfigError, match="output_mode='tf_idf'"):
        layer(4, "tf_idf")
    with pytest.raises(NotSupportedError, match="sparse=True"):
        layer(4, sparse=True)
    with pytest.raises(ShapeError, match="rank 1 or 2"):
        layer(4)(torch.zeros(1, 2, 2, dtype=torch.long))


def test_category_encoding_against_real_keras():
    real = _real_keras()
    ids = np.random.default_rng(9).integers(0, 6, (5, 4))
    for mode in ("one_hot", "multi_hot", "count"):
        for data in (ids, ids[:, :1], ids[:, 0]):
            theirs = np.asarray(real.layers.CategoryEncoding(6, mode)(data))
            ours = keras.layers.CategoryEncoding(6, mode)(torch.tensor(data)).numpy()
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{mode} {data.shape}")
    config = keras.layers.CategoryEncoding(6, "count", name="enc").get_config()
    assert real.layers.CategoryEncoding.from_config(config).get_config()["output_mode"] == "count"


def test_alpha_dropout_keeps_selu_statistics_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(200_000)
    layer = keras.layers.AlphaDropout(0.2, seed=1)
    assert torch.equal(layer(x, training=False), x)
    out = layer(x, training=True)
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - 0.2) * (1 + 0.2 * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * 0.2
    dropped = torch.isclose(out, torch.tensor(a * alpha_p + b))
    kept = ~dropped
    torch.testing.assert_close(out[kept], a * x[kept] + b)
    assert abs(dropped.float().mean().item() - 0.2) < 0.01
    assert abs(out.mean().item()) < 0.01 and abs(out.var().item() - 1.0) < 0.02
    shared = keras.layers.AlphaDropout(0.5, noise_shape=(None, 1), seed=2)(
        torch.zeros(4, 6), training=True)
    assert all(len(set(row.tolist())) == 1 for row in shared)  # one mask value per row
    config = keras.layers.AlphaDropout(0.3, noise_shape=(None, 1), seed=4).get_config()
    assert {k: config[k] for k in ("rate", "seed", "noise_shape")} == {
        "rate": 0.3, "seed": 4, "noise_shape": (None, 1)}
    with pytest.raises(ConfigError, match=r"rate must be below 1"):
        keras.layers.AlphaDropout(1.0)
    with pytest.raises(ShapeError, match=r"noise_shape"):
        keras.layers.AlphaDropout(0.5, noise_shape=(None,))(torch.zeros(2, 3), training=True)


def test_pearson_correlation_against_numpy_and_real_keras():
    data = np.random.default_rng(10)
    a = data.normal(size=(6, 5)).astype(np.float32)
    b = (a + data.normal(size=(6, 5))).astype(np.float32)
    expected = [np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(keras.metrics.pearson_correlation(a, b).numpy(), expected,
                               rtol=1e-5)
    metric = keras.metrics.PearsonCorrelation()
    metric.update_state(torch.tensor(a), torch.tensor(b))
    assert metric.name == "pearson_correlation"
    np.testing.assert_allclose(float(metric.result()), np.mean(expected), rtol=1e-5)
    real = _real_keras()
    np.testing.assert_allclose(keras.metrics.pearson_correlation(a, b, axis=0).numpy(),
                               np.asarray(real.metrics.pearson_correlation(a, b, axis=0)),
                               rtol=1e-5)


def test_r2_score_against_numpy_real_keras_and_in_fit():
    data = np.random.default_rng(12)
    y_true = data.normal(size=(20, 3)).astype(np.float32)
    y_pred = (y_true + 0.5 * data.normal(size=(20, 3))).astype(np.float32)
    per_output = 1 - ((y_true - y_pred) ** 2).sum(0) / ((y_true - y_true.mean(0)) ** 2).sum(0)
    expected = {"uniform_average": per_output.mean(), None: per_output,
                "variance_weighted_average": np.average(per_output,
                                                        weights=y_true.var(0))}
    for aggregation, value in expected.items():
        metric = keras.metrics.R2Score(class_aggregation=aggregation)
        metric.update_state(torch.tensor(y_true[:12]), torch.tensor(y_pred[:12]))
        metric.update_state(torch.tensor(y_true[12:]), torch.tensor(y_pred[12:]))
        np.testing.assert_allclose(metric.result().numpy(), value, rtol=1e-4)
    adjusted = keras.metrics.R2Score(num_regressors=3)
    adjusted.update_state(torch.tensor(y_true), torch.tensor(y_pred))
    n = y_true.size
    np.testing.assert_allclose(float(adjusted.result()),
                               1 - (1 - per_output.mean()) * (n - 1) / (n - 3 - 1), rtol=1e-4)
    with pytest.raises(ShapeError, match="R2Score expects 2D inputs"):
        keras.metrics.R2Score().update_state(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))
    with pytest.raises(ConfigError, match="class_aggregation='median'"):
        keras.metrics.R2Score(class_aggregation="median")
    real = _real_keras()
    weights = data.uniform(size=20).astype(np.float32)
    theirs = real.metrics.R2Score(class_aggregation="variance_weighted_average")
    theirs.update_state(y_true, y_pred, sample_weight=weights)
    ours = keras.metrics.R2Score(class_aggregation="variance_weighted_average")
    ours.update_state(torch.tensor(y_true), torch.tensor(y_pred),
                      sample_weight=torch.tensor(weights))
    np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-5)
    assert ours.get_config() == theirs.get_config()
    torch.manual_seed(0)
    x = data.normal(size=(64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse",
                  metrics=[keras.metrics.R2Score()])
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["r2_score"][-1] > 0.9 > history.history["r2_score"][0]
