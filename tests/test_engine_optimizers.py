"""engine.optimizers.create_optimizer: the one optimizer-by-name function. Each name builds the
right torch class with torch's defaults (or the ones passed, e.g. Keras's), its updates equal those
of the torch optimizer constructed by hand and the textbook rule (NumPy), and bad input fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.engine.optimizers import OPTIMIZERS, create_optimizer
from bigmodel.engine.resolve import resolve_optimizer
from bigmodel.errors import ConfigError, UnknownNameError

CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


def _params():
    return [torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5])),
            torch.nn.Parameter(torch.tensor([[0.3, 0.7], [-1.1, 0.2]]))]


def _train(optimizer, params, steps=5):
    """A tiny least-squares problem; returns the weights after ``steps`` updates."""
    target = [torch.tensor([0.5, 0.5, 0.5]), torch.eye(2)]
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(((p - t) ** 2).sum() for p, t in zip(params, target))
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in params]


def test_names_are_the_known_ones():
    assert set(OPTIMIZERS) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_name_builds_its_class_with_torch_defaults(name):
    params = _params()
    optimizer = create_optimizer(name.upper(), params, lr=0.05)
    reference = CLASSES[name](_params(), lr=0.05)
    assert type(optimizer) is CLASSES[name]
    for key, value in reference.defaults.items():
        if key not in ("fused", "foreach"):
            assert optimizer.defaults[key] == value, key
    if name in ("adam", "adamw", "rmsprop"):
        assert optimizer.defaults["eps"] == 1e-8  # torch's, not Keras's
    if name == "rmsprop":
        assert optimizer.defaults["alpha"] == 0.99
    if name == "adamw":
        assert optimizer.defaults["weight_decay"] == 0.01  # torch's AdamW default


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_updates_equal_torch_constructed_by_hand(name):
    given = dict(lr=0.05, weight_decay=0.01, epsilon=1e-7, momentum=0.5, rho=0.9)
    torch_args = {"lr": 0.05, "weight_decay": 0.01}
    if name != "sgd":
        torch_args["eps"] = 1e-7
    if name in ("sgd", "rmsprop"):
        torch_args["momentum"] = 0.5
    if name == "rmsprop":
        torch_args["alpha"] = 0.9
    ours = _train(create_optimizer(name, params := _params(), **given), params)
    theirs = _train(CLASSES[name](params := _params(), **torch_args), params)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ours[0], _params()[0])  # it moved


def test_sgd_momentum_nesterov_is_the_textbook_rule():
    w0 = np.array([1.0, -2.0, 0.5])
    params = [torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))]
    optimizer = create_optimizer("sgd", params, lr=0.1, momentum=0.9, nesterov=True)
    w, velocity = w0.copy(), np.zeros(3)
    for _ in range(4):
        optimizer.zero_grad()
        (params[0] ** 2).sum().backward()
        optimizer.step()
        grad = 2 * w
        velocity = 0.9 * velocity + grad
        w = w - 0.1 * (grad + 0.9 * velocity)
    np.testing.assert_allclose(params[0].detach().numpy(), w, rtol=1e-12)


def test_rmsprop_with_keras_defaults_is_the_textbook_rule():
    w0 = np.array([1.0, -2.0, 0.5])
    params = [torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))]
    optimizer = create_optimizer("rmsprop", params, lr=0.01, epsilon=1e-7, rho=0.9)
    w, square = w0.copy(), np.zeros(3)
    for _ in range(4):
        optimizer.zero_grad()
        (params[0] ** 2).sum().backward()
        optimizer.step()
        grad = 2 * w
        square = 0.9 * square + 0.1 * grad ** 2
        w = w - 0.01 * grad / (np.sqrt(square) + 1e-7)
    np.testing.assert_allclose(params[0].detach().numpy(), w, rtol=1e-12)


def test_options_of_one_optimizer():
    adam = create_optimizer("adam", _params(), lr=0.1, betas=(0.8, 0.9), amsgrad=True)
    assert adam.defaults["betas"] == (0.8, 0.9) and adam.defaults["amsgrad"] is True
    rms = create_optimizer("rmsprop", _params(), lr=0.1, centered=True)
    assert rms.defaults["centered"] is True
    ada = create_optimizer("adagrad", _params(), lr=0.1, initial_accumulator_value=0.1)
    assert ada.defaults["initial_accumulator_value"] == 0.1
    # settings another optimizer has are not used (one training section fits every name)
    assert "momentum" not in create_optimizer("adam", _params(), lr=0.1, momentum=0.9).defaults
    assert "eps" not in create_optimizer("sgd", _params(), lr=0.1, epsilon=1e-7).defaults


def test_fused_kernels_where_the_parameters_allow():
    assert create_optimizer("adam", _params(), lr=0.1).defaults["fused"] is True
    groups = [{"params": _params(), "lr": 0.2}]
    assert create_optimizer("sgd", groups, lr=0.1).param_groups[0]["lr"] == 0.2
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])  # Keras variables
    assert create_optimizer("rmsprop", dense.parameters(), lr=0.1).defaults["foreach"] is True


def test_the_engine_and_keras_call_it():
    model = torch.nn.Linear(2, 1)
    built = resolve_optimizer("rmsprop", 0.01, model)
    assert type(built) is torch.optim.RMSprop and built.defaults["eps"] == 1e-8
    keras_rms = keras.optimizers.RMSprop().build(_params())
    assert keras_rms.torch_optimizer.defaults["eps"] == 1e-7  # Keras's defaults, applied there
    assert keras_rms.torch_optimizer.defaults["alpha"] == 0.9


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"Unknown optimizer 'adamm'.*adagrad, adam, adamw"):
        create_optimizer("adamm", _params(), lr=0.1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "'lr' must be a number >= 0; received -0.1"),
    (dict(lr=math.nan), "'lr' must be a number >= 0; received nan"),
    (dict(lr=True), "'lr' must be a number >= 0; received True"),
    (dict(lr="0.1"), "'lr' must be a number >= 0; received '0.1'"),
    (dict(lr=0.1, weight_decay=-1.0), "'weight_decay' must be a number >= 0"),
    (dict(lr=0.1, momentum=1.5), r"'momentum' must be in \[0, 1\]; received 1.5"),
    (dict(lr=0.1, rho=-0.1), r"'rho' must be in \[0, 1\]"),
    (dict(lr=0.1, epsilon=math.inf), "'epsilon' must be a number >= 0; received inf"),
    (dict(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(lr=0.1, momentum=0.9, nesterov=1), "'nesterov' must be a bool; received 1"),
    (dict(lr=0.1, betas=(0.9,)), "'betas' must be a pair"),
    (dict(lr=0.1, centered=True), "'centered' is an option of rmsprop, not of 'sgd'"),
    (dict(lr=0.1, initial_accumulator_value=0.1),
     "'initial_accumulator_value' is an option of adagrad, not of 'sgd'"),
])
def test_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=r"create_optimizer: " + message):
        create_optimizer("sgd", _params(), **kwargs)


def test_no_parameters_and_bad_betas():
    with pytest.raises(ConfigError, match="no trainable parameters"):
        create_optimizer("adam", [], lr=0.1)
    with pytest.raises(ConfigError, match=r"'beta_2' must be in \[0, 1\); received 1.0"):
        create_optimizer("adam", _params(), lr=0.1, betas=(0.9, 1.0))
