"""Fused optimizer kernels (``engine.optimizers.fused_kwargs``): when they are chosen, and that the
updates still follow the textbook formulas (NumPy references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.engine.optimizers import fused_kwargs
from bigmodel.engine.resolve import resolve_optimizer


def _params(*shapes, device="cpu"):
    return [torch.nn.Parameter(torch.randn(*s, device=device)) for s in shapes]


def test_fused_is_chosen_only_where_torch_has_a_kernel():
    plain = _params((3, 2), (2,))
    assert fused_kwargs(torch.optim.Adam, plain) == {"fused": True}
    assert fused_kwargs(torch.optim.AdamW, [{"params": plain, "lr": 0.1}]) == {"fused": True}
    assert fused_kwargs(torch.optim.SGD, iter(plain)) == {"fused": True}
    assert fused_kwargs(torch.optim.RMSprop, plain) == {}  # no fused RMSprop in torch
    assert fused_kwargs(torch.optim.Adam, []) == {}
    assert fused_kwargs(torch.optim.Adam, _params((2,), device="meta")) == {}
    assert fused_kwargs(torch.optim.Adam, [torch.randn(2, requires_grad=True)]) == {}  # not a Parameter
    assert fused_kwargs(torch.optim.Adam, [torch.nn.Parameter(torch.ones(2, dtype=torch.int64),
                                                              requires_grad=False)]) == {}


def test_trainer_and_keras_optimizers_run_fused():
    model = torch.nn.Linear(3, 2)
    assert resolve_optimizer("adam", 1e-3, model).defaults["fused"] is True
    assert resolve_optimizer("rmsprop", 1e-3, model).defaults.get("fused") in (None, False)
    opt = keras.optimizers.Adam().build(model.parameters())
    assert opt.torch_optimizer.defaults["fused"] is True


def _numpy_adam(w, grads, lr, b1, b2, eps, decay=0.0):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w = w * (1 - lr * decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


def _numpy_sgd(w, grads, lr, momentum, nesterov):
    buf = None
    for g in grads:
        buf = g.copy() if buf is None else momentum * buf + g
        w = w - lr * (g + momentum * buf if nesterov else buf)
    return w


def _steps(optimizer, grads):
    param = optimizer.param_groups[0]["params"][0]
    for g in grads:
        param.grad = torch.from_numpy(g.copy())
        optimizer.step()
    return param.detach().numpy()


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_fused_updates_follow_the_formulas(kind):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(5)]
    param = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    if kind == "adam":
        opt = keras.optimizers.Adam(learning_rate=0.01).build([param])
        expected = _numpy_adam(w0.astype(np.float64), grads, 0.01, 0.9, 0.999, 1e-7)
    elif kind == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.1).build([param])
        expected = _numpy_adam(w0.astype(np.float64), grads, 0.01, 0.9, 0.999, 1e-7, decay=0.1)
    else:
        opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True).build([param])
        expected = _numpy_sgd(w0.astype(np.float64), grads, 0.05, 0.9, True)
    assert opt.torch_optimizer.defaults["fused"] is True
    np.testing.assert_allclose(_steps(opt, grads), expected, rtol=1e-5, atol=1e-6)
