"""Keras 3 subclassing and Model API: tracking of layers in lists/dicts, call() without training,
add_weight/add_loss, custom train_step/test_step, Metric subclasses, callbacks' hooks, several
outputs. Parameter counts are Keras's formulas; learning runs assert the loss falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError, ConfigError
from bigmodel.keras import layers


def _data(n: int = 128, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w = rng.normal(size=(dim, 1)).astype(np.float32)
    return x, (x @ w).astype(np.float32)


class ResidualUnit(keras.layers.Layer):
    """The book's ResNet unit: sub-layers in lists, an activation function among them."""

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get("relu")
        self.main_layers = [
            layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False),
            layers.BatchNormalization(), self.activation,
            layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization()]
        self.skip_layers = []
        if strides > 1:
            self.skip_layers.append(layers.Conv2D(filters, 1, strides=strides, use_bias=False))
            self.skip_layers.append(layers.BatchNormalization())

    def call(self, inputs):
        z = inputs
        for layer in self.main_layers:
            z = layer(z)
        skip = inputs
        for layer in self.skip_layers:
            skip = layer(skip)
        return self.activation(z + skip)


def _unit_params(cin: int, f: int, strides: int) -> int:
    # Keras: two 3x3 convs without bias, two BN (4 per channel), plus a 1x1 conv + BN on the skip.
    count = 9 * cin * f + 4 * f + 9 * f * f + 4 * f
    return count + (cin * f + 4 * f if strides > 1 else 0)


def test_layers_in_lists_are_tracked_counted_and_trained():
    model = keras.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, padding="same"),
                              ResidualUnit(4), ResidualUnit(8, strides=2),
                              layers.GlobalAveragePooling2D(), layers.Dense(2)])
    expected = (27 * 4 + 4) + _unit_params(4, 4, 1) + _unit_params(4, 8, 2) + (8 * 2 + 2)
    assert model.count_params() == expected
    unit = model.layers[2]  # the strided unit
    assert len(unit.weights) == 3 + 3 * 4  # 3 convs, 3 BN with 4 weights each
    assert len(unit.trainable_weights) == 3 + 3 * 2
    assert len(unit.non_trainable_weights) == 3 * 2
    assert len(model.get_weights()) == len(model.weights)
    before = unit.skip_layers[0].get_weights()[0].copy()
    model.compile("adam", "mse")
    model.fit(np.random.rand(16, 8, 8, 3), np.random.rand(16, 2), epochs=1, verbose=0)
    assert not np.allclose(before, unit.skip_layers[0].get_weights()[0])  # trained


def test_dict_tuple_and_later_appends_are_tracked():
    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.by_name = {"a": layers.Dense(3), "b": layers.Dense(2)}
            self.pair = (layers.Dense(4), [layers.Dense(5)])
            self.later = []

        def call(self, x):
            self.later.append(layers.Dense(1)) if not self.later else None
            y = self.by_name["b"](self.by_name["a"](x))
            return self.later[0](self.pair[1][0](self.pair[0](y)))

    holder = Holder()
    holder(torch.zeros(2, 7))
    # Dense(3) on 7, Dense(2) on 3, Dense(4) on 2, Dense(5) on 4, Dense(1) on 5
    assert holder.count_params() == (7 * 3 + 3) + (3 * 2 + 2) + (2 * 4 + 4) + (4 * 5 + 5) + 6
    holder.later = None  # replacing the list drops its layers
    assert holder.count_params() == (7 * 3 + 3) + (3 * 2 + 2) + (2 * 4 + 4) + (4 * 5 + 5)


def test_call_without_training_and_add_weight_without_name():
    class Linear(keras.layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros")

        def call(self, inputs):  # no training argument, as in the Keras guide
            return inputs @ self.w + self.b

    layer = Linear(3)
    out = layer(torch.ones(2, 4))
    assert out.shape == (2, 3)
    assert [w.shape for w in layer.get_weights()] == [(4, 3), (3,)]
    assert [n for n, _ in layer.named_parameters()] == ["w", "b"]
    np.testing.assert_allclose(out.detach().numpy(), np.ones((2, 4)) @ layer.get_weights()[0],
                               rtol=1e-6)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Linear(2)(inputs))
    assert model.output_shape == (None, 2)
    model.compile("adam", "mse")
    x, y = _data(64, 4)
    y = np.repeat(y, 2, axis=1)
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_subclassed_model_with_wrapped_dense_fits_and_keyword_call():
    class Wrap(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(8, activation="relu")

        def call(self, x, scale=1.0):
            return self.dense(x) * scale

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = Wrap()
            self.head = layers.Dense(1)

        def call(self, inputs):
            return self.head(self.block(inputs=inputs, scale=2.0))

    model = Net()
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x, y = _data()
    history = model.fit(x, y, epochs=5, verbose=0)
    assert model.count_params() == (6 * 8 + 8) + (8 + 1)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_add_loss_and_compile_without_loss():
    class Penalized(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)

        def call(self, x):
            out = self.dense(x)
            self.add_loss(1e-3 * torch.sum(self.dense.kernel ** 2))
            return out

    class Regressor(keras.Model):
        def __init__(self):
            super().__init__()
            self.body = Penalized()

        def call(self, x, y=None):
            out = self.body(x)
            return out

    x, y = _data()
    model = Regressor()
    model(torch.from_numpy(x[:4]))
    assert len(model.losses) == 1  # cleared at each outermost call, not accumulated
    model(torch.from_numpy(x[:4]))
    assert len(model.losses) == 1
    expected = 1e-3 * float((model.body.dense.kernel ** 2).sum())
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-6)
    model.compile("adam", "mse")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert logs["loss"] == pytest.approx(mse + float(model.losses[0]), rel=1e-4)

    class AutoEncoder(keras.Model):  # loss only from add_loss; fit(x) without y
        def __init__(self):
            super().__init__()
            self.code = layers.Dense(3)
            self.out = layers.Dense(6)

        def call(self, x):
            recon = self.out(self.code(x))
            self.add_loss(torch.mean((recon - x) ** 2))
            return recon

    auto = AutoEncoder()
    auto.compile(keras.optimizers.Adam(0.01))
    history = auto.fit(x, epochs=6, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    bare = keras.Sequential([layers.Dense(1)])
    bare.compile("adam")
    with pytest.raises(ConfigError, match="no loss to compute"):
        bare.fit(x, y, verbose=0)


def test_custom_train_step_torch_style_learns():
    class CustomModel(keras.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad if hasattr(v, "value") else v.grad
                         for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    inputs = keras.Input(shape=(6,))
    outputs = layers.Dense(1)(inputs)
    model = CustomModel(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
    x, y = _data()
    history = model.fit(x, y, epochs=5, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    # Keras lists the InputLayer first
    assert [type(lay).__name__ for lay in model.layers] == ["InputLayer", "Dense"]
    assert model.count_params() == 7


def test_custom_test_step_and_metric_subclass():
    class TruePositives(keras.metrics.Metric):
        def __init__(self, name="tp", **kwargs):
            super().__init__(name=name, **kwargs)
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            hits = (y_pred.reshape(-1) > 0.5) & (y_true.reshape(-1) > 0.5)
            self.count.assign_add(hits.float().sum())

        def result(self):
            return self.count

    x = np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = keras.Sequential([layers.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[TruePositives()])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.sum((model.predict(x, verbose=0)[:, 0] > 0.5) & (y[:, 0] > 0.5))
    assert logs["tp"] == expected
    tp = TruePositives()
    tp.update_state(torch.ones(4), torch.tensor([0.9, 0.1, 0.8, 0.7]))
    assert float(tp.result()) == 3.0
    tp.reset_state()
    assert float(tp.result()) == 0.0

    class Scored(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)
            self.seen = keras.metrics.Mean(name="seen")

        def call(self, x):
            return self.dense(x)

        def test_step(self, data):
            x, y = data
            self.seen.update_state(torch.full((len(x),), float(len(x))))
            return {"seen": self.seen.result()}

    scored = Scored()
    scored.compile("sgd", "mse")
    assert scored.evaluate(x, y, batch_size=40, verbose=0) == pytest.approx(
        (40 * 40 + 40 * 40 + 20 * 20) / 100)


def test_legacy_batch_callbacks_and_logs_dicts():
    events: list[tuple] = []

    class Legacy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", logs))

        def on_batch_begin(self, batch, logs=None):
            events.append(("batch_begin", batch))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, sorted(logs)))

    x, y = _data(40)
    model = keras.Sequential([layers.Input((6,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[Legacy()])
    assert events[0] == ("train_begin", {})
    assert [e[1] for e in events if e[0] == "batch_begin"] == [0, 1, 2, 3] * 2
    assert all(e[2] == ["loss"] for e in events if e[0] == "batch_end")

    class OneCycle(keras.callbacks.Callback):  # changes the learning rate every batch
        def on_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate = 0.01 * (batch + 1)

    model.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[OneCycle()])
    assert model.optimizer.learning_rate == pytest.approx(0.04)


def test_evaluate_and_predict_call_their_callbacks():
    seen: list[tuple] = []

    class Recorder(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append(("test_begin", logs))

        def on_test_batch_end(self, batch, logs=None):
            seen.append(("test_batch", batch))

        def on_test_end(self, logs=None):
            seen.append(("test_end", sorted(logs)))

        def on_predict_begin(self, logs=None):
            seen.append(("predict_begin", logs))

        def on_predict_batch_end(self, batch, logs=None):
            seen.append(("predict_batch", batch, tuple(logs["outputs"].shape)))

        def on_predict_end(self, logs=None):
            seen.append(("predict_end", logs))

    x, y = _data(30)
    model = keras.Sequential([layers.Input((6,)), layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    loss, mae = model.evaluate(x, y, batch_size=10, verbose=0, callbacks=[Recorder()])
    assert seen == [("test_begin", {}), ("test_batch", 0), ("test_batch", 1), ("test_batch", 2),
                    ("test_end", ["loss", "mae"])]
    pred = model.predict(x, batch_size=16, verbose=0)
    assert mae == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-5)
    assert loss == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-5)
    seen.clear()
    out = model.predict(x, batch_size=16, verbose=0, callbacks=[Recorder()])
    np.testing.assert_allclose(out, pred, rtol=1e-6)
    assert seen == [("predict_begin", {}), ("predict_batch", 0, (16, 1)),
                    ("predict_batch", 1, (14, 1)), ("predict_end", {})]


def test_multi_output_compiled_loss_and_validation():
    inputs = keras.Input((6,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    first = layers.Dense(1, name="first")(hidden)
    second = layers.Dense(1, name="second")(hidden)
    model = keras.Model(inputs, [first, second])
    x, y = _data(16)
    model.compile("adam", loss={"first": "mse", "second": "mae"},
                  loss_weights={"first": 1.0, "second": 0.5})
    p1, p2 = model(torch.from_numpy(x))
    y_t = torch.from_numpy(y)
    value = model.compute_loss(y={"first": y_t, "second": -y_t}, y_pred=[p1, p2])
    p1, p2 = p1.detach().numpy(), p2.detach().numpy()
    expected = np.mean((p1 - y) ** 2) + 0.5 * np.mean(np.abs(p2 + y))
    assert float(value) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match="not output names"):
        model.compile("adam", loss={"third": "mse"})
    with pytest.raises(ConfigError, match="list of 3 entries"):
        model.compile("adam", loss=["mse"] * 3)


def test_bad_inputs_raise_bigmodel_errors():
    layer = layers.Dense(2)
    with pytest.raises(BigModelError, match="without inputs"):
        layer(units=3)
    with pytest.raises(ConfigError, match="unknown arguments"):
        layer.add_weight(shape=(2,), bogus=1)
    with pytest.raises(BigModelError, match="add_loss"):
        layer.add_loss("not a number")
