"""Plain-PyTorch recurrent layers: textbook/Keras equations (NumPy), parity with torch.nn, fused vs
loop kernels, variable-length batches, gradients, Keras weights, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError
from bigmodel.nn.recurrent import GRU, LSTM, SimpleRNN
from bigmodel.nn.recurrent_kernels import loop, roll_rows, run_sequence, valid_block
from rnn_numpy import keras_rnn, random_keras_weights

CLASSES = {"simple": SimpleRNN, "lstm": LSTM, "gru": GRU}
TORCH = {"simple": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def test_simple_rnn_is_the_textbook_equation_with_a_dense_per_step():
    """h_t = tanh(W h_{t-1} + U x_t + b), y_t = W_y h_t + b_y, against a NumPy loop."""
    rng = np.random.default_rng(0)
    batch, steps, features, units, outputs = 3, 7, 4, 5, 2
    U = rng.normal(0, 0.5, (units, features))      # input weights
    W = rng.normal(0, 0.5, (units, units))         # recurrent weights
    b = rng.normal(0, 0.5, units)
    W_y, b_y = rng.normal(0, 0.5, (outputs, units)), rng.normal(0, 0.5, outputs)
    x = rng.normal(size=(batch, steps, features))

    h = np.zeros((batch, units))
    expected_h, expected_y = [], []
    for t in range(steps):
        h = np.tanh(h @ W.T + x[:, t] @ U.T + b)
        expected_h.append(h)
        expected_y.append(h @ W_y.T + b_y)

    rnn = SimpleRNN(features, units)
    rnn.set_keras_weights([U.T, W.T, b])  # Keras shapes: kernel (F, u), recurrent (u, u)
    dense = nn.Linear(units, outputs)
    with torch.no_grad():
        dense.weight.copy_(torch.as_tensor(W_y))
        dense.bias.copy_(torch.as_tensor(b_y))
    hs, h_n = rnn(torch.as_tensor(x, dtype=torch.float32))
    ys = dense(hs)
    np.testing.assert_allclose(hs.detach().numpy(), np.stack(expected_h, 1), atol=1e-5)
    np.testing.assert_allclose(ys.detach().numpy(), np.stack(expected_y, 1), atol=1e-5)
    np.testing.assert_allclose(h_n[0].detach().numpy(), expected_h[-1], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_keras_weights_give_keras_equations(cell):
    rng = np.random.default_rng(1)
    weights = random_keras_weights(cell, 6, 4, rng)
    x = rng.normal(size=(3, 9, 6)).astype(np.float32)
    layer = CLASSES[cell](6, 4)
    layer.set_keras_weights(weights)
    out, state = layer(torch.from_numpy(x))
    ref_out, ref_h, ref_c = keras_rnn(cell, x, weights)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-5)
    h = state[0] if cell == "lstm" else state
    np.testing.assert_allclose(h[0].detach().numpy(), ref_h, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(state[1][0].detach().numpy(), ref_c, atol=1e-5)
    for got, want in zip(layer.get_keras_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_from_torch_matches_torch_nn_stacked_bidirectional(cell):
    torch.manual_seed(0)
    reference = TORCH[cell](5, 6, num_layers=2, bidirectional=True, batch_first=True)
    layer = CLASSES[cell].from_torch(reference)
    x = torch.randn(4, 7, 5)
    expected, expected_state = reference(x)
    got, state = layer(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(state if cell == "lstm" else (state,),
                    expected_state if cell == "lstm" else (expected_state,)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_parameter_counts_are_keras_counts():
    # Keras: LSTM 4*(u*(in+u) + u), GRU(reset_after) 3*(u*(in+u) + 2u), SimpleRNN u*(in+u) + u.
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(LSTM(28, 128)) == 80_384
    assert count(LSTM(128, 128)) == 131_584
    assert count(GRU(28, 128)) == 3 * (128 * (28 + 128) + 2 * 128)
    assert count(SimpleRNN(28, 128)) == 128 * (28 + 128) + 128
    assert count(LSTM(28, 128)) == count(nn.LSTM(28, 128)) - 4 * 128  # one bias, not two


def test_keras_initialization():
    torch.manual_seed(0)
    layer = LSTM(10, 8)
    kernel, recurrent, bias = layer.get_keras_weights()
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(8), atol=1e-5)  # orthogonal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    limit = np.sqrt(6 / (10 + 32))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(cell, bidirectional):
    torch.manual_seed(0)
    layer = CLASSES[cell](3, 5, num_layers=2, bidirectional=bidirectional).eval()
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 3)
    padded = x.clone()
    for row, length in enumerate(lengths):
        padded[row, length:] = 99.0  # garbage padding must not leak
    out, state = layer(padded, lengths=lengths)
    mask = torch.arange(6)[None] < lengths[:, None]
    out_mask, state_mask = layer(padded, mask=mask)
    torch.testing.assert_close(out, out_mask)
    # Left padding (valid steps at the end) through a mask: same per-sequence results.
    left = torch.full_like(x, -7.0)
    for row, length in enumerate(lengths):
        left[row, 6 - length:] = x[row, :length]
    out_left, state_left = layer(left, mask=torch.flip(mask, [1]))
    for row, length in enumerate(lengths):
        alone, alone_state = layer(x[row:row + 1, :length])
        torch.testing.assert_close(out[row, :length], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.all(out[row, length:] == 0)
        torch.testing.assert_close(out_left[row, 6 - length:], alone[0], atol=1e-5, rtol=1e-5)
        states = zip(state if cell == "lstm" else (state,),
                     alone_state if cell == "lstm" else (alone_state,),
                     state_left if cell == "lstm" else (state_left,))
        for got, want, got_left in states:
            torch.testing.assert_close(got[:, row], want[:, 0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got_left[:, row], want[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_reach_every_parameter(cell):
    torch.manual_seed(0)
    layer = CLASSES[cell](3, 4, num_layers=2, bidirectional=True, dropout=0.1)
    out, _ = layer(torch.randn(2, 5, 3), lengths=torch.tensor([5, 3]))
    out.square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_fused_and_loop_kernels_agree_with_numpy_on_masks(cell):
    """Keras mask semantics: contiguous masks take the fused op, masks with holes the loop."""
    rng = np.random.default_rng(2)
    weights = random_keras_weights(cell, 3, 4, rng)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    masks = {
        "right": np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                           [0, 0, 0, 0, 0, 0]], bool),
        "left": np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 1, 1, 1]], bool),
        "holes": np.array([[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 0, 0],
                           [1, 1, 0, 0, 1, 1]], bool),
    }
    t = [torch.from_numpy(w.T.copy() if i < 2 else w) for i, w in enumerate(weights)]
    initial = [torch.from_numpy(rng.normal(size=(4, 4)).astype(np.float32))
               for _ in range(2 if cell == "lstm" else 1)]
    for kind, mask in masks.items():
        for zero_output in (False, True):
            ref_out, ref_h, ref_c = keras_rnn(cell, x, weights, mask=mask,
                                              zero_output_for_mask=zero_output,
                                              initial_state=[s.numpy() for s in initial])
            for use_fused in (True, False):
                out, final = run_sequence(cell, torch.from_numpy(x), *t, initial,
                                          torch.from_numpy(mask), use_fused=use_fused,
                                          zero_output_for_mask=zero_output)
                where = f"{cell} {kind} zero_output={zero_output} fused={use_fused}"
                np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-5, err_msg=where)
                np.testing.assert_allclose(final[0].numpy(), ref_h, atol=1e-5, err_msg=where)
                if cell == "lstm":
                    np.testing.assert_allclose(final[1].numpy(), ref_c, atol=1e-5, err_msg=where)


def test_loop_gru_reset_before_and_custom_activations_match_numpy():
    rng = np.random.default_rng(3)
    weights = random_keras_weights("gru", 3, 4, rng, reset_after=False)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    t = [torch.from_numpy(w.T.copy() if i < 2 else w) for i, w in enumerate(weights)]
    out, final = loop("gru", torch.from_numpy(x), *t, [torch.zeros(2, 4)], reset_after=False,
                      activation=torch.relu, recurrent_activation=torch.nn.functional.hardsigmoid)
    hard_sigmoid = lambda v: np.clip(v / 6 + 0.5, 0, 1)  # noqa: E731
    ref_out, ref_h, _ = keras_rnn("gru", x, weights, reset_after=False,
                                  activation=lambda v: np.maximum(v, 0),
                                  recurrent_activation=hard_sigmoid)
    np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-5)
    np.testing.assert_allclose(final[0].numpy(), ref_h, atol=1e-5)


def test_mask_helpers():
    mask = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 0], [0, 1, 0]], dtype=torch.bool)
    start, length = valid_block(mask)
    assert start.tolist() == [0, 1, 0, 1] and length.tolist() == [2, 2, 0, 1]
    assert valid_block(torch.tensor([[1, 0, 1]], dtype=torch.bool)) is None
    x = torch.arange(6.0).view(2, 3, 1)
    assert roll_rows(x, torch.tensor([1, 2]))[..., 0].tolist() == [[1, 2, 0], [5, 3, 4]]


def test_lstm_runs_the_same_fused_op_as_torch_lstm():
    """One bias + a zero second bias feeds the op nn.LSTM calls: same numbers, same gradients."""
    torch.manual_seed(0)
    reference = nn.LSTM(8, 16, batch_first=True)
    layer = LSTM.from_torch(reference)
    x = torch.randn(5, 9, 8)
    out_ref, _ = reference(x)
    out, _ = layer(x)
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=1e-5)
    out_ref.sum().backward()
    out.sum().backward()
    torch.testing.assert_close(layer.kernel_l0.grad, reference.weight_ih_l0.grad, atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(layer.bias_l0.grad, reference.bias_ih_l0.grad, atol=1e-5, rtol=1e-5)


def test_bad_input_errors_name_the_module():
    layer = LSTM(4, 3)
    with pytest.raises(ShapeError, match=r"LSTM expects inputs of rank 3.*\(2, 5, 4, 1\)"):
        layer(torch.randn(2, 5, 4, 1))
    with pytest.raises(ShapeError, match="LSTM was built for 4 features per step; received inputs "
                                         "with 6"):
        layer(torch.randn(2, 5, 6))
    with pytest.raises(DataError, match=r"every length must be in \[1, 5\].*\[0, 5\]"):
        layer(torch.randn(2, 5, 4), lengths=torch.tensor([5, 0]))
    with pytest.raises(DataError, match=r"in \[1, 5\].*\[3, 6\]"):
        layer(torch.randn(2, 5, 4), lengths=[3, 6])
    with pytest.raises(ShapeError, match=r"one length per sequence, shape \(2,\)"):
        layer(torch.randn(2, 5, 4), lengths=[3, 4, 5])
    with pytest.raises(InputTypeError, match="must be integers"):
        layer(torch.randn(2, 5, 4), lengths=torch.tensor([3.0, 4.0]))
    with pytest.raises(ShapeError, match=r"mask must have shape \(batch, timesteps\) = \(2, 5\)"):
        layer(torch.randn(2, 5, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(DataError, match="mask has gaps"):
        layer(torch.randn(2, 5, 4), mask=torch.tensor([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))
    with pytest.raises(ShapeError, match=r"initial state must have shape .*\(1, 2, 3\)"):
        layer(torch.randn(2, 5, 4), state=(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3)))
    with pytest.raises(InputTypeError, match="expects a torch.Tensor"):
        layer(np.zeros((2, 5, 4)))
    with pytest.raises(ConfigError, match="'hidden_size' must be a positive int"):
        GRU(4, 0)
    with pytest.raises(ConfigError, match="'nonlinearity' must be 'tanh' or 'relu'"):
        SimpleRNN(4, 3, nonlinearity="sigmoid")
    with pytest.raises(ShapeError, match=r"Keras shape \(4, 12\)"):
        layer.set_keras_weights([np.zeros((5, 12)), np.zeros((3, 12)), np.zeros(12)])
    with pytest.raises(ConfigError, match="expects an nn.GRU"):
        GRU.from_torch(nn.LSTM(4, 3))
