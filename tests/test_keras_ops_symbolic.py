"""keras.ops and Python operators on symbolic KerasTensors: graph nodes with Keras shapes and dtypes,
functional models that match the eager computation, train, and survive a config round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import NotSupportedError
from bigmodel.keras import layers, ops
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor


def _model_and_eager(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    dense = layers.Dense(8)
    head = layers.Dense(1)
    h = dense(inputs)
    h = ops.relu(h) * 2.0 + ops.mean(h, axis=-1, keepdims=True)
    h = ops.concatenate([h, ops.square(inputs[:, :2])], axis=-1)
    out = ops.squeeze(head(h), axis=-1)
    model = keras.Model(inputs, out)

    def eager(x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x)
        with torch.no_grad():
            z = dense(xt)
            z = torch.relu(z) * 2.0 + z.mean(-1, keepdim=True)
            z = torch.cat([z, xt[:, :2] ** 2], dim=-1)
            return head(z).squeeze(-1).numpy()

    return model, eager


def test_symbolic_shapes_and_dtypes():
    x = keras.Input((3, 4))
    assert ops.sum(x, axis=1).shape == (None, 4)
    assert ops.reshape(x, (-1, 12)).shape == (None, 12)
    assert ops.transpose(x, (0, 2, 1)).shape == (None, 4, 3)
    assert ops.argmax(x, axis=-1).dtype == "int32"
    assert ops.cast(x, "int32").dtype == "int32"
    assert (x > 0).dtype == "bool"
    assert ops.matmul(x, np.ones((4, 5), np.float32)).shape == (None, 3, 5)
    assert ops.one_hot(ops.argmax(x, axis=-1), 7).shape == (None, 3, 7)
    assert ops.shape(x) == (None, 3, 4)
    first, second = ops.split(x, [1], axis=1)
    assert first.shape == (None, 1, 4) and second.shape == (None, 2, 4)
    values, indices = ops.top_k(x, 2)
    assert values.shape == (None, 3, 2) and indices.dtype == "int64"
    assert ops.image.resize(keras.Input((8, 8, 3)), (4, 4)).shape == (None, 4, 4, 3)
    assert isinstance(ops.convert_to_tensor(x), KerasTensor)


def test_operators_on_keras_tensors():
    x = keras.Input((4,))
    y = keras.Input((4,))
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    outputs = [x + y, x * 2, 1 - x, -x, x / 2, 2 ** x, x ** 2, x[:, 0], x[:, 1:3], x @ w,
               np.ones(4, np.float32) + x, torch.ones(4) * x, abs(x), x // 2, x % 3,
               (x > y) & (x < 1), ~(x >= 0), x != y]
    for out in outputs:
        assert isinstance(out, KerasTensor)
    xv = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    yv = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)

    def run(output):
        with torch.no_grad():
            return keras.Model([x, y], output)([torch.as_tensor(xv), torch.as_tensor(yv)]).numpy()

    np.testing.assert_allclose(run(outputs[9]), xv @ w, rtol=1e-5)
    for index, reference in [(0, xv + yv), (2, 1 - xv), (5, 2 ** xv), (7, xv[:, 0]),
                             (8, xv[:, 1:3]), (11, xv * 1.0), (12, np.abs(xv)),
                             (14, np.mod(xv, 3)), (15, (xv > yv) & (xv < 1)),
                             (16, ~(xv >= 0))]:
        got = run(outputs[index])
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64),
                                   np.asarray(reference, dtype=np.float64), rtol=1e-5,
                                   err_msg=str(index))
    assert x == x and (x is not y)  # identity equality: usable in lists and as dict keys
    assert len({x, y}) == 2


def test_symbolic_tensor_has_no_values():
    x = keras.Input((2,))
    with pytest.raises(TypeError, match="symbolic"):
        bool(x > 0)
    with pytest.raises(TypeError, match="symbolic"):
        list(x)
    with pytest.raises(TypeError):
        ops.convert_to_numpy(x)
    with pytest.raises(NotSupportedError):
        ops.cond(x, lambda: 1, lambda: 2)


def test_functional_model_with_ops_matches_eager_and_lists_only_layers():
    model, eager = _model_and_eager()
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), eager(x), rtol=1e-5, atol=1e-6)
    names = [type(layer).__name__ for layer in model.layers]
    assert [n for n in names if n != "InputLayer"] == ["Dense", "Dense"]  # no op nodes
    assert model.count_params() == 6 * 8 + 8 + 10 * 1 + 1


def test_functional_model_with_ops_trains():
    model, _ = _model_and_eager(seed=1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((128, 6)).astype(np.float32)
    y = (x[:, 0] * 2 - x[:, 1] ** 2 + 0.5 * x[:, 2]).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_config_round_trip_rebuilds_the_op_nodes():
    model, _ = _model_and_eager(seed=2)
    config = json.loads(json.dumps(model.get_config()))
    ops_in_config = [spec["config"]["op"] for spec in config["layers"]
                     if spec["class_name"] == "OpLayer"]
    assert {"relu", "multiply", "mean", "add", "get_item", "square", "concatenate",
            "squeeze"} <= set(ops_in_config)
    rebuilt = Functional.from_config(config)
    rebuilt.set_weights(model.get_weights())
    x = np.random.default_rng(4).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_multi_output_op_in_a_model():
    inputs = keras.Input((5,))
    values, indices = ops.top_k(inputs, 2)
    model = keras.Model(inputs, values + ops.cast(indices, "float32"))
    x = np.random.default_rng(5).standard_normal((4, 5)).astype(np.float32)
    order = np.argsort(-x, axis=1)[:, :2]
    expected = np.take_along_axis(x, order, 1) + order
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)


def test_op_layer_refuses_an_unknown_op_name():
    from bigmodel.errors import UnknownNameError
    from bigmodel.keras.ops import OpLayer

    with pytest.raises(UnknownNameError, match="no_such_op"):
        OpLayer("no_such_op")


def test_reshape_with_symbolic_batch_and_submodule_paths():
    x = keras.Input((3, 4))
    flat = ops.reshape(x, (ops.shape(x)[0], 12))
    assert flat.shape == (None, 12)
    model = keras.Model(x, flat)
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(model.predict(data, verbose=0), data.reshape(2, 12))
    assert ops.numpy.sum is ops.sum and ops.nn.relu is ops.relu and ops.math.top_k is ops.top_k
    assert ops.linalg.norm is ops.norm
