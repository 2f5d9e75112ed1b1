"""RecurrentConv2d / RecurrentConv2D against an explicit NumPy unrolling of Liang & Hu's equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigmodel import keras
from bigmodel.errors import BigModelError, ConfigError, InputTypeError, ShapeError
from bigmodel.keras import layers
from bigmodel.nn.rcl import RecurrentConv2d


# -- NumPy reference ------------------------------------------------------------------------------
def np_correlate_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (B, C, H, W), w (O, C, kh, kw) odd -> (B, O, H, W): zero-padded cross-correlation."""
    kh, kw = w.shape[2:]
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    height, width = x.shape[2:]
    out = np.zeros((x.shape[0], w.shape[0], height, width))
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i:i + height, j:j + width]  # (B, C, H, W)
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out


def np_lrn(f: np.ndarray, size: int, alpha: float, beta: float) -> np.ndarray:
    """f_k / (1 + alpha/N * sum over the N maps centred on k of f^2) ** beta, zero maps outside."""
    channels = f.shape[1]
    out = np.empty_like(f)
    before = size // 2
    after = size - 1 - before
    for k in range(channels):
        low, high = max(0, k - before), min(channels, k + after + 1)
        total = (f[:, low:high] ** 2).sum(axis=1)
        out[:, k] = f[:, k] / (1.0 + alpha / size * total) ** beta
    return out


def np_rcl(u, w_f, w_r, b, steps, norm, size=None, alpha=1e-3, beta=0.75):
    def g(z):
        z = np.maximum(z, 0.0)
        return np_lrn(z, size, alpha, beta) if norm == "lrn" else z

    b = b[None, :, None, None]
    x = g(np_correlate_same(u, w_f) + b)
    for _ in range(steps):
        x = g(np_correlate_same(u, w_f) + np_correlate_same(x, w_r) + b)
    return x


def _params(layer: RecurrentConv2d) -> tuple[np.ndarray, ...]:
    return tuple(p.detach().double().numpy() for p in (layer.weight, layer.recurrent_weight,
                                                          layer.bias))


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("norm", ["lrn", None])
def test_matches_numpy_unrolling(steps, norm):
    torch.manual_seed(steps)
    layer = RecurrentConv2d(3, 16, kernel_size=3, recurrent_kernel_size=(3, 5), steps=steps,
                            norm=norm, lrn_alpha=0.5).double()
    with torch.no_grad():
        layer.bias.uniform_(-0.2, 0.2)
    u = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    expected = np_rcl(u.numpy(), *_params(layer), steps, norm, size=16 // 8 + 1, alpha=0.5)
    np.testing.assert_allclose(layer(u).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_steps_zero_is_a_plain_convolution():
    torch.manual_seed(0)
    layer = RecurrentConv2d(2, 5, kernel_size=5, steps=0, norm=None)
    conv = torch.nn.Conv2d(2, 5, 5, padding=2)
    with torch.no_grad():
        conv.weight.copy_(layer.weight)
        conv.bias.copy_(layer.bias.uniform_(-1, 1))
    x = torch.randn(3, 2, 9, 9)
    torch.testing.assert_close(layer(x), F.relu(conv(x)))
    # the recurrent kernel takes no part in the result
    with torch.no_grad():
        layer.recurrent_weight.mul_(10.0)
    torch.testing.assert_close(layer(x), F.relu(conv(x)))


def test_weights_are_shared_across_steps_and_all_get_gradients():
    counts = {sum(p.numel() for p in RecurrentConv2d(4, 8, steps=t, norm="lrn").parameters())
              for t in (0, 1, 3, 6)}
    assert counts == {4 * 8 * 9 + 8 * 8 * 9 + 8}
    layer = RecurrentConv2d(4, 8, steps=2, norm="batch")
    assert len(layer.batch_norms) == 3  # one BatchNorm per unfolded step
    layer(torch.randn(2, 4, 6, 6)).square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_batch_norm_option_matches_per_step_reference():
    torch.manual_seed(1)
    layer = RecurrentConv2d(2, 4, steps=2, norm="batch").eval()
    for bn in layer.batch_norms:  # distinct running statistics per step
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 2, 5, 5)
    pad = 1
    ff = F.conv2d(x, layer.weight, layer.bias, padding=pad)

    def bn(step, z):
        m = layer.batch_norms[step]
        return F.relu((z - m.running_mean[:, None, None]) / torch.sqrt(
            m.running_var[:, None, None] + m.eps) * m.weight[:, None, None] + m.bias[:, None, None])

    state = bn(0, ff)
    for step in (1, 2):
        state = bn(step, ff + F.conv2d(state, layer.recurrent_weight, padding=pad))
    torch.testing.assert_close(layer(x), state)


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_size": 4}, "odd"),
    ({"recurrent_kernel_size": (3, 2)}, "odd"),
    ({"steps": -1}, "steps"),
    ({"steps": 1.5}, "steps"),
    ({"norm": "layer"}, "norm"),
    ({"lrn_size": 0}, "lrn_size"),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RecurrentConv2d(3, 4, **kwargs)


def test_bad_inputs():
    layer = RecurrentConv2d(3, 4)
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        layer(torch.randn(2, 4, 5, 5))
    with pytest.raises(ShapeError):
        layer(torch.randn(3, 5, 5))
    with pytest.raises(InputTypeError, match="floating"):
        layer(torch.ones(1, 3, 5, 5, dtype=torch.int64))


# -- Keras layer ----------------------------------------------------------------------------------
def test_keras_layer_matches_torch_layer_with_keras_weight_order():
    torch.manual_seed(2)
    reference = RecurrentConv2d(2, 6, kernel_size=3, steps=2, norm="lrn")
    with torch.no_grad():
        reference.bias.uniform_(-0.1, 0.1)
    layer = layers.RecurrentConv2D(6, 3, steps=2)
    x = torch.rand(2, 5, 5, 2)
    layer(x)
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(3, 3, 2, 6), (3, 3, 6, 6), (6,)]
    layer.set_weights([reference.weight.detach().permute(2, 3, 1, 0).numpy(),
                       reference.recurrent_weight.detach().permute(2, 3, 1, 0).numpy(),
                       reference.bias.detach().numpy()])
    expected = reference(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(layer(x), expected)
    channels_first = layers.RecurrentConv2D(6, 3, steps=2, data_format="channels_first")
    channels_first(x.permute(0, 3, 1, 2))
    channels_first.set_weights(layer.get_weights())
    torch.testing.assert_close(channels_first(x.permute(0, 3, 1, 2)), expected.permute(0, 3, 1, 2))


def test_keras_layer_config_round_trip_and_errors():
    layer = layers.RecurrentConv2D(4, (3, 5), steps=1, normalization=None,
                                   kernel_regularizer="l2", name="rcl")
    clone = layers.deserialize_layer(layers.serialize_layer(layer))
    assert clone.get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 9, 7, 3)) == (None, 9, 7, 4)
    with pytest.raises(ConfigError, match="kernel_size"):
        layers.RecurrentConv2D(4, 2)
    with pytest.raises(ConfigError, match="steps"):
        layers.RecurrentConv2D(4, 3, steps=-2)
    with pytest.raises(ConfigError, match="normalization"):
        layers.RecurrentConv2D(4, 3, normalization="batch")
    built = layers.RecurrentConv2D(4, 3)
    built(torch.rand(1, 5, 5, 2))
    with pytest.raises(BigModelError):
        built(torch.rand(1, 5, 5, 3))


def test_keras_sequential_learns_and_round_trips(tmp_path):
    # Bars: class 0 horizontal, class 1 vertical, at random positions.
    rng = np.random.default_rng(0)
    x = np.zeros((128, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 2, 128)
    for n, label in enumerate(y):
        pos = rng.integers(1, 7)
        if label == 0:
            x[n, pos, 1:7, 0] = 1.0
        else:
            x[n, 1:7, pos, 0] = 1.0
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        layers.RecurrentConv2D(8, 3, steps=2, input_shape=(8, 8, 1)),
        layers.GlobalMaxPooling2D(),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    path = tmp_path / "rcl.safetensors"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=1e-6)
