"""NumPy implementations of Keras's recurrent equations: the independent reference for the tests.

Written from the equations (Keras 3's cells and its generic ``rnn`` loop), in float64, one step at a
time; weights in Keras shapes: kernel ``(F, G*u)``, recurrent_kernel ``(u, G*u)``, bias.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def keras_rnn(cell: str, x: np.ndarray, weights: list[np.ndarray], mask: np.ndarray | None = None,
              go_backwards: bool = False, zero_output_for_mask: bool = False,
              reset_after: bool = True, activation=np.tanh, recurrent_activation=sigmoid,
              initial_state: list[np.ndarray] | None = None):
    """Returns ``(outputs (B, T, u) in processing order, h, c)`` (``c`` None unless LSTM).

    A masked step keeps the states and outputs the previous ``h`` (zeros with
    ``zero_output_for_mask``), as Keras's ``rnn`` loop does.
    """
    x = np.asarray(x, np.float64)
    kernel, recurrent = (np.asarray(w, np.float64) for w in weights[:2])
    bias = np.asarray(weights[2], np.float64) if len(weights) > 2 else None
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    h = np.zeros((batch, units)) if initial_state is None else np.asarray(initial_state[0], float)
    c = np.zeros((batch, units))
    if cell == "lstm" and initial_state is not None:
        c = np.asarray(initial_state[1], float)
    outputs = []
    for t in (range(steps - 1, -1, -1) if go_backwards else range(steps)):
        x_t = x[:, t]
        c_new = None
        if cell == "simple":
            h_new = activation(x_t @ kernel + h @ recurrent + (0 if bias is None else bias))
        elif cell == "lstm":
            z = x_t @ kernel + h @ recurrent + (0 if bias is None else bias)
            i, f, g, o = np.split(z, 4, axis=1)
            c_new = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
            h_new = recurrent_activation(o) * activation(c_new)
        else:  # GRU, gates z, r, h
            if reset_after:
                b_in, b_rec = (0, 0) if bias is None else (bias[0], bias[1])
                x_z, x_r, x_h = np.split(x_t @ kernel + b_in, 3, axis=1)
                r_z, r_r, r_h = np.split(h @ recurrent + b_rec, 3, axis=1)
                z = recurrent_activation(x_z + r_z)
                r = recurrent_activation(x_r + r_r)
                candidate = activation(x_h + r * r_h)
            else:
                x_z, x_r, x_h = np.split(x_t @ kernel + (0 if bias is None else bias), 3, axis=1)
                z = recurrent_activation(x_z + h @ recurrent[:, :units])
                r = recurrent_activation(x_r + h @ recurrent[:, units:2 * units])
                candidate = activation(x_h + (r * h) @ recurrent[:, 2 * units:])
            h_new = z * h + (1 - z) * candidate
        if mask is None:
            out, h, c = h_new, h_new, (c_new if c_new is not None else c)
        else:
            keep = np.asarray(mask, bool)[:, t][:, None]
            out = np.where(keep, h_new, 0.0 if zero_output_for_mask else h)
            h = np.where(keep, h_new, h)
            if c_new is not None:
                c = np.where(keep, c_new, c)
        outputs.append(out)
    return np.stack(outputs, axis=1), h, (c if cell == "lstm" else None)


def random_keras_weights(cell: str, features: int, units: int, rng: np.random.Generator,
                         reset_after: bool = True, scale: float = 0.5) -> list[np.ndarray]:
    gates = {"simple": 1, "lstm": 4, "gru": 3}[cell]
    bias_shape = (2, 3 * units) if cell == "gru" and reset_after else (gates * units,)
    return [rng.normal(0, scale, (features, gates * units)).astype(np.float32),
            rng.normal(0, scale, (units, gates * units)).astype(np.float32),
            rng.normal(0, scale, bias_shape).astype(np.float32)]
