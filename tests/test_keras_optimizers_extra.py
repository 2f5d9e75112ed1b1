"""Adadelta, Adafactor, Ftrl, Lamb, Lion, Muon and ScheduleFreeAdamW: the same weights as real Keras 3
(torch backend) after 5 steps on the same gradients, Keras's get_config keys and defaults, string
names in compile, a weight stored in torch's layout, and bad arguments."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras import layers, optimizers
from bigmodel.keras.variables import Variable

RNG = np.random.default_rng(11)
SHAPES = ((3, 4), (5,), (2, 3, 4))


def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("real Keras runs on another backend")
    return real


def run_both(real, name, kwargs, steps=5, shapes=SHAPES):
    w0 = [RNG.standard_normal(s).astype("float32") for s in shapes]
    grads = [[RNG.standard_normal(s).astype("float32") for s in shapes] for _ in range(steps)]
    theirs_vars = [real.Variable(w, name=f"v{i}") for i, w in enumerate(w0)]
    theirs = getattr(real.optimizers, name)(**kwargs)
    ours_vars = [Variable(torch.tensor(w), requires_grad=True, name=f"v{i}")
                 for i, w in enumerate(w0)]
    ours = getattr(optimizers, name)(**kwargs)
    for g in grads:
        theirs.apply([real.ops.convert_to_tensor(x) for x in g], theirs_vars)
        ours.apply([torch.tensor(x) for x in g], ours_vars)
    return ([np.asarray(v.value.detach().cpu()) for v in theirs_vars],
            [v.detach().numpy() for v in ours_vars], theirs, ours, w0, grads)


CASES = [
    ("Adadelta", dict(learning_rate=0.5)), ("Adadelta", dict(learning_rate=0.5, rho=0.8,
                                                             weight_decay=0.1)),
    ("Lion", dict(learning_rate=0.01)), ("Lion", dict(learning_rate=0.01, beta_1=0.8,
                                                      weight_decay=0.05)),
    ("Lamb", dict(learning_rate=0.01)), ("Lamb", dict(learning_rate=0.01, weight_decay=0.1)),
    ("Ftrl", dict(learning_rate=0.1)),
    ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01,
                  l2_regularization_strength=0.02, l2_shrinkage_regularization_strength=0.03,
                  beta=0.1, learning_rate_power=-0.7)),
    ("Adafactor", dict(learning_rate=0.1)),
    ("Adafactor", dict(learning_rate=0.1, relative_step=False, clip_threshold=0.5)),
    ("Muon", dict(learning_rate=0.01)),
    ("Muon", dict(learning_rate=0.01, exclude_layers=["v0"], nesterov=False, rms_rate=None)),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_same_weights_as_real_keras_after_five_steps(name, kwargs):
    real = real_keras()
    theirs, ours, their_opt, our_opt, _, _ = run_both(real, name, kwargs)
    for a, b in zip(theirs, ours):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert our_opt.iterations == int(their_opt.iterations) == 5
    their_config, our_config = their_opt.get_config(), our_opt.get_config()
    their_config.pop("name"), our_config.pop("name")
    assert set(our_config) <= set(their_config)
    for key, value in our_config.items():
        assert value == pytest.approx(their_config[key], rel=1e-6) if isinstance(
            value, float) else value == their_config[key], key
    assert getattr(real.optimizers, name)().name.startswith(getattr(optimizers, name)().name)


def _schedule_free_reference(w, grads, alias, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """Keras's ScheduleFreeAdamW equations in NumPy; ``alias`` reads z after its update where
    the rule reads it before (what Keras 3.15's torch backend does)."""
    y, z, v = w.astype(np.float64), w.astype(np.float64).copy(), np.zeros_like(w, np.float64)
    for t, g in enumerate(grads, start=1):
        z_old = z.copy()
        v = b2 * v + (1 - b2) * g * g
        z = z - lr * g / (np.sqrt(v / (1 - b2 ** t)) + eps)
        x_old = (y - (1 - b1) * (z if alias else z_old)) / b1
        x = (1 - 1 / t) * x_old + z / t
        y = (1 - b1) * z + b1 * x
    return y


def test_schedule_free_adamw_follows_the_rule_and_keras_torch_reads_z_late():
    real = real_keras()
    theirs, ours, _, our_opt, w0, grads = run_both(real, "ScheduleFreeAdamW",
                                                   dict(learning_rate=0.01), shapes=((3, 4),))
    np.testing.assert_allclose(ours[0], _schedule_free_reference(w0[0], [g[0] for g in grads],
                                                                 alias=False), rtol=1e-5,
                               atol=1e-6)
    # the documented difference: real Keras on torch follows the aliased reading
    np.testing.assert_allclose(theirs[0], _schedule_free_reference(
        w0[0], [g[0] for g in grads], alias=True), rtol=1e-5, atol=1e-6)
    theirs, ours, *_ = run_both(real, "ScheduleFreeAdamW",
                                dict(learning_rate=0.01, warmup_steps=3, weight_decay=0.01),
                                steps=1)
    for a, b in zip(theirs, ours):  # one step: both readings agree, warm-up and decay included
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert our_opt.get_config()["warmup_steps"] == 0


def test_adafactor_factors_keras_layout_of_a_weight_stored_for_torch():
    real = real_keras()
    perm = (3, 2, 0, 1)  # a conv kernel: Keras (h, w, in, out) stored as torch (out, in, h, w)
    w0 = RNG.standard_normal((2, 3, 4, 5)).astype("float32")
    grads = [RNG.standard_normal((2, 3, 4, 5)).astype("float32") for _ in range(3)]
    theirs_var = real.Variable(w0)
    theirs = real.optimizers.Adafactor(learning_rate=0.1)
    ours_var = Variable(torch.tensor(w0).permute(*perm).contiguous(), requires_grad=True)
    ours_var._set_torch_layout(perm)
    ours = optimizers.Adafactor(learning_rate=0.1)
    for g in grads:
        theirs.apply([real.ops.convert_to_tensor(g)], [theirs_var])
        ours.apply([torch.tensor(g).permute(*perm)], [ours_var])
    np.testing.assert_allclose(ours_var.detach().permute(2, 3, 1, 0).numpy(),
                               np.asarray(theirs_var.value.detach().cpu()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lion", "adadelta", "Adafactor", "ftrl", "lamb", "muon",
                                  "schedulefreeadamw"])
def test_string_names_train_in_compile(name):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [1.5]], dtype="float32")
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8), layers.Dense(1)])
    optimizer = optimizers.get(name)
    optimizer.learning_rate = {"adadelta": 10.0, "Adafactor": 0.1, "ftrl": 0.5,
                               "muon": 0.05}.get(name, 0.02)
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0], name
    spec = optimizers.serialize(model.optimizer)
    assert optimizers.deserialize(spec).get_config() == model.optimizer.get_config()


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(ConfigError, match="learning_rate_power"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ConfigError, match="initial_accumulator_value"):
        optimizers.Ftrl(initial_accumulator_value=-1.0)
    with pytest.raises(ConfigError, match="Unrecognized keyword"):
        optimizers.Lamb(beta3=0.1)
    with pytest.raises(UnknownNameError, match="lion"):
        optimizers.get("lionn")


# ----------------------------------------------------------------------------- MultiOptimizer
def _multi(module, default, mapped):
    return module.MultiOptimizer(module.OptimizerMap(default, mapped))


def test_multi_optimizer_equals_real_keras_and_serializes_both_ways():
    real = real_keras()
    w0 = [RNG.standard_normal(s).astype("float32") for s in ((3, 4), (4,))]
    grads = [[RNG.standard_normal(w.shape).astype("float32") for w in w0] for _ in range(5)]
    theirs_vars = [real.Variable(w0[0], name="kernel"), real.Variable(w0[1], name="bias")]
    theirs = _multi(real.optimizers, real.optimizers.SGD(0.1, momentum=0.9),
                    {"ker.*": real.optimizers.Adam(0.01)})
    ours_vars = [Variable(torch.tensor(w0[0]), requires_grad=True, name="kernel"),
                 Variable(torch.tensor(w0[1]), requires_grad=True, name="bias")]
    ours = _multi(optimizers, optimizers.SGD(0.1, momentum=0.9),
                  {"ker.*": optimizers.Adam(0.01)})
    for g in grads:
        theirs.apply([real.ops.convert_to_tensor(x) for x in g], theirs_vars)
        ours.apply([torch.tensor(x) for x in g], ours_vars)
    for a, b in zip(theirs_vars, ours_vars):
        np.testing.assert_allclose(b.detach().numpy(), np.asarray(a.value.detach().cpu()),
                                   rtol=1e-5, atol=1e-6)
    assert ours.iterations == int(theirs.iterations) == 5
    assert [type(o).__name__ for o in ours.optimizers] == ["Adam", "SGD"]
    rebuilt_there = real.optimizers.deserialize(optimizers.serialize(ours))
    assert [type(o).__name__ for o in rebuilt_there.optimizers] == ["Adam", "SGD"]
    rebuilt_here = optimizers.deserialize(real.optimizers.serialize(theirs))
    assert rebuilt_here.optimizers[0].get_config()["learning_rate"] == pytest.approx(0.01)
    assert rebuilt_here._optimizer_map["ker.*"] is rebuilt_here.optimizers[0]


def test_multi_optimizer_maps_keras_paths_under_fit():
    torch.manual_seed(0)
    x = np.random.default_rng(3).standard_normal((32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, name="enc"),
                              layers.Dense(1, name="head")], name="net")
    frozen = optimizers.SGD(learning_rate=0.0)
    model.compile(optimizer=_multi(optimizers, frozen, {"net/head/.*": optimizers.Adam(0.05)}),
                  loss="mse")
    before = {layer.name: [p.detach().clone() for p in layer.parameters()]
              for layer in model.layers}
    start = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.8 * start
    for layer in model.layers:  # only the head's weights fall under the Adam pattern
        for old, p in zip(before[layer.name], layer.parameters()):
            assert torch.equal(old, p.detach()) == (layer.name == "enc"), layer.name
    with pytest.raises(AttributeError, match="sub-optimizers"):
        _ = model.optimizer.learning_rate


def test_optimizer_map_rules_and_errors():
    adam, sgd, rms = optimizers.Adam(), optimizers.SGD(), optimizers.RMSprop()
    mapping = optimizers.OptimizerMap(rms)
    mapping["encoder/layer_0/dense"] = adam
    mapping["encoder/.*"] = sgd
    mapping["decoder"] = adam
    assert mapping["decoder"] is adam and mapping["encoder/layer_0/dense"] is adam
    assert mapping["encoder/layer_0/attention/query"] is sgd
    assert mapping["decoder/layer_0/dense"] is rms
    with pytest.raises(ConfigError, match="already exists"):
        mapping["decoder"] = sgd
    mapping["enc.*"] = rms
    with pytest.raises(ConfigError, match="multiple optimizers"):
        mapping["encoder/x"]
    with pytest.raises(TypeError, match="Keras Optimizer"):
        mapping["x"] = torch.optim.SGD
    with pytest.raises(TypeError, match="default_optimizer"):
        optimizers.OptimizerMap("adam")


# ----------------------------------------------------------------------------- state in .keras files
FULL = pytest.mark.full  # the same mapping once more per optimizer: .ci/run's full suite
STATE_CASES = [
    ("SGD", dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Lamb", dict(learning_rate=0.01)),
    pytest.param("SGD", dict(learning_rate=0.01), marks=FULL),
    pytest.param("Adagrad", dict(learning_rate=0.1), marks=FULL),
    pytest.param("AdamW", dict(learning_rate=0.01), marks=FULL),
    pytest.param("Adamax", dict(learning_rate=0.01), marks=FULL),
    pytest.param("Adadelta", dict(learning_rate=1.0), marks=FULL),
    pytest.param("Lion", dict(learning_rate=0.01), marks=FULL),
    pytest.param("Ftrl", dict(learning_rate=0.1), marks=FULL),
    pytest.param("Nadam", dict(learning_rate=0.01), marks=FULL),
    pytest.param("Adam", dict(learning_rate=0.01, amsgrad=True), marks=FULL),
    ("Muon", dict(learning_rate=0.01)),
    pytest.param("Adafactor", dict(learning_rate=0.05, relative_step=False), marks=FULL),
]


def _state_data():
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]])).astype("float32")


@pytest.mark.parametrize("name,kwargs", STATE_CASES)
def test_optimizer_state_in_keras_files_continues_training_both_ways(tmp_path, name, kwargs):
    real = real_keras()
    x, y = _state_data()

    def stack(lib):
        return [lib.Input((3,)), lib.layers.Dense(4, activation="relu"),
                lib.layers.BatchNormalization(), lib.layers.Dense(1)]

    ours = keras.Sequential(stack(keras))
    ours.compile(getattr(optimizers, name)(**kwargs), "mse")
    ours.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    ours.save(tmp_path / "ours.keras")
    theirs_loaded = real.models.load_model(tmp_path / "ours.keras")
    assert int(theirs_loaded.optimizer.iterations) == ours.optimizer.iterations == 8
    theirs = real.Sequential(stack(real))
    theirs.compile(getattr(real.optimizers, name)(**kwargs), "mse")
    theirs.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    theirs.save(tmp_path / "theirs.keras")
    ours_loaded = keras.models.load_model(tmp_path / "theirs.keras")
    assert ours_loaded.optimizer.iterations == 8
    for model in (ours, theirs_loaded, ours_loaded, theirs):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for mine, real_weights in ((ours, theirs_loaded), (ours_loaded, theirs)):
        for a, b in zip(mine.get_weights(), real_weights.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_schedule_free_state_round_trips_through_a_keras_file(tmp_path):
    x, y = _state_data()
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4), layers.Dense(1)])
    model.compile(optimizers.ScheduleFreeAdamW(0.01), "mse")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert reloaded.optimizer.iterations == 8
    for continued in (model, reloaded):
        continued.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
