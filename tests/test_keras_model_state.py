"""What a model carries besides its weights, as in Keras 3: ``model.layers`` (InputLayers first in
a functional model, none in a Sequential one), also after reloading either file format; the compile
settings saved with the model and restored on load (both formats, both directions with real Keras);
``model.metrics`` reflecting the last fit/evaluate; ``summary()`` of a subclassed model."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.keras import layers
from keras_reference import real_keras as _real_keras


def _functional(k):
    inputs = k.Input((4,), name="inp")
    hidden = k.layers.Dropout(0.1, name="drop")(k.layers.Dense(3, name="d1")(inputs))
    return k.Model(inputs, k.layers.Dense(2, name="d2")(hidden))


def _sequential(k):
    return k.Sequential([k.Input((4,)), k.layers.Dense(3, name="d1"), k.layers.Dense(2, name="d2")])


def _kinds(model):
    return [(type(lay).__name__, lay.name) for lay in model.layers]


@pytest.mark.parametrize("suffix", [".keras", ".safetensors"])
def test_layers_listed_as_keras_lists_them_also_after_reload(tmp_path, suffix):
    model = _functional(keras)
    expected = [("InputLayer", "inp"), ("Dense", "d1"), ("Dropout", "drop"), ("Dense", "d2")]
    assert _kinds(model) == expected
    assert model.get_layer("inp") is model.layers[0]
    model.save(tmp_path / f"f{suffix}")
    assert _kinds(keras.models.load_model(tmp_path / f"f{suffix}")) == expected
    stack = _sequential(keras)
    assert _kinds(stack) == [("Dense", "d1"), ("Dense", "d2")]  # no InputLayer in a Sequential
    stack.save(tmp_path / f"s{suffix}")
    assert _kinds(keras.models.load_model(tmp_path / f"s{suffix}")) == _kinds(stack)
    # weights and outputs unaffected by the listing
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    again = keras.models.load_model(tmp_path / f"f{suffix}")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_layer_listing_equals_real_keras_both_ways(tmp_path):
    real = _real_keras()
    for build in (_functional, _sequential):
        ours, theirs = build(keras), build(real)
        assert [type(lay).__name__ for lay in ours.layers] == \
            [type(lay).__name__ for lay in theirs.layers]
        ours.save(tmp_path / "ours.keras")
        theirs.save(tmp_path / "theirs.keras")
        assert [type(lay).__name__ for lay in real.models.load_model(tmp_path / "ours.keras")
                .layers] == [type(lay).__name__ for lay in theirs.layers]
        assert [type(lay).__name__ for lay in keras.models.load_model(tmp_path / "theirs.keras")
                .layers] == [type(lay).__name__ for lay in theirs.layers]


def _two_outputs(k):
    inputs = k.Input((4,), name="a")
    cls = k.layers.Dense(3, activation="softmax", name="cls")(inputs)
    reg = k.layers.Dense(1, name="reg")(inputs)
    return k.Model(inputs, [cls, reg])


def _compile_two(model, k):
    model.compile(k.optimizers.Adam(0.003),
                  loss=["sparse_categorical_crossentropy", k.losses.Huber(delta=2.0)],
                  loss_weights=[1.0, 0.3],
                  metrics=[["accuracy", k.metrics.SparseTopKCategoricalAccuracy(k=2)], ["mae"]],
                  weighted_metrics=[[], ["mse"]])


def _two_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    return x, [rng.integers(0, 3, size=16), rng.normal(size=(16, 1)).astype(np.float32)]


@pytest.mark.parametrize("suffix", [".keras", ".safetensors"])
def test_reloaded_model_keeps_its_compile_settings(tmp_path, suffix):
    model = _two_outputs(keras)
    _compile_two(model, keras)
    x, y = _two_data()
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / f"m{suffix}")
    loaded = keras.models.load_model(tmp_path / f"m{suffix}")
    assert loaded.compiled
    assert type(loaded.optimizer).__name__ == "Adam"
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.003)
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(after) == set(before) == {"loss", "cls_loss", "reg_loss", "cls_accuracy",
                                         "cls_sparse_top_k_categorical_accuracy", "reg_mae",
                                         "reg_mse"}
    for key, value in before.items():  # Huber's delta and the loss weights came back too
        assert after[key] == pytest.approx(value, rel=1e-6)
    assert not keras.models.load_model(tmp_path / f"m{suffix}", compile=False).compiled


def test_compile_settings_cross_between_real_keras_and_here(tmp_path):
    real = _real_keras()
    x, y = _two_data()
    theirs = _two_outputs(real)
    _compile_two(theirs, real)
    theirs.save(tmp_path / "theirs.keras")
    loaded = keras.models.load_model(tmp_path / "theirs.keras")
    # what real Keras rebuilds from its own file (Keras 3.15 writes no Huber delta: 1.0 again)
    expected = real.models.load_model(tmp_path / "theirs.keras").evaluate(
        x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-5, abs=1e-6)
    ours = _two_outputs(keras)
    _compile_two(ours, keras)
    ours.save(tmp_path / "ours.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "ours.keras").read("config.json"))
    assert config["compile_config"]["loss_weights"] == [1.0, 0.3]
    back = real.models.load_model(tmp_path / "ours.keras")
    expected = ours.evaluate(x, y, verbose=0, return_dict=True)
    got = back.evaluate(x, y, verbose=0, return_dict=True)
    for key, value in expected.items():
        assert float(got[key]) == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_unknown_class_in_compile_config_loads_uncompiled_with_a_warning(tmp_path):
    model = _functional(keras)
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["compile_config"]["loss"] = {"module": "mine", "class_name": "NoSuchLoss",
                                        "config": {}, "registered_name": None}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.warns(UserWarning, match="NoSuchLoss"):
        loaded = keras.models.load_model(tmp_path / "bad.keras")
    assert not loaded.compiled and len(loaded.layers) == 4


def test_model_metrics_reflect_the_last_fit_and_evaluate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])

    def current():
        tracked = {m.name: m.result() for m in model.metrics}
        return float(tracked["loss"]), tracked["compile_metrics"]["accuracy"]

    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0)
    loss, accuracy = current()  # the last values computed: the validation pass
    assert loss == pytest.approx(history.history["val_loss"][-1])
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1])
    values = model.evaluate(x[:20], y[:20], verbose=0)
    assert current() == pytest.approx(values)
    probs = model.predict(x[:20], verbose=0)
    assert values[1] == pytest.approx(np.mean(probs.argmax(1) == y[:20]))


class _Residual(keras.Model):
    """Layers not called in the order they are held (so chaining their shapes would be wrong)."""

    def __init__(self):
        super().__init__()
        self.head = layers.Dense(2)
        self.body = layers.Dense(8)
        self.unused = layers.Dense(5)

    def call(self, x):
        return self.head(self.body(x) + x)


def test_summary_of_a_subclassed_model_shows_unknown_shapes_as_question_marks():
    model = _Residual()
    lines = []
    model.summary(print_fn=lines.append)
    rows = [line for line in lines[0].splitlines() if "(Dense)" in line]
    assert len(rows) == 3 and all("?" in row and "0 (unbuilt)" in row for row in rows)
    model(np.zeros((3, 8), np.float32))
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    rows = {row.split("(Dense)")[0].strip(" │"): row for row in text.splitlines()
            if "(Dense)" in row}
    assert "(None, 2)" in rows[model.head.name] and "18" in rows[model.head.name]
    assert "(None, 8)" in rows[model.body.name] and "72" in rows[model.body.name]
    assert "?" in rows[model.unused.name] and "0 (unbuilt)" in rows[model.unused.name]
    assert "Total params: 90" in text
    functional = []
    _functional(keras).summary(print_fn=functional.append)
    assert "inp (InputLayer)" in functional[0] and "(None, 4)" in functional[0]


def _branches(k):
    """Two inputs entering at different depths and branches of unequal length."""
    a, b = k.Input((3,), name="a"), k.Input((2,), name="b")
    h = k.layers.Dense(4, name="h2")(k.layers.Dense(4, name="h1")(a))
    joined = k.layers.Concatenate(name="cat")([h, k.layers.Dense(3, name="bb")(b)])
    return k.Model([a, b], [k.layers.Dense(1, name="o1")(joined),
                            k.layers.Dense(2, name="o2")(h)])


def _unequal_add(k):
    """The short branch first in the Add: Keras lists (and orders weights of) the long one first."""
    a = k.Input((3,), name="a")
    short = k.layers.Dense(2, name="x")(a)
    long = k.layers.Dense(2, name="z")(k.layers.Dense(4, name="y")(a))
    return k.Model(a, k.layers.Add(name="add")([short, long]))


def test_weights_follow_keras_layer_order():
    model = _unequal_add(keras)
    assert [lay.name for lay in model.layers] == ["a", "y", "x", "z", "add"]
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4,), (3, 2), (2,), (4, 2), (2,)]


def test_branchy_model_lists_layers_and_weights_in_keras_order(tmp_path):
    model = _branches(keras)
    order = ["a", "h1", "b", "h2", "bb", "cat", "o1", "o2"]  # Keras: by depth, then first seen
    assert [lay.name for lay in model.layers] == order
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4,), (4, 4), (4,), (2, 3), (3,),
                                                      (7, 1), (1,), (4, 2), (2,)]
    model.save(tmp_path / "m.safetensors")
    again = keras.models.load_model(tmp_path / "m.safetensors")
    assert [lay.name for lay in again.layers] == order
    for mine, theirs in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_branchy_models_take_real_keras_weights_in_order():
    real = _real_keras()
    rng = np.random.default_rng(2)
    x = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)]
    for build, data in ((_branches, x), (_unequal_add, x[0])):
        ours, theirs = build(keras), build(real)
        assert [lay.name for lay in ours.layers] == [lay.name for lay in theirs.layers]
        ours.set_weights(theirs.get_weights())
        mine, real_out = ours.predict(data, verbose=0), theirs.predict(data, verbose=0)
        for got, expected in zip(mine if isinstance(mine, list) else [mine],
                                 real_out if isinstance(real_out, list) else [real_out]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
