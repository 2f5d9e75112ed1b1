"""The direct path of ``Layer.__call__`` (``layers/call_context.py``), the functional replay
plan (``Functional._replay_plan``) and the in-place relu of Dense/Conv2D: the same outputs,
gradients, masks, losses and random draws as the checked path, really taken, and left whenever
something could differ."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ShapeError
from bigmodel.keras import layers as L
from bigmodel.keras import ops
from bigmodel.keras.layers.base import Layer
from layer_helpers import replace_forward, seen_by_a_global_hook


class Block(L.Layer):
    """A user layer without ``training`` in its ``call``, holding layers that have it."""

    def __init__(self, units, rate=0.5):
        super().__init__()
        self.dense = L.Dense(units, activation="relu")
        self.drop = L.Dropout(rate)
        self.norm = L.LayerNormalization()

    def call(self, inputs):
        return self.norm(inputs + self.drop(self.dense(inputs)))


class PositionAdd(L.Layer):
    def call(self, x):
        return x + ops.arange(0, ops.shape(x)[-1], 1)


def _functional(seed: int = 0) -> keras.Model:
    torch.manual_seed(seed)
    inputs = keras.Input((6,))
    x = PositionAdd()(inputs)
    x = L.Dense(8, activation="relu")(x)
    skip = x
    x = Block(8)(x)
    x = L.add([x, skip])
    x = L.Dropout(0.3)(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(x))


def _forget_everything(model: keras.Model) -> None:
    for module in model.modules():
        module.__dict__.pop("_verified_inputs", None)


def _run(model: keras.Model, x: torch.Tensor, *, checked: bool):
    if checked:
        _forget_everything(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    out = model(x, training=True)
    (out * torch.arange(3.0)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def _counting(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = Layer._check_input_shape
    monkeypatch.setattr(Layer, "_check_input_shape",
                        lambda self, shape: (calls.append(self.name), original(self, shape))[1])
    return calls


def test_direct_calls_are_bit_identical_and_taken(monkeypatch):
    model = _functional()
    x = torch.randn(5, 6)
    model(x)
    ref_out, ref_grads = _run(model, x, checked=True)
    out, grads = _run(model, x, checked=False)
    assert torch.equal(out, ref_out)  # dropout draws included
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
    calls = _counting(monkeypatch)
    model(x)
    assert calls == []  # nothing checked again: every layer (and the model) went direct
    model(torch.randn(3, 6))  # another batch size: the same signatures
    assert calls == []
    model(torch.randn(3, 6, dtype=torch.float64))  # the model converts float64 -> float32
    assert calls == []  # (its layers see float32, as before)
    _forget_everything(model)
    model(x)
    assert len(calls) >= 6  # the checked path checks each layer's input


def test_training_mode_reaches_nested_layers_on_the_direct_path():
    model = _functional()
    x = torch.randn(64, 6)
    model(x)
    model(x)
    inference = [model(x) for _ in range(2)]
    assert torch.equal(inference[0], inference[1])  # dropout off, also in Block's own Dropout
    torch.manual_seed(1)
    a = model(x, training=True)
    torch.manual_seed(2)
    b = model(x, training=True)
    assert not torch.equal(a, b)  # dropout on in both Dropout layers
    block = next(m for m in model.modules() if isinstance(m, Block))
    h = torch.randn(64, 8)
    block(h)
    block(h)
    assert torch.equal(block(h), block(h))  # called alone without training: inference
    torch.manual_seed(3)
    c = block(h, training=True)
    torch.manual_seed(4)
    assert not torch.equal(c, block(h, training=True))


def test_bad_input_after_verification_still_gets_the_clear_error():
    model = _functional()
    model(torch.randn(2, 6))
    model(torch.randn(2, 6))
    with pytest.raises(ShapeError, match="expected axis -1 of input shape to have value 6"):
        model(torch.randn(2, 7))
    dense = L.Dense(4)
    dense(torch.randn(2, 3))
    dense(torch.randn(2, 3))
    with pytest.raises(ShapeError, match="expected axis -1 of input shape to have value 3"):
        dense(torch.randn(2, 5))
    with pytest.raises(ShapeError, match="min_ndim=2"):
        dense(torch.randn(3))


def test_hooks_specs_regularizers_and_replaced_forward_take_the_checked_path():
    dense = L.Dense(3)
    x = torch.randn(4, 2)
    dense(x)
    dense(x)
    seen = []
    handle = dense.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    dense(x)
    assert seen == [(4, 3)]
    handle.remove()
    pre = []
    handle = dense.register_forward_pre_hook(lambda m, i: pre.append(1))
    dense(x)
    handle.remove()
    assert pre == [1]
    assert seen_by_a_global_hook(lambda: dense(x)) == ["Dense"]
    dense.activity_regularizer = keras.regularizers.L2(0.1)  # set after verification
    dense(x)
    assert len(dense.losses) == 1 and float(dense.losses[0]) > 0
    dense.activity_regularizer = None
    dense(x)
    dense.input_spec = keras.InputSpec(ndim=2, axes={-1: 2})
    dense(x)
    with pytest.raises(Exception, match="ndim|rank"):
        dense(torch.randn(4, 1, 2))
    plain = L.Dense(2)
    plain(x)
    plain(x)
    replaced = replace_forward(plain)  # as activation checkpointing does
    plain(x)
    assert replaced == [1]


def test_masks_are_made_and_respected_on_the_direct_path():
    torch.manual_seed(0)
    emb = L.Embedding(10, 4, mask_zero=True)
    lstm = L.LSTM(3)
    ids = torch.tensor([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    for _ in range(3):
        vectors = emb(ids)
        assert torch.equal(vectors._keras_mask, ids != 0)  # made by the direct call too
    outs = [lstm(emb(ids)) for _ in range(3)]  # a masked input: the LSTM's checked path
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    np.testing.assert_allclose(outs[0][0].detach().numpy(),
                               lstm(emb(ids[:1, :3]))[0].detach().numpy(), atol=1e-6)


def test_add_loss_values_start_afresh_with_each_outermost_call():
    class Penalized(L.Layer):
        def call(self, x):
            self.add_loss(x.abs().mean())
            return x * 2

    inputs = keras.Input((3,))
    model = keras.Model(inputs, L.Dense(2)(Penalized()(inputs)))
    x = torch.ones(2, 3)
    for _ in range(3):
        model(x)
        assert len(model.losses) == 1 and float(model.losses[0]) == pytest.approx(1.0)


def test_the_replay_releases_intermediate_results_early():
    seen: dict[str, object] = {}

    class Spy(L.Layer):
        def call(self, x):
            out = x * 1.0
            seen["ref"] = weakref.ref(out)
            return out

    class Check(L.Layer):
        def call(self, x):
            gc.collect()
            seen["alive_at_the_end"] = seen["ref"]() is not None
            return x

    inputs = keras.Input((4,))
    x = Spy()(inputs)
    x = L.Dense(4)(x)
    x = L.Dense(4)(x)
    model = keras.Model(inputs, Check()(x))
    with torch.no_grad():
        model(torch.randn(2, 4))
    assert seen["alive_at_the_end"] is False  # the Spy's output went once its reader ran
    # ... while an output that is also a model output stays
    inputs = keras.Input((4,))
    a = Spy()(inputs)
    model = keras.Model(inputs, [a, Check()(L.Dense(4)(a))])
    with torch.no_grad():
        first, _ = model(torch.randn(2, 4))
    assert seen["alive_at_the_end"] is True and first.shape == (2, 4)


@pytest.mark.parametrize("layer_fn, shape", [
    (lambda: L.Dense(5, activation="relu"), (6, 4)),
    (lambda: L.Dense(5, activation="relu"), (2, 3, 4)),
    (lambda: L.Conv2D(3, 3, activation="relu", padding="same"), (2, 6, 6, 2)),
    (lambda: L.Conv2D(3, 3, activation="relu", data_format="channels_first"), (2, 2, 6, 6)),
])
def test_in_place_relu_matches_the_textbook_values_and_gradients(layer_fn, shape):
    torch.manual_seed(0)
    layer = layer_fn()
    x = torch.randn(*shape, requires_grad=True)
    out = layer(x)
    w = torch.randn(out.shape)
    (out * w).sum().backward()
    # reference: the affine part through the layer's logits, then an out-of-place relu
    x2 = x.detach().clone().requires_grad_(True)
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad(set_to_none=True)
    z = layer(x2, logits=True)
    ref = torch.relu(z)
    (ref * w).sum().backward()
    assert torch.equal(out.detach(), ref.detach()) and (out >= 0).all()
    assert torch.equal(x.grad, x2.grad)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, layer.parameters()))


def test_a_softmax_conv_keeps_its_channel_axis():
    torch.manual_seed(0)
    conv = L.Conv2D(4, 1, activation="softmax")
    out = conv(torch.randn(2, 3, 3, 2))
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 3, 3))


@pytest.mark.parametrize("make, x", [
    (lambda: keras.Sequential([L.Dense(4), L.Dense(2)]), torch.randn(2, 3)),
    (lambda: keras.Sequential([L.Conv2D(3, 3), L.Flatten(), L.Dense(2)]), torch.randn(2, 6, 6, 1)),
    (lambda: keras.Sequential([L.Embedding(10, 4), L.Bidirectional(L.LSTM(3)), L.Dense(2)]),
     torch.randint(0, 10, (2, 5))),
])
def test_a_model_first_called_under_inference_mode_still_trains(make, x):
    model = make()
    with torch.inference_mode():  # builds the weights (and the LSTM's cached zero bias)
        first = model(x)
    out = model(x, training=True)
    out.sum().backward()  # inference tensors would refuse to be saved for backward
    assert all(p.grad is not None for p in model.parameters())
    torch.testing.assert_close(model(x), first)


def test_attention_dropout_follows_the_enclosing_training_mode():
    class Block(L.Layer):
        def __init__(self):
            super().__init__()
            self.att = L.MultiHeadAttention(2, 4, dropout=0.5)

        def call(self, x):
            return self.att(x, x)  # no training=: the enclosing call's mode applies (Keras)

    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, Block()(inputs))
    x = torch.randn(3, 5, 8)
    inference = model(x)
    assert torch.equal(inference, model(x))
    torch.manual_seed(0)
    first = model(x, training=True)  # a custom loop's call: attention dropout on
    torch.manual_seed(1)
    assert not torch.equal(first, model(x, training=True))
    assert not torch.equal(first, inference)
