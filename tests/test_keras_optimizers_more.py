"""Nadam, Adamax, learning-rate schedules, weight constraints and MeanAbsolutePercentageError.

Update rules are checked against NumPy implementations of Keras 3's equations written here, and,
where real Keras 3 is installed, against Keras itself (torch backend) on the same gradients.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras import constraints, layers, optimizers
from bigmodel.keras.optimizers import schedules

RNG = np.random.default_rng(3)


# ----------------------------------------------------------------------------- NumPy references
def numpy_adamax(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    w = w.astype(np.float64).copy()
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g))
        w = w - lr * m / ((1 - b1 ** t) * (u + eps))
    return w


def numpy_nadam(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    w = w.astype(np.float64).copy()
    m, v, product = np.zeros_like(w), np.zeros_like(w), 1.0
    for t, g in enumerate(grads, start=1):
        mu = b1 * (1 - 0.5 * 0.96 ** t)
        mu_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        product *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = mu_next * m / (1 - product * mu_next) + (1 - mu) * g / (1 - product)
        v_hat = v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def apply_grads(optimizer, w0, grads):
    param = torch.nn.Parameter(torch.tensor(w0))
    optimizer.build([param])
    for g in grads:
        param.grad = torch.tensor(g)
        optimizer.step()
    return param.detach().numpy()


@pytest.mark.parametrize("name,reference,kwargs", [
    ("adamax", numpy_adamax, {}), ("nadam", numpy_nadam, {}),
    ("Adamax", numpy_adamax, dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
    ("Nadam", numpy_nadam, dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
])
def test_adamax_nadam_follow_keras_update_rules(name, reference, kwargs):
    w0 = RNG.standard_normal((3, 4)).astype(np.float32)
    grads = [RNG.standard_normal((3, 4)).astype(np.float32) for _ in range(6)]
    optimizer = (optimizers.get(name) if not kwargs else getattr(optimizers, name)(**kwargs))
    assert type(optimizer).__name__.lower() == name.lower()
    ref_kwargs = {"lr": kwargs.get("learning_rate", 0.001), "b1": kwargs.get("beta_1", 0.9),
                  "b2": kwargs.get("beta_2", 0.999), "eps": kwargs.get("epsilon", 1e-7)}
    np.testing.assert_allclose(apply_grads(optimizer, w0, grads), reference(w0, grads, **ref_kwargs),
                               rtol=1e-5, atol=1e-6)
    assert optimizer.iterations == 6
    config = optimizer.get_config()
    assert config["beta_1"] == kwargs.get("beta_1", 0.9)
    assert type(optimizer).from_config(config).get_config() == config


def test_keras_defaults_and_names():
    for cls in (optimizers.Nadam, optimizers.Adamax):
        opt = cls()
        assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert isinstance(optimizers.deserialize(optimizers.serialize(optimizers.Nadam(0.01))),
                      optimizers.Nadam)
    with pytest.raises(UnknownNameError, match="nadam"):
        optimizers.get("nadamm")


# ----------------------------------------------------------------------------- schedules
def test_schedules_follow_keras_formulas():
    exp = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert exp(0) == pytest.approx(0.1) and exp(15) == pytest.approx(0.1 * 0.5 ** 1.5)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    pw = schedules.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])
    assert [pw(s) for s in (0, 5, 6, 10, 11)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    poly = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0)
    assert poly(5) == pytest.approx(0.09 * 0.25 + 0.01) and poly(50) == pytest.approx(0.01)
    cyc = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(0.1 * (1 - 15 / 20))
    inv = schedules.InverseTimeDecay(0.1, 10, 0.5)
    assert inv(20) == pytest.approx(0.1 / 2)
    cos = schedules.CosineDecay(0.1, 10, alpha=0.1)
    assert cos(5) == pytest.approx(0.1 * (0.9 * 0.5 + 0.1)) and cos(99) == pytest.approx(0.01)
    warm = schedules.CosineDecay(0.0, 10, warmup_target=0.2, warmup_steps=4)
    assert warm(2) == pytest.approx(0.1) and warm(4) == pytest.approx(0.2)
    assert warm(9) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    restarts = schedules.CosineDecayRestarts(0.1, 10, t_mul=1.0)
    assert restarts(10) == pytest.approx(0.1) and restarts(15) == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ConfigError, match="one more"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])
    for sched in (exp, pw, poly, inv, cos, warm, restarts):
        spec = schedules.serialize(sched)
        assert schedules.deserialize(spec).get_config() == sched.get_config()


def test_schedule_drives_any_optimizer():
    sched = schedules.PiecewiseConstantDecay([1], [1.0, 0.5])
    opt = optimizers.SGD(learning_rate=sched)
    assert opt.learning_rate == 1.0
    # SGD w -= lr * g with g = 1: steps at lr 1.0 (step 0), 1.0 (step 1), 0.5 (step 2)
    out = apply_grads(opt, np.zeros(2, np.float32), [np.ones(2, np.float32)] * 3)
    np.testing.assert_allclose(out, [-2.5, -2.5])
    assert opt.learning_rate == 0.5
    config = opt.get_config()
    assert config["learning_rate"]["class_name"] == "PiecewiseConstantDecay"
    assert optimizers.SGD.from_config(config).learning_rate == 1.0
    with pytest.raises(ConfigError, match="LearningRateSchedule"):
        opt.learning_rate = 0.1
    adam = optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.01, 1, 0.5))
    apply_grads(adam, np.zeros(2, np.float32), [np.ones(2, np.float32)] * 2)
    assert adam.learning_rate == pytest.approx(0.01 * 0.25)
    with pytest.raises(ConfigError, match="learning_rate"):
        optimizers.Adam(learning_rate="fast")


# ----------------------------------------------------------------------------- constraints
def test_constraints_follow_keras_formulas():
    w = torch.tensor(RNG.standard_normal((4, 3)).astype(np.float32)) * 3
    norms = np.linalg.norm(w.numpy(), axis=0, keepdims=True)
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w).numpy(),
                               w.numpy() * np.clip(norms, 0, 2) / (1e-7 + norms), rtol=1e-5)
    np.testing.assert_allclose(constraints.UnitNorm(axis=1)(w).numpy(),
                               w.numpy() / (1e-7 + np.linalg.norm(w.numpy(), axis=1,
                                                                   keepdims=True)), rtol=1e-5)
    np.testing.assert_allclose(constraints.NonNeg()(w).numpy(), np.maximum(w.numpy(), 0))
    mm = constraints.MinMaxNorm(1.0, 2.0, rate=0.5)(w).numpy()
    desired = 0.5 * np.clip(norms, 1, 2) + 0.5 * norms
    np.testing.assert_allclose(mm, w.numpy() * desired / (1e-7 + norms), rtol=1e-5)
    assert isinstance(constraints.get("max_norm"), constraints.MaxNorm)
    spec = constraints.serialize(constraints.MinMaxNorm(0.5, 3.0, axis=[0, 1]))
    assert constraints.get(spec).get_config() == {"min_value": 0.5, "max_value": 3.0,
                                                  "rate": 1.0, "axis": (0, 1)}
    with pytest.raises(UnknownNameError):
        constraints.get("largest_norm")
    with pytest.raises(ConfigError, match="max_value"):
        constraints.MaxNorm("2")


def test_constraints_apply_after_each_step_in_keras_layout():
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((6,)),
                              layers.Dense(5, kernel_constraint=constraints.MaxNorm(0.5),
                                           bias_constraint="non_neg"),
                              layers.Dense(1)])
    model.compile(optimizer=optimizers.Nadam(0.1), loss="mse")
    x = RNG.standard_normal((64, 6)).astype(np.float32)
    model.fit(x, x[:, :1] * 5, epochs=3, batch_size=16, verbose=0)
    kernel, bias = model.layers[0].get_weights()
    # Keras layout (input_dim, units): each unit's incoming weights (axis 0) have norm <= 0.5
    assert np.all(np.linalg.norm(kernel, axis=0) <= 0.5 + 1e-5)
    assert np.all(np.linalg.norm(kernel, axis=0) > 0.45)  # active: the fit pushes them up
    assert np.all(bias >= 0)
    config = model.layers[0].get_config()
    assert config["kernel_constraint"]["class_name"] == "MaxNorm"
    assert layers.Dense.from_config(config).kernel_constraint.max_value == 0.5
    # A plain torch optimizer passed to compile applies constraints too.
    conv = layers.Conv1D(3, 2, kernel_constraint=constraints.NonNeg())
    conv(torch.zeros(1, 5, 2))
    sgd = optimizers.get(torch.optim.SGD(conv.parameters(), lr=1.0))
    conv.kernel.grad = torch.ones_like(conv.kernel)
    conv.bias.grad = torch.zeros_like(conv.bias)
    sgd.step()
    assert float(conv.kernel.min()) >= 0


def test_embedding_constraint():
    layer = layers.Embedding(10, 4, embeddings_constraint=constraints.UnitNorm(axis=1))
    out = layer(torch.tensor([[1, 2, 3]]))
    optimizer = optimizers.SGD(0.5).build(layer.parameters())
    out.sum().backward()
    optimizer.step()
    np.testing.assert_allclose(np.linalg.norm(layer.get_weights()[0], axis=1), 1.0, rtol=1e-5)
    assert layer.get_config()["embeddings_constraint"]["class_name"] == "UnitNorm"


# ----------------------------------------------------------------------------- MAPE
def test_mean_absolute_percentage_error():
    y_true = np.array([[1.0, 2.0], [0.0, 4.0]], np.float32)
    y_pred = np.array([[1.5, 1.0], [1.0, 4.0]], np.float32)
    metric = keras.metrics.get("mape")
    assert isinstance(metric, keras.metrics.MeanAbsolutePercentageError)
    metric.update(torch.tensor(y_pred), torch.tensor(y_true))
    per_sample = 100 * np.mean(np.abs(y_true - y_pred) / np.maximum(np.abs(y_true), 1e-7), -1)
    assert metric.result() == pytest.approx(per_sample.mean(), rel=1e-5)
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras.metrics.MeanAbsolutePercentageError()])
    history = model.fit(y_true + 1, y_true + 1, epochs=1, verbose=0)
    assert "mean_absolute_percentage_error" in history.history


# ----------------------------------------------------------------------------- real Keras parity
@pytest.mark.parametrize("name", ["Nadam", "Adamax"])
def test_matches_real_keras_optimizer(name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("real Keras runs on another backend")
    w0 = RNG.standard_normal((3, 4)).astype(np.float32)
    grads = [RNG.standard_normal((3, 4)).astype(np.float32) for _ in range(5)]
    variable = real.Variable(w0)
    theirs = getattr(real.optimizers, name)(learning_rate=0.01)
    for g in grads:
        theirs.apply([real.ops.convert_to_tensor(g)], [variable])
    ours = apply_grads(getattr(optimizers, name)(learning_rate=0.01), w0, grads)
    np.testing.assert_allclose(ours, real.ops.convert_to_numpy(variable), rtol=1e-5, atol=1e-6)
    theirs_config = theirs.get_config()
    ours_config = getattr(optimizers, name)(learning_rate=0.01).get_config()
    for key in ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", "clipnorm"):
        assert ours_config[key] == pytest.approx(theirs_config[key]) if isinstance(
            theirs_config[key], float) else ours_config[key] == theirs_config[key]
