"""An optimizer's state (Adam here) in the ``.keras`` archives bigmodel writes (``optimizer/vars`` of
``model.weights.h5``, Keras 3's layout): real Keras loads it and continues training exactly where
bigmodel stopped. Other optimizers and models write no optimizer state (Keras starts fresh).
The other optimizers whose state maps are checked both ways in tests/test_keras_optimizers_extra.py."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from bigmodel import keras
from keras_reference import real_keras as _real_keras

pytestmark = pytest.mark.usefixtures("one_torch_thread")
h5py = pytest.importorskip("h5py")


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]])).astype("float32")


def _trained(optimizer, layers=None):
    x, y = _data()
    model = keras.Sequential([keras.Input((3,)), *(layers or [
        keras.layers.Dense(4, activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.Dense(1)])])
    model.compile(optimizer, "mse")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    return model


def _optimizer_vars(path):
    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as h5:
        if "optimizer" not in h5:
            return None
        group = h5["optimizer/vars"]
        return [np.asarray(group[str(i)]) for i in range(len(group))]


def test_adam_state_is_written_in_keras_order_and_layout(tmp_path):
    model = _trained(keras.optimizers.Adam(0.01))
    model.save(tmp_path / "m.keras")
    saved = _optimizer_vars(tmp_path / "m.keras")
    # iterations, learning rate, then (momentum, velocity) of each trainable weight:
    # Dense kernel/bias, BatchNormalization gamma/beta (not its moving statistics), Dense
    assert int(saved[0]) == 8 and saved[0].dtype == np.int64
    assert float(saved[1]) == pytest.approx(0.01)
    assert len(saved) == 2 + 2 * 6
    state = model.optimizer.torch_optimizer.state
    kernel = model.layers[0].kernel  # torch layout (out, in); Keras's is (in, out)
    np.testing.assert_array_equal(saved[2], state[kernel]["exp_avg"].numpy().T)
    np.testing.assert_array_equal(saved[3], state[kernel]["exp_avg_sq"].numpy().T)
    assert [a.shape for a in saved[2:]] == [(3, 4)] * 2 + [(4,)] * 6 + [(4, 1)] * 2 + [(1,)] * 2
    reloaded = keras.models.load_model(tmp_path / "m.keras")  # bigmodel reads such files too
    np.testing.assert_allclose(reloaded.predict(_data()[0], verbose=0),
                               model.predict(_data()[0], verbose=0), rtol=1e-6)


def test_real_keras_continues_training_where_bigmodel_stopped(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":
        pytest.skip("real Keras runs on another backend here")
    model = _trained(keras.optimizers.Adam(0.01))
    model.save(tmp_path / "m.keras")
    theirs = real.models.load_model(tmp_path / "m.keras")
    assert int(theirs.optimizer.iterations) == 8
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for ours, real_weight in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours, real_weight, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["schedule", "untrained", "lstm"])
def test_state_that_does_not_map_is_not_written(tmp_path, case):
    """Keras then skips the optimizer variables and starts fresh, as before."""
    if case == "untrained":
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.01), "mse")
    elif case == "schedule":  # Keras would save the schedule's rate at the step
        model = _trained(keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(0.01, 4, 0.5)))
    else:
        model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(2),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.01), "mse")
        model.fit(np.ones((8, 5, 3), "float32"), np.ones((8, 1), "float32"), verbose=0)
    model.save(tmp_path / "m.keras")
    assert _optimizer_vars(tmp_path / "m.keras") is None


def test_bigmodel_continues_from_a_real_keras_adam_state(tmp_path):
    real = _real_keras()
    x, y = _data()
    theirs = real.Sequential([real.Input((3,)), real.layers.Dense(4, activation="relu"),
                              real.layers.BatchNormalization(), real.layers.Dense(1)])
    theirs.compile(real.optimizers.Adam(0.01), "mse")
    theirs.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = keras.models.load_model(tmp_path / "k.keras")
    state = ours.optimizer.torch_optimizer.state[ours.layers[0].kernel]
    assert int(state["step"]) == 8
    np.testing.assert_allclose(state["exp_avg"].numpy().T,
                               real.ops.convert_to_numpy(theirs.optimizer.variables[2]), rtol=1e-6)
    ours.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for mine, real_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, real_weight, rtol=1e-5, atol=1e-5)


def test_round_trip_continues_like_the_model_in_memory(tmp_path):
    x, y = _data()
    model = _trained(keras.optimizers.Adam(0.01))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    for continued in (model, reloaded):
        continued.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for mine, again in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_allclose(again, mine, rtol=1e-6, atol=1e-7)


def test_a_state_bigmodel_cannot_restore_warns_and_starts_fresh(tmp_path):
    real = _real_keras()
    x, y = _data()
    theirs = real.Sequential([real.Input((3,)), real.layers.Dense(1)])
    theirs.compile(real.optimizers.Adam(real.optimizers.schedules.ExponentialDecay(0.01, 4, 0.5)),
                   "mse")
    theirs.fit(x, y, epochs=1, batch_size=8, verbose=0)
    theirs.save(tmp_path / "scheduled.keras")
    with pytest.warns(UserWarning, match=r"optimizer's saved state is not restored \(its "
                                         r"optimizer is Adam; .* at a constant learning rate"):
        ours = keras.models.load_model(tmp_path / "scheduled.keras")
    assert not ours.optimizer.built
    ours.fit(x, y, epochs=1, verbose=0)  # a fresh optimizer trains


def test_a_slot_of_another_shape_is_refused_before_anything_changes():
    from bigmodel.keras.keras_weights import WeightsFileError
    from bigmodel.keras.optimizer_state import restore_optimizer_variables

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    arrays = [np.asarray(4), np.asarray(0.01, "float32"), np.zeros((3, 2), "float32"),
              np.zeros((2, 3), "float32"), np.zeros(2, "float32"), np.zeros(2, "float32")]
    with pytest.raises(WeightsFileError, match=r"optimizer variable 3 .* has shape \(2, 3\); "
                                               r"the weight's is \(3, 2\)"):
        restore_optimizer_variables(model, arrays, "m.keras")
    assert not model.optimizer.built
