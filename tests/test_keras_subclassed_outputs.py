"""A subclassed model whose ``call`` returns several outputs, compiled before its first call
(issue 15, ``geron_wide_and_deep.py``): the compiled losses, ``loss_weights`` and metrics are
resolved against the outputs of the first call, as Keras 3's ``CompileLoss`` / ``CompileMetrics``
build then. Names and ``evaluate``'s order are Keras's: an unnamed output's loss is logged under
the loss's name (``mse_loss``), its metrics unprefixed, a repeated name gets ``_1``; a dict of
outputs uses its keys. Numbers against NumPy and, where installed, real Keras 3 (torch backend)
given the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from keras_reference import real_keras as _real_keras

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model_class(k, dict_outputs: bool = False):
    class TwoHeads(k.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = k.layers.Dense(4, activation="relu")
            self.main = k.layers.Dense(1)
            self.aux = k.layers.Dense(2 if dict_outputs else 1)

        def call(self, inputs):
            hidden = self.hidden(inputs)
            if dict_outputs:
                return {"reg": self.main(hidden), "cls": self.aux(hidden)}
            return self.main(hidden), self.aux(hidden)

    return TwoHeads()


def _data(n: int = 20):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    y1 = (x[:, 0] - x[:, 1]).astype("float32")  # (n,) against outputs of shape (n, 1)
    y2 = (0.5 * x[:, 2:3]).astype("float32")
    return x, y1, y2


def _weights(model):
    return [np.linspace(-0.5, 0.5, w.size, dtype="float32").reshape(w.shape) * (i + 1)
            for i, w in enumerate(model.get_weights())]


def test_compiled_before_the_first_call_losses_weights_and_metrics_against_numpy():
    x, y1, y2 = _data()
    model = _model_class(keras)
    # compile knows nothing of the outputs yet: two losses and two weights are accepted
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=("mse", "mae"),
                  loss_weights=[0.9, 0.1], metrics=["mae", "mse"])
    model(x[:1])
    model.set_weights(_weights(model))
    p1, p2 = (out.detach().numpy() for out in model(x))
    mse = float(np.mean((p1[:, 0] - y1) ** 2))
    mae = float(np.mean(np.abs(p2 - y2)))
    logs = model.evaluate(x, (y1, y2), batch_size=20, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mse_loss", "mae_loss", "mae", "mse"}
    assert logs["loss"] == pytest.approx(0.9 * mse + 0.1 * mae, rel=1e-5)
    assert logs["mse_loss"] == pytest.approx(mse, rel=1e-5)
    assert logs["mae_loss"] == pytest.approx(mae, rel=1e-5)
    # Keras: a flat list of one metric per output gives each output its own
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(p1[:, 0] - y1))), rel=1e-5)
    assert logs["mse"] == pytest.approx(float(np.mean((p2 - y2) ** 2)), rel=1e-5)
    # Keras's order: loss, the compiled metrics by name, the per-output losses
    assert model.evaluate(x, (y1, y2), batch_size=20, verbose=0) == pytest.approx(
        [logs["loss"], logs["mae"], logs["mse"], logs["mse_loss"], logs["mae_loss"]], rel=1e-6)
    predicted = model.predict(x, verbose=0)
    assert isinstance(predicted, tuple)  # the structure call returned, as Keras's predict
    first, second = predicted
    np.testing.assert_allclose(first, p1, rtol=1e-6)
    np.testing.assert_allclose(second, p2, rtol=1e-6)


def test_fit_without_a_call_first_learns_both_outputs():
    """fit learns the number of outputs from its first batch; a single loss applies to both."""
    x, y1, y2 = _data(64)
    keras.utils.set_random_seed(0)
    model = _model_class(keras)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae", "mae"])
    history = model.fit(x, [y1, y2], epochs=15, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "mse_loss", "mae", "mae_1"}
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    p1, p2 = model.predict(x, verbose=0)
    mse1, mse2 = float(np.mean((p1[:, 0] - y1) ** 2)), float(np.mean((p2 - y2) ** 2))
    logs = model.evaluate(x, [y1, y2], batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(mse1 + mse2, rel=1e-5)
    assert logs["mse_loss"] == pytest.approx(mse2, rel=1e-5)  # one name: the last tracker's value


@pytest.mark.parametrize("case", ["tuple", "list_nested_metrics", "repeated_names", "dict"])
def test_matches_real_keras_with_the_same_weights(case):
    real = _real_keras()
    x, y1, y2 = _data()
    dict_outputs = case == "dict"
    y = (y1, y2)
    compile_args = {
        "tuple": dict(loss=("mse", "mae"), loss_weights=[0.9, 0.1], metrics=["mae", "mse"]),
        "list_nested_metrics": dict(loss=["mse", "mae"],
                                    metrics=[["mae"], ["mse", "RootMeanSquaredError"]]),
        "repeated_names": dict(loss=("mse", "mse"), loss_weights=[0.9, 0.1],
                               metrics=["RootMeanSquaredError", "RootMeanSquaredError"]),
    }.get(case)
    results = []
    for k in (keras, real):
        model = _model_class(k, dict_outputs)
        if dict_outputs:
            y = {"reg": y1, "cls": (y2[:, 0] > 0).astype("int64")}
            compile_args = dict(
                loss={"reg": "mse", "cls": k.losses.SparseCategoricalCrossentropy(from_logits=True)},
                loss_weights={"reg": 0.5, "cls": 2.0}, metrics={"reg": ["mae"], "cls": ["accuracy"]})
        model.compile(optimizer=k.optimizers.SGD(0.05), **compile_args)
        model(x[:1])
        model.set_weights(_weights(model))
        results.append([
            model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True),
            model.evaluate(x, y, batch_size=8, verbose=0),
            model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history,
        ])
    (ours_dict, ours_list, ours_history), (theirs_dict, theirs_list, theirs_history) = results
    assert set(ours_dict) == set(theirs_dict)
    for key, value in theirs_dict.items():
        assert ours_dict[key] == pytest.approx(float(value), rel=1e-5, abs=1e-6), key
    np.testing.assert_allclose(ours_list, theirs_list, rtol=1e-5, atol=1e-6)
    assert set(ours_history) == set(theirs_history)
    for key, values in theirs_history.items():
        np.testing.assert_allclose(ours_history[key], values, rtol=1e-5, atol=1e-6, err_msg=key)


def test_functional_flat_metric_list_is_one_per_output_like_keras():
    """A flat list with one metric per output gives output i the i-th metric (Keras 3); it was
    every metric on every output."""
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(1, name="o1")(hidden),
                                 keras.layers.Dense(1, name="o2")(hidden)])
    model.compile("sgd", "mse", metrics=["mae", "mse"])
    x, y1, y2 = _data()
    logs = model.evaluate(x, [y1, y2[:, 0]], verbose=0, return_dict=True)
    assert set(logs) == {"loss", "o1_loss", "o2_loss", "o1_mae", "o2_mse"}
    p1, p2 = model.predict(x, verbose=0)
    assert logs["o1_mae"] == pytest.approx(float(np.mean(np.abs(p1[:, 0] - y1))), rel=1e-5)
    assert logs["o2_mse"] == pytest.approx(logs["o2_loss"], rel=1e-6)


def test_bad_compile_arguments_are_refused_at_the_first_call():
    x, y1, y2 = _data()
    model = _model_class(keras)
    model.compile("sgd", loss=["mse", "mae", "mse"])
    with pytest.raises(ConfigError, match="loss is a list of 3 entries for a model with 2 outputs"):
        model.fit(x, (y1, y2), verbose=0)
    model = _model_class(keras)
    model.compile("sgd", loss="mse", loss_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="loss_weights is a list of 3 entries"):
        model.evaluate(x, (y1, y2), verbose=0)
    model = _model_class(keras)
    model.compile("sgd", loss={"main": "mse", "aux": "mse"})
    with pytest.raises(ConfigError, match=r"keys \['aux', 'main'\] that are not output names"):
        model.fit(x, (y1, y2), verbose=0)
    model = _model_class(keras)
    model.compile("sgd", loss="mse")
    with pytest.raises(ShapeError, match="has 2 outputs"):
        model.fit(x, y1, verbose=0)


def test_single_output_subclassed_model_refuses_a_list_of_loss_weights():
    class OneHead(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs)

    x, y1, _ = _data()
    model = OneHead()
    model.compile("sgd", loss="mse", loss_weights=[0.9, 0.1])  # its outputs are not known yet
    with pytest.raises(ConfigError, match=r"loss_weights must be a number .* \[0.9, 0.1\]"):
        model.fit(x, y1, verbose=0)
    model = OneHead()
    model(x[:1])
    model.compile("sgd", loss="mse")  # after a call it trains on the engine's fast path
    history = model.fit(x, y1, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
