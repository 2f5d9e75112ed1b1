"""The direct path of ``Sequential.call`` (``keras/direct_call.py``): bit-identical to the checked
path, really taken, and left for the checked path whenever something could differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ShapeError
from bigmodel.keras import layers as L
from bigmodel.keras.layers.base import Layer
from layer_helpers import replace_forward, seen_by_a_global_hook


def _cnn(seed: int = 0) -> keras.Sequential:
    torch.manual_seed(seed)
    return keras.Sequential([
        keras.Input((12, 12, 2)),
        L.Conv2D(6, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(5, 3, padding="same", strides=2, activation="tanh"),  # asymmetric 'same' pad
        L.AveragePooling2D(pool_size=2, padding="same"),
        L.Conv2D(4, 1, activation="softmax"),  # normalises channels: stays out of the NCHW chain
        L.Dropout(0.3),
        L.BatchNormalization(),
        L.Flatten(),
        L.Dense(7, activation="relu"),
        L.Dropout(0.2),
        L.Dense(3, activation="softmax"),
    ])


def _permute_nodes(output: torch.Tensor) -> int:
    seen, stack, count = set(), [output.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += type(node).__name__.startswith("PermuteBackward")
        stack.extend(fn for fn, _ in node.next_functions)
    return count


def _run(model: keras.Sequential, x: torch.Tensor, *, checked: bool, logits: bool = False):
    """Output and parameter gradients of one training-mode call (dropout drawn from seed 7)."""
    if checked:  # neither the stack's direct path nor its layers' own
        model._direct.verified.clear()
        for module in model.modules():
            module.__dict__.pop("_verified_inputs", None)
    model.zero_grad(set_to_none=True)
    model._logits_mode = logits
    torch.manual_seed(7)
    out = model(x, training=True)
    model._logits_mode = False
    out.sum().backward() if logits else (out * torch.arange(3.0)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()], _permute_nodes(out)


@pytest.mark.parametrize("logits", [False, True])
def test_direct_path_is_bit_identical_to_the_checked_path(logits):
    model = _cnn()
    x = torch.randn(5, 12, 12, 2)
    model(x)  # builds and verifies this input signature
    assert model._direct.verified, "a checked call of a plain stack records its input signature"
    ref_out, ref_grads, ref_permutes = _run(model, x, checked=True, logits=logits)
    out, grads, permutes = _run(model, x, checked=False, logits=logits)
    assert torch.equal(out, ref_out)  # same values bit for bit, dropout draws included
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
    # The checked path permutes in and out of every conv/pool (5 layers x 2); the direct path
    # chains conv -> pool -> conv -> pool in NCHW (2), then the softmax conv on its own (2).
    assert (ref_permutes, permutes) == (11, 5)  # + 1 of BatchNormalization on either path


def test_direct_path_skips_the_per_layer_checks(monkeypatch):
    model = _cnn()
    x = torch.randn(2, 12, 12, 2)
    model(x)
    calls = []
    original = Layer._check_input_shape
    monkeypatch.setattr(Layer, "_check_input_shape",
                        lambda self, shape: (calls.append(self.name), original(self, shape))[1])
    model(x)
    assert calls == []
    model(torch.randn(3, 12, 12, 2))  # another batch size: same signature
    assert calls == []
    torch.manual_seed(0)
    pooled = keras.Sequential([keras.Input((None, None, 2)), L.Conv2D(3, 3, activation="relu"),
                               L.GlobalAveragePooling2D(), L.Dense(2)])
    pooled(torch.randn(2, 8, 8, 2))
    calls.clear()
    pooled(torch.randn(2, 8, 8, 2))
    assert calls == []
    pooled(torch.randn(2, 10, 9, 2))  # another image size: a new signature, checked once
    # by the layers it reaches in a new shape (the Dense after the pooling sees (batch, 3) again)
    assert calls == [layer.name for layer in pooled.layers[:2]]
    calls.clear()
    pooled(torch.randn(4, 10, 9, 2))
    assert calls == []


def test_seed_cnn_keeps_two_permutes_like_a_hand_written_module():
    torch.manual_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"), L.Flatten(),
        L.Dense(64, activation="relu"), L.Dense(10, activation="softmax"),
    ])
    x = torch.rand(4, 28, 28, 1)
    first = model(x, training=True)
    # The checked call: in and out of each of the 5 conv/pool layers (the very first permute, of
    # the input, records no autograd node).
    assert _permute_nodes(first) == 9
    second = model(x, training=True)
    assert _permute_nodes(second) == 1  # only NCHW -> NHWC before Flatten, as hand-written
    assert torch.equal(first, second)


def test_a_bad_input_after_verification_still_gets_the_clear_error():
    model = _cnn()
    model(torch.randn(2, 12, 12, 2))
    with pytest.raises(ShapeError, match=r"conv2d.*expected axis -1 of input shape to have value 2"):
        model(torch.randn(2, 12, 12, 3))
    with pytest.raises(ShapeError, match="expected ndim=4"):
        model(torch.randn(2, 12, 12))


def test_hooks_and_replaced_forward_take_the_checked_path():
    model = _cnn()
    x = torch.randn(2, 12, 12, 2)
    model(x)
    seen = []
    handle = model.layers[2].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    model(x)
    assert seen == [(2, 3, 3, 5)]  # the hook saw the layer's NHWC output
    handle.remove()
    model(x)
    assert seen == [(2, 3, 3, 5)]
    assert "Conv2D" in seen_by_a_global_hook(lambda: model(x))
    replaced = replace_forward(model.layers[0])  # as activation checkpointing does
    model(x)
    assert replaced == [1]


def test_activity_regularizer_and_masks_keep_their_semantics():
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activity_regularizer="l2"),
                              L.Dense(2)])
    x = torch.randn(5, 4)
    for _ in range(3):
        model(x)
        assert len(model.losses) == 1 and float(model.losses[0].detach()) > 0
    emb = keras.Sequential([keras.Input((6,), dtype="int64"),
                            L.Embedding(10, 4, mask_zero=True), L.LSTM(3)])
    ids = torch.tensor([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    outs = [emb(ids) for _ in range(3)]
    assert not emb._direct.verified  # a mask-making layer: always the checked path
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    # The padded sequence's output is its state after its 3 real steps.
    short = emb(ids[:1, :3])
    np.testing.assert_allclose(outs[0][0].detach().numpy(), short[0].detach().numpy(), atol=1e-6)


def test_stack_changes_reset_the_verified_signatures():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    model(torch.randn(2, 4))
    assert model._direct.verified
    model.add(L.Dense(2))
    assert not model._direct.verified
    assert model(torch.randn(2, 4)).shape == (2, 2)
    model.pop()
    assert not model._direct.verified
    assert model(torch.randn(2, 4)).shape == (2, 3)


def test_fit_learns_and_matches_across_runs_with_the_direct_path(one_torch_thread):
    # One thread: with two, oneDNN's reductions may differ between runs in the last bits (seen
    # with the checked path alone too).
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=256)
    x = rng.normal(size=(256, 12, 12, 2)).astype("float32")
    x[..., 0] += (y[:, None, None] - 1.0) * 0.7  # the class shifts the first channel

    def train():
        model = _cnn(seed=1)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model, model.fit(x, y, batch_size=32, epochs=8, verbose=0, shuffle=True)

    model_a, hist_a = train()
    _, hist_b = train()
    assert hist_a.history["loss"] == hist_b.history["loss"]
    assert hist_a.history["loss"][-1] < 0.8 * hist_a.history["loss"][0]
    assert hist_a.history["accuracy"][-1] > 0.7  # 3 balanced classes
    assert model_a._direct.verified


def test_a_shared_direct_state_serves_each_copy_with_its_own_layers():
    model = _cnn()
    x = torch.randn(2, 12, 12, 2)
    model(x)
    model(x)
    twin = _cnn(seed=3)
    twin._direct = model._direct  # shared, as nn.DataParallel's replicas share their __dict__
    expected = _cnn(seed=3).eval()(x)
    assert torch.equal(twin.eval()(x), expected)  # its own weights, not the cached layers'
    model.eval()
    model._direct.verified.clear()
    checked = model(x)
    assert torch.equal(model(x), checked)  # direct again, with the plan rebuilt for its layers
