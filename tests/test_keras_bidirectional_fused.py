"""``Bidirectional`` runs both directions of a recurrent layer in one fused op (as
``nn.LSTM(bidirectional=True)``) where that equals the two one-direction calls: same outputs,
states and gradients; one recurrent op per call and no flips; the two calls wherever a mask, a
state, dropout or a hook needs them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.profiler import profile

from bigmodel import keras
from bigmodel.keras import layers

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple": layers.SimpleRNN}
OPS = {"lstm": "aten::lstm", "gru": "aten::gru", "simple": "aten::rnn_tanh"}


def _built(cell: str, merge_mode: str | None = "concat", **options) -> layers.Bidirectional:
    torch.manual_seed(0)
    layer = layers.Bidirectional(CELLS[cell](5, **options), merge_mode=merge_mode)
    layer(torch.zeros(1, 7, 3))
    with torch.no_grad():  # non-zero biases, so that a swapped bias would show
        for weight in layer.parameters():
            weight.add_(torch.randn_like(weight) * 0.1)
    return layer


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _two_calls(layer: layers.Bidirectional, x: torch.Tensor, training: bool = False):
    """What Bidirectional computed before the fused path: each direction's own call, the backward
    output flipped back to input order, then the merge."""
    y = layer.forward_layer(x, training=training)
    y_rev = layer.backward_layer(x, training=training)
    states = []
    if layer.return_state:
        states = [*y[1:], *y_rev[1:]]
        y, y_rev = y[0], y_rev[0]
    if layer.return_sequences:
        y_rev = y_rev.flip(1)
    merged = {"concat": lambda: [torch.cat([y, y_rev], -1)], "sum": lambda: [y + y_rev],
              "ave": lambda: [(y + y_rev) / 2], "mul": lambda: [y * y_rev],
              None: lambda: [y, y_rev]}[layer.merge_mode]()
    return merged + states


def _op_counts(fn) -> dict[str, int]:
    with profile() as prof:
        fn()
    return {event.key: event.count for event in prof.key_averages()}


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("merge_mode,return_sequences,return_state", [
    ("concat", True, False), ("concat", False, False), ("sum", True, True),
    ("ave", False, True), ("mul", True, False), (None, True, True)])
def test_fused_equals_the_two_direction_calls(cell, merge_mode, return_sequences, return_state):
    layer = _built(cell, merge_mode, return_sequences=return_sequences, return_state=return_state)
    x = torch.randn(4, 7, 3)
    assert layer._fuses(x, False, None)
    fused = _as_list(layer(x))
    reference = _two_calls(layer, x)
    assert len(fused) == len(reference)
    for index, (got, want) in enumerate(zip(fused, reference)):
        assert got.shape == want.shape
        if index == 0 and merge_mode == "concat" and return_sequences:
            # the op's own batch-first view of time-major memory, which a next recurrent layer
            # reads without a copy (as nn.LSTM(batch_first=True) hands it back)
            assert got.transpose(0, 1).is_contiguous()
        else:
            assert got.is_contiguous()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # gradients of the inputs and of every weight of both directions
    probes = [torch.randn_like(t) for t in reference]

    def grads(outputs):
        total = sum((o * p).sum() for o, p in zip(outputs, probes))
        return torch.autograd.grad(total, [x_grad, *layer.parameters()])

    x_grad = x.clone().requires_grad_(True)
    fused_grads = grads(_as_list(layer(x_grad, training=True)))
    reference_grads = grads(_two_calls(layer, x_grad, training=True))
    for got, want in zip(fused_grads, reference_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bidirectional_lstm_equals_torch_bidirectional_lstm():
    """An independent reference: ``nn.LSTM(bidirectional=True)`` given the Keras weights (one
    bias: b_hh zero), outputs and final states."""
    layer = _built("lstm", return_sequences=True, return_state=True)
    ref = nn.LSTM(3, 5, batch_first=True, bidirectional=True)
    fwd, bwd = layer.forward_layer, layer.backward_layer
    with torch.no_grad():
        for suffix, child in (("", fwd), ("_reverse", bwd)):
            getattr(ref, "weight_ih_l0" + suffix).copy_(child.kernel)
            getattr(ref, "weight_hh_l0" + suffix).copy_(child.recurrent_kernel)
            getattr(ref, "bias_ih_l0" + suffix).copy_(child.bias)
            getattr(ref, "bias_hh_l0" + suffix).zero_()
    x = torch.randn(4, 7, 3)
    out, h_f, c_f, h_b, c_b = layer(x)
    ref_out, (ref_h, ref_c) = ref(x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.stack([h_f, h_b]), ref_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.stack([c_f, c_b]), ref_c, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_one_recurrent_op_and_no_flip_per_call(cell):
    layer = _built(cell, return_sequences=True)
    x = torch.randn(2, 7, 3)
    counts = _op_counts(lambda: layer(x))
    assert counts.get(OPS[cell]) == 1
    assert "aten::flip" not in counts
    # forward and backward in training: still one op each way
    x.requires_grad_(True)
    counts = _op_counts(lambda: layer(x, training=True).sum().backward())
    assert counts.get(OPS[cell]) == 1 and "aten::flip" not in counts


def test_the_keras_program_model_makes_one_lstm_op_per_bidirectional_layer():
    """bidirectional_lstm_text's model (two stacked Bidirectional LSTMs) in predict and fit."""
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(4))(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    tokens, labels = rng.integers(1, 50, (8, 6)), rng.integers(0, 2, (8, 1)).astype("float32")
    counts = _op_counts(lambda: model.predict(tokens, batch_size=8, verbose=0))
    assert counts.get("aten::lstm") == 2 and "aten::flip" not in counts
    counts = _op_counts(lambda: model.fit(tokens, labels, batch_size=8, verbose=0))
    assert counts.get("aten::lstm") == 2 and "aten::flip" not in counts


def test_masks_states_dropout_and_hooks_keep_the_two_calls():
    layer = _built("lstm", return_sequences=True)
    x = torch.randn(2, 7, 3)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 5:] = False
    counts = _op_counts(lambda: layer(x, mask=mask))
    assert counts.get("aten::lstm", 0) + counts.get("aten::_pack_padded_sequence", 0) >= 2
    states = [torch.zeros(2, 5)] * 4
    assert _op_counts(lambda: layer(x, initial_state=states)).get("aten::lstm") == 2
    dropped = _built("lstm", return_sequences=True, dropout=0.5)
    assert not dropped._fuses(x, True, None) and dropped._fuses(x, False, None)
    seen = []
    handle = layer.forward_layer.register_forward_hook(lambda *args: seen.append(1))
    try:
        assert not layer._fuses(x, False, None)
        torch.testing.assert_close(layer(x), _two_calls(layer, x)[0])
    finally:
        handle.remove()
    assert seen  # the hook saw the forward direction's call
    assert not layers.Bidirectional(layers.LSTM(5, stateful=True))._fuses(x, False, None)
