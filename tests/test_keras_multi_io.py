"""Several inputs and outputs through keras.Model's fit/evaluate/predict, as in Keras 3: x as a list
or a dict keyed by input names, y and sample_weight as a list or a dict keyed by output names,
per-output losses in History, predict returning a list or a dict. Numbers against NumPy and, where
installed, real Keras 3 (torch backend) with the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.keras import layers
from keras_reference import real_keras as _real_keras


def _build(k, dict_io: bool = False):
    a = k.Input(shape=(4,), name="a")
    b = k.Input(shape=(3,), name="b")
    h = k.layers.Concatenate()([k.layers.Dense(5, activation="relu", name="da")(a),
                                k.layers.Dense(5, name="db")(b)])
    cls = k.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = k.layers.Dense(1, name="reg")(h)
    if dict_io:
        return k.Model({"a": a, "b": b}, {"cls": cls, "reg": reg})
    return k.Model([a, b], [cls, reg])


def _data(n: int = 37, seed: int = 0):
    rng = np.random.default_rng(seed)
    xa = rng.normal(size=(n, 4)).astype(np.float32)
    xb = rng.normal(size=(n, 3)).astype(np.float32)
    # learnable targets: a class and a value that depend on both inputs
    y1 = (xa[:, :3] + xb).argmax(axis=1)
    y2 = (xa[:, :1] - 0.5 * xb[:, 1:2]).astype(np.float32)
    w1 = rng.uniform(size=n).astype(np.float32)
    w2 = rng.uniform(size=n).astype(np.float32)
    return xa, xb, y1, y2, w1, w2


def _compile(model, k):
    model.compile(k.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]],
                  weighted_metrics=[[], ["mse"]])


def test_weighted_losses_against_numpy():
    """evaluate with per-output sample weights: Keras's sum_over_batch_size per output, times the
    loss weights, averaged over batches by sample count."""
    xa, xb, y1, y2, w1, w2 = _data()
    model = _build(keras)
    _compile(model, keras)
    probs, reg = model.predict({"a": xa, "b": xb}, verbose=0)
    ce = -np.log(probs[np.arange(len(y1)), y1])
    se = ((reg - y2) ** 2)[:, 0]
    logs = model.evaluate([xa, xb], {"cls": y1, "reg": y2}, sample_weight={"cls": w1, "reg": w2},
                          batch_size=len(y1), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["cls_loss"], np.mean(ce * w1), rtol=1e-5)
    np.testing.assert_allclose(logs["reg_loss"], np.mean(se * w2), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], np.mean(ce * w1) + 0.5 * np.mean(se * w2),
                               rtol=1e-5)
    # metrics ignore sample_weight; weighted_metrics use each output's weights
    np.testing.assert_allclose(logs["reg_mae"], np.mean(np.abs(reg - y2)), rtol=1e-5)
    np.testing.assert_allclose(logs["reg_mse"], np.sum(se * w2) / np.sum(w2), rtol=1e-5)
    np.testing.assert_allclose(logs["cls_accuracy"], np.mean(probs.argmax(1) == y1))
    values = model.evaluate([xa, xb], [y1, y2], sample_weight=[w1, w2], batch_size=len(y1),
                            verbose=0)
    # Keras's order: loss, per-output losses, then the metrics by name
    np.testing.assert_allclose(values, [logs[k] for k in ("loss", "cls_loss", "reg_loss",
                                                          "cls_accuracy", "reg_mae", "reg_mse")],
                               rtol=1e-6)


def test_fit_list_and_dict_forms_agree_and_learn():
    xa, xb, y1, y2, w1, w2 = _data(n=64)
    histories = []
    weights = None
    for form in ("list", "dict"):
        model = _build(keras, dict_io=form == "dict")
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        _compile(model, keras)
        if form == "list":
            hist = model.fit([xa, xb], [y1, y2], sample_weight=[w1, w2], batch_size=16,
                             epochs=10, shuffle=False, verbose=0)
        else:
            hist = model.fit({"b": xb, "a": xa}, {"reg": y2, "cls": y1},
                             sample_weight={"cls": w1, "reg": w2}, batch_size=16, epochs=10,
                             shuffle=False, verbose=0)
        histories.append(hist.history)
    for key in ("loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    assert histories[0]["loss"][-1] < 0.6 * histories[0]["loss"][0]


def test_predict_structure_follows_outputs():
    xa, xb, *_ = _data(n=10)
    listed = _build(keras)
    out = listed.predict([xa, xb], verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(10, 3), (10, 1)]
    keyed = _build(keras, dict_io=True)
    keyed.set_weights(listed.get_weights())
    out2 = keyed.predict({"a": xa, "b": xb}, batch_size=4, verbose=0)
    assert isinstance(out2, dict) and set(out2) == {"cls", "reg"}
    np.testing.assert_allclose(out2["cls"], out[0], rtol=1e-6)
    np.testing.assert_allclose(out2["reg"], out[1], rtol=1e-6)
    direct = keyed({"a": xa, "b": xb})
    np.testing.assert_allclose(direct["reg"].detach().numpy(), out[1], rtol=1e-6)


def test_two_inputs_single_output_with_dict_x_sample_weight_and_validation():
    xa, xb, _, y2, w1, _ = _data(n=60)
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(3,), name="b")
    out = layers.Dense(1)(layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    hist = model.fit({"a": xa, "b": xb}, y2, sample_weight=w1, validation_split=0.25,
                     batch_size=8, epochs=6, verbose=0)
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    pred = model.predict([xa, xb], verbose=0)
    assert pred.shape == (60, 1)
    val = model.evaluate({"a": xa[45:], "b": xb[45:]}, y2[45:], verbose=0, return_dict=True)
    np.testing.assert_allclose(val["loss"], np.mean((pred[45:] - y2[45:]) ** 2), rtol=1e-5)
    # the validation part keeps its sample weights, as in Keras
    weighted = model.evaluate({"a": xa[45:], "b": xb[45:]}, y2[45:], sample_weight=w1[45:],
                              verbose=0, return_dict=True)
    np.testing.assert_allclose(hist.history["val_loss"][-1], weighted["loss"], rtol=1e-5)
    np.testing.assert_allclose(weighted["loss"],
                               np.mean((pred[45:] - y2[45:])[:, 0] ** 2 * w1[45:]), rtol=1e-5)
    hist = model.fit([xa, xb], y2, validation_data=([xa[:10], xb[:10]], y2[:10]), epochs=1,
                     verbose=0)
    assert "val_mae" in hist.history


def test_bad_structured_inputs_name_the_problem():
    xa, xb, y1, y2, *_ = _data(n=12)
    model = _build(keras)
    _compile(model, keras)
    with pytest.raises(ShapeError, match=r"expects 2 inputs \['a', 'b'\]; received 1"):
        model.predict([xa], verbose=0)
    with pytest.raises(DataError, match=r"keys \['c'\] that are not input names"):
        model.predict({"a": xa, "c": xb}, verbose=0)
    with pytest.raises(DataError, match="missing data for input 'b'"):
        model.fit({"a": xa}, [y1, y2], verbose=0)
    with pytest.raises(DataError, match=r"x\['b'\] has 6"):
        model.predict([xa, xb[:6]], verbose=0)
    with pytest.raises(DataError, match=r"y\['reg'\] has 5"):
        model.fit([xa, xb], [y1, y2[:5]], verbose=0)
    with pytest.raises(DataError, match=r"keys \['out'\] that are not output names"):
        model.fit([xa, xb], {"cls": y1, "out": y2}, verbose=0)
    with pytest.raises(ShapeError, match="has 2 outputs"):
        model.evaluate([xa, xb], [y1], verbose=0)
    with pytest.raises(DataError, match=r"sample_weight\['reg'\] has 3"):
        model.fit([xa, xb], [y1, y2], sample_weight=[np.ones(12), np.ones(3)], verbose=0)


def test_matches_real_keras_with_the_same_weights():
    real = _real_keras()
    xa, xb, y1, y2, w1, w2 = _data()
    ours, theirs = _build(keras), _build(real)
    ours.set_weights(theirs.get_weights())
    _compile(ours, keras)
    _compile(theirs, real)
    for model in (ours, theirs):  # both must give the same numbers; run each the same way
        model.results = [
            model.evaluate({"a": xa, "b": xb}, [y1, y2], batch_size=8, verbose=0,
                           return_dict=True),
            model.evaluate([xa, xb], [y1, y2], sample_weight=[w1, w2], batch_size=8, verbose=0),
            model.fit([xa, xb], [y1, y2], sample_weight=[w1, w2], batch_size=8, epochs=2,
                      shuffle=False, validation_split=0.2, verbose=0).history,
            model.predict([xa, xb], verbose=0),
        ]
    ours_eval, theirs_eval = ours.results[0], theirs.results[0]
    assert set(ours_eval) == set(theirs_eval)
    for key in theirs_eval:
        np.testing.assert_allclose(ours_eval[key], float(theirs_eval[key]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.results[1], theirs.results[1], rtol=1e-5, atol=1e-6)
    assert set(ours.results[2]) == set(theirs.results[2])
    for key, values in theirs.results[2].items():
        np.testing.assert_allclose(ours.results[2][key], values, rtol=1e-4, atol=1e-5)
    for mine, real_out in zip(ours.results[3], theirs.results[3]):
        np.testing.assert_allclose(mine, real_out, rtol=1e-4, atol=1e-5)


def test_generators_and_datasets_of_structured_batches():
    """Batches ([xa, xb], y), ({"a": .., "b": ..}, y) and ([xa, xb], [y1, y2]) from a generator
    or a Dataset train, validate and evaluate like the same arrays."""
    import torch

    xa, xb, y1, y2, *_ = _data(n=40)
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(3,), name="b")
    single = keras.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b])))
    single.compile(keras.optimizers.SGD(0.05), "mse")
    by_dict = lambda: (({"a": xa[i:i + 8], "b": xb[i:i + 8]}, y2[i:i + 8])  # noqa: E731
                       for i in range(0, 40, 8))
    expected = single.evaluate([xa, xb], y2, batch_size=8, verbose=0)
    assert single.evaluate(by_dict(), verbose=0) == pytest.approx(expected, rel=1e-6)
    first = single.fit(by_dict(), epochs=1, verbose=0).history["loss"][0]
    assert single.fit(by_dict(), epochs=1, verbose=0).history["loss"][0] < first
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(xa), torch.from_numpy(xb),
                                             torch.from_numpy(y2))

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            pa, pb, target = dataset[i]
            return [pa, pb], target

    assert "loss" in single.fit(Pairs(), batch_size=8, epochs=1, verbose=0).history
    model = _build(keras)
    _compile(model, keras)
    pairs = lambda: (([xa[i:i + 8], xb[i:i + 8]], [y1[i:i + 8], y2[i:i + 8]])  # noqa: E731
                     for i in range(0, 40, 8))
    hist = model.fit(pairs(), epochs=1, validation_data=pairs(), verbose=0).history
    assert {"cls_loss", "reg_loss", "val_cls_loss", "val_reg_mae"} <= set(hist)
    arrays = model.evaluate([xa, xb], [y1, y2], batch_size=8, verbose=0, return_dict=True)
    batches = model.evaluate(pairs(), verbose=0, return_dict=True)
    assert batches == pytest.approx(arrays, rel=1e-6)
    np.testing.assert_allclose(hist["val_loss"][-1], arrays["loss"], rtol=1e-6)


def test_weighted_metrics_of_one_output_use_sample_weight():
    """Only weighted_metrics see sample_weight (Keras 3), also for a single-output model."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.normal(size=(30, 1)).astype(np.float32)
    w = rng.uniform(size=30).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"], weighted_metrics=["mse"])
    logs = model.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0, return_dict=True)
    err = (model.predict(x, verbose=0) - y)[:, 0]
    np.testing.assert_allclose(logs["mse"], np.sum(err ** 2 * w) / np.sum(w), rtol=1e-5)
    np.testing.assert_allclose(logs["mae"], np.mean(np.abs(err)), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], np.mean(err ** 2 * w), rtol=1e-5)
    hist = model.fit(x, y, sample_weight=w, epochs=3, verbose=0, validation_data=(x, y, w))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    with pytest.raises(ConfigError, match="class_weight"):
        model.fit(x, y, sample_weight=w, class_weight={0: 1.0}, verbose=0)


def test_weighted_metrics_match_real_keras():
    real = _real_keras()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.normal(size=(30, 1)).astype(np.float32)
    w = rng.uniform(size=30).astype(np.float32)
    theirs = real.Sequential([real.Input((4,)), real.layers.Dense(1)])
    ours = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    ours.set_weights(theirs.get_weights())
    results = []
    for model, k in ((ours, keras), (theirs, real)):
        model.compile(k.optimizers.SGD(0.05), "mse", metrics=["mae"], weighted_metrics=["mse"])
        results.append(model.fit(x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False,
                                 validation_data=(x, y, w), verbose=0).history)
    assert set(results[0]) == set(results[1])
    for key, values in results[1].items():
        np.testing.assert_allclose(results[0][key], values, rtol=1e-5)
