"""Layers added for Keras 3 conformance (issue 15): merge layers, Conv1D / transposed / separable /
depthwise convolutions, 1-D pooling, reshaping, activation and preprocessing layers, Lambda.

Numbers are checked against NumPy references written here; shapes and parameter counts against
Keras's formulas; and, where real Keras 3 is installed, against Keras itself on its torch backend
with the same weights (``tests/test_keras_layers_parity.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def run(layer, *inputs, **kwargs):
    args = list(inputs) if len(inputs) > 1 else inputs[0]
    if isinstance(args, list):
        args = [torch.as_tensor(a) for a in args]
    else:
        args = torch.as_tensor(args)
    return layer(args, **kwargs).detach().numpy()


# ----------------------------------------------------------------------------- NumPy references
def np_conv1d(x, kernel, bias, stride=1, padding="valid", dilation=1):
    """x (B, T, C), kernel (k, C, F) Keras layout; TensorFlow padding."""
    k = kernel.shape[0]
    keff = (k - 1) * dilation + 1
    t = x.shape[1]
    if padding == "same":
        out = -(-t // stride)
        total = max((out - 1) * stride + keff - t, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    elif padding == "causal":
        x = np.pad(x, ((0, 0), (keff - 1, 0), (0, 0)))
    out_len = (x.shape[1] - keff) // stride + 1
    y = np.zeros((x.shape[0], out_len, kernel.shape[2]), np.float64)
    for i in range(out_len):
        for j in range(k):
            y[:, i] += x[:, i * stride + j * dilation] @ kernel[j]
    return y + bias


def np_conv_transpose_1d(x, kernel, bias, stride, padding, output_padding=None):
    """Textbook scatter form; kernel (k, F, C) Keras layout; output window per Keras/TF."""
    k = kernel.shape[0]
    n = x.shape[1]
    full = np.zeros((x.shape[0], (n - 1) * stride + k, kernel.shape[1]))
    for i in range(n):
        for j in range(k):
            full[:, i * stride + j] += x[:, i] @ kernel[j].T
    if padding == "valid":
        length = (n - 1) * stride + max(k, stride) if output_padding is None else (
            (n - 1) * stride + k + output_padding)
        start = 0
    else:
        length = n * stride if output_padding is None else (n - 1) * stride + k % 2 + output_padding
        # TF: the transposed conv is the gradient of a 'same' conv from `length` to `n`.
        total = max((n - 1) * stride + k - length, 0)
        start = total // 2
    padded = np.zeros((x.shape[0], max(length + start, full.shape[1]), kernel.shape[1]))
    padded[:, :full.shape[1]] = full
    return padded[:, start:start + length] + bias


def np_depthwise2d(x, kernel, stride=1):
    """x (B, H, W, C), kernel (kh, kw, C, M), valid padding -> (B, H', W', C*M)."""
    kh, kw, c, m = kernel.shape
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, c, m))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            y[:, i, j] = np.einsum("bhwc,hwcm->bcm", patch, kernel)
    return y.reshape(x.shape[0], ho, wo, c * m)


# ----------------------------------------------------------------------------- merge layers
@pytest.mark.parametrize("cls,fn,ref", [
    (layers.Add, layers.add, lambda a, b, c: a + b + c),
    (layers.Multiply, layers.multiply, lambda a, b, c: a * b * c),
    (layers.Average, layers.average, lambda a, b, c: (a + b + c) / 3),
    (layers.Maximum, layers.maximum, lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    (layers.Minimum, layers.minimum, lambda a, b, c: np.minimum(np.minimum(a, b), c)),
])
def test_elementwise_merges_match_numpy(cls, fn, ref):
    a, b, c = rand(4, 3, 5), rand(4, 3, 5), rand(4, 1, 5)  # c broadcasts along axis 1
    np.testing.assert_allclose(run(cls(), a, b, c), ref(a, b, c), rtol=1e-6, atol=1e-6)
    inputs = [keras.Input((3, 5)), keras.Input((3, 5)), keras.Input((1, 5))]
    out = fn(inputs)
    assert out.shape == (None, 3, 5)
    model = keras.Model(inputs, out)
    # (multi-input predict/fit of arrays belongs to Model; the graph itself is checked here)
    got = model([torch.as_tensor(a), torch.as_tensor(b), torch.as_tensor(c)]).detach().numpy()
    np.testing.assert_allclose(got, ref(a, b, c), rtol=1e-6, atol=1e-6)


def test_subtract_concatenate_dot():
    a, b = rand(4, 6), rand(4, 6)
    np.testing.assert_allclose(run(layers.Subtract(), a, b), a - b)
    c = rand(4, 2)
    np.testing.assert_allclose(run(layers.Concatenate(), a, c), np.concatenate([a, c], -1))
    x, y = rand(2, 3, 4), rand(2, 5, 4)
    np.testing.assert_allclose(run(layers.Concatenate(axis=1), x, y), np.concatenate([x, y], 1))
    assert layers.Concatenate(axis=1).compute_output_shape([(None, 3, 4), (None, 5, 4)]) == (
        None, 8, 4)
    # Dot: (B, d) . (B, d) -> (B, 1); (B, n, d) x (B, m, d) on axes 2 -> (B, n, m)
    np.testing.assert_allclose(run(layers.Dot(axes=1), a, b), np.sum(a * b, -1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(layers.Dot(axes=(2, 2)), x, y),
                               np.einsum("bnd,bmd->bnm", x, y), rtol=1e-5, atol=1e-6)
    assert layers.Dot(axes=(2, 2)).compute_output_shape([(None, 3, 4), (None, 5, 4)]) == (
        None, 3, 5)
    cos = run(layers.Dot(axes=1, normalize=True), a, b)
    expected = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(cos[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_merge_bad_inputs_name_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"add_bad.*\(3,\).*\(4,\)|add_bad.*\(4,\).*\(3,\)"):
        layers.Add(name="add_bad")([keras.Input((3,)), keras.Input((4,))])
    with pytest.raises(ShapeError, match="concat_bad.*matching shapes"):
        layers.Concatenate(name="concat_bad")([keras.Input((3, 4)), keras.Input((5, 6))])
    with pytest.raises(ShapeError, match="exactly 2 inputs"):
        layers.Subtract()([keras.Input((3,))] * 3)
    with pytest.raises(ShapeError, match="list of inputs"):
        layers.Add()(keras.Input((3,)))
    with pytest.raises(ShapeError, match=r"axis values 3 .* != 4"):
        layers.Dot(axes=1)([keras.Input((3,)), keras.Input((4,))])
    with pytest.raises(ShapeError, match="incompatible shapes"):
        layers.Add()([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ConfigError, match="axes"):
        layers.Dot(axes="last")
    with pytest.raises(ConfigError, match="axis"):
        layers.Concatenate(axis=1.5)


def test_merge_masks_are_ored():
    a, b = torch.ones(2, 3, 4), torch.ones(2, 3, 4)
    ma = torch.tensor([[True, False, False], [True, True, False]])
    mb = torch.tensor([[False, True, False], [True, False, False]])
    out = layers.Add()([a, b], mask=[ma, mb])
    assert torch.equal(out._keras_mask, ma | mb)
    cat = layers.Concatenate()([a, b], mask=[ma, None])
    assert torch.equal(cat._keras_mask, torch.ones(2, 3, dtype=torch.bool))


def test_functional_model_with_merges_trains():
    torch.manual_seed(0)
    x1, x2 = rand(256, 6), rand(256, 6)
    y = (x1[:, :1] * 2 - x2[:, 1:2] + 0.5 * x1[:, 2:3] * x2[:, 2:3]).astype(np.float32)
    inputs = keras.Input((12,))  # two branches from one input (Model owns multi-input fit)
    a = layers.Lambda(lambda t: t[:, :6], output_shape=(6,))(inputs)
    b = layers.Lambda(lambda t: t[:, 6:])(inputs)
    ha, hb = layers.Dense(8, activation="tanh")(a), layers.Dense(8, activation="tanh")(b)
    merged = layers.concatenate([layers.add([ha, hb]), layers.multiply([ha, hb]),
                                 layers.Dot(axes=1)([ha, hb])])
    assert merged.shape == (None, 17)
    model = keras.Model(inputs, layers.Dense(1)(merged))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(np.concatenate([x1, x2], 1), y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]
    assert model.count_params() == 2 * (6 * 8 + 8) + (8 + 8 + 1) + 1


def test_merge_get_config_round_trip():
    for layer in (layers.Concatenate(axis=1, name="c"), layers.Dot(axes=[1, 2], normalize=True),
                  layers.Add(name="a")):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config


# ----------------------------------------------------------------------------- convolutions
@pytest.mark.parametrize("padding,strides,dilation", [
    ("valid", 1, 1), ("same", 2, 1), ("causal", 1, 2), ("same", 1, 3), ("valid", 3, 1)])
def test_conv1d_matches_numpy(padding, strides, dilation):
    layer = layers.Conv1D(4, 3, strides=strides, padding=padding, dilation_rate=dilation)
    x = rand(2, 11, 5)
    out = run(layer, x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 5, 4) and bias.shape == (4,)
    np.testing.assert_allclose(out, np_conv1d(x, kernel, bias, strides, padding, dilation),
                               rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 11, 5)) == (None, out.shape[1], 4)
    assert layer.count_params() == 3 * 5 * 4 + 4


def test_conv1d_groups_and_bad_arguments():
    layer = layers.Conv1D(6, 2, groups=3)
    layer.build((None, 7, 3))
    assert layer.count_params() == 2 * 1 * 6 + 6
    with pytest.raises(ConfigError, match="padding"):
        layers.Conv1D(4, 3, padding="full")
    with pytest.raises(ConfigError, match="filters"):
        layers.Conv1D("4", 3)
    with pytest.raises(ConfigError, match="dilation_rate"):
        layers.Conv1D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ShapeError, match="ndim=3"):
        layers.Conv1D(4, 3)(keras.Input((5, 5, 3)))


@pytest.mark.parametrize("padding,strides,kernel,output_padding", [
    ("valid", 2, 3, None), ("same", 2, 3, None), ("valid", 3, 2, None), ("same", 1, 4, None),
    ("same", 2, 4, 1), ("valid", 2, 3, 1), ("same", 3, 5, None)])
def test_conv1d_transpose_matches_numpy(padding, strides, kernel, output_padding):
    layer = layers.Conv1DTranspose(3, kernel, strides=strides, padding=padding,
                                   output_padding=output_padding, bias_initializer="ones")
    x = rand(2, 5, 4)
    out = run(layer, x)
    w, b = layer.get_weights()
    assert w.shape == (kernel, 3, 4)
    ref = np_conv_transpose_1d(x, w, b, strides, padding, output_padding)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_conv2d_transpose_shapes_and_values():
    layer = layers.Conv2DTranspose(6, 3, strides=2, padding="same")
    x = rand(2, 4, 5, 3)
    out = run(layer, x)
    assert out.shape == (2, 8, 10, 6)
    assert layer.count_params() == 3 * 3 * 6 * 3 + 6
    assert layers.Conv2DTranspose(6, (3, 2), strides=(2, 3)).compute_output_shape(
        (None, 4, 5, 3)) == (None, 9, 15, 6)
    # A 2-D transposed conv with a (k, 1) kernel on width-1 images is the 1-D one.
    one_d = layers.Conv1DTranspose(6, 3, strides=2, padding="same")
    one_d.build((None, 4, 3))
    kernel2d = layer.get_weights()[0][:, 1:2]  # (3, 1, 6, 3)
    one_d.set_weights([kernel2d[:, 0], layer.get_weights()[1]])
    layer2 = layers.Conv2DTranspose(6, (3, 1), strides=(2, 1), padding="same")
    layer2.build((None, 4, 1, 3))
    layer2.set_weights([kernel2d, layer.get_weights()[1]])
    column = x[:, :, :1]
    np.testing.assert_allclose(run(layer2, column)[:, :, 0], run(one_d, column[:, :, 0]),
                               rtol=1e-5, atol=1e-5)


def test_depthwise_and_separable_conv2d_match_numpy():
    x = rand(2, 7, 6, 3)
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, bias_initializer="ones")
    out = run(depthwise, x)
    kernel, bias = depthwise.get_weights()
    assert kernel.shape == (3, 3, 3, 2) and bias.shape == (6,)
    np.testing.assert_allclose(out, np_depthwise2d(x, kernel) + bias, rtol=1e-5, atol=1e-5)
    separable = layers.SeparableConv2D(5, 3, depth_multiplier=2)
    out = run(separable, x)
    dw, pw, b = separable.get_weights()
    assert dw.shape == (3, 3, 3, 2) and pw.shape == (1, 1, 6, 5) and b.shape == (5,)
    assert separable.count_params() == 3 * 3 * 3 * 2 + 6 * 5 + 5
    ref = np_depthwise2d(x, dw) @ pw[0, 0] + b
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    strided = layers.SeparableConv2D(4, 3, strides=2, padding="same")
    assert run(strided, x).shape == (2, 4, 3, 4)
    sep1d = layers.SeparableConv1D(4, 3, padding="same")
    assert run(sep1d, rand(2, 9, 3)).shape == (2, 9, 4)
    assert sep1d.count_params() == 3 * 3 * 1 + 3 * 4 + 4


def test_conv_get_config_round_trip():
    for layer in (layers.Conv1D(4, 3, padding="causal", groups=2, activation="relu"),
                  layers.Conv2DTranspose(4, 3, strides=2, output_padding=1),
                  layers.SeparableConv2D(4, (3, 2), depth_multiplier=3),
                  layers.DepthwiseConv2D(3, depth_multiplier=2)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


# ----------------------------------------------------------------------------- pooling 1-D
def test_pooling_1d():
    x = rand(2, 7, 3)
    out = run(layers.MaxPooling1D(2), x)
    np.testing.assert_allclose(out, np.maximum(x[:, 0:6:2], x[:, 1:6:2]))
    out = run(layers.AveragePooling1D(3, strides=2, padding="same"), x)
    # TF 'same': out 4, total pad 2 -> 1 before, 1 after; windows average real cells only
    starts = [-1, 1, 3, 5]
    ref = np.stack([x[:, max(s, 0):min(s + 3, 7)].mean(1) for s in starts], 1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run(layers.GlobalAveragePooling1D(), x), x.mean(1), rtol=1e-6)
    np.testing.assert_allclose(run(layers.GlobalMaxPooling1D(), x), x.max(1))
    assert layers.GlobalMaxPooling1D(keepdims=True).compute_output_shape((None, 7, 3)) == (
        None, 1, 3)
    mask = torch.tensor([[True] * 3 + [False] * 4, [True] * 7])
    masked = layers.GlobalAveragePooling1D()(torch.as_tensor(x), mask=mask).numpy()
    np.testing.assert_allclose(masked[0], x[0, :3].mean(0), rtol=1e-6)


# ----------------------------------------------------------------------------- reshaping
def test_reshaping_layers():
    x = rand(2, 4)
    np.testing.assert_allclose(run(layers.RepeatVector(3), x), np.repeat(x[:, None], 3, 1))
    y = rand(2, 3, 4, 5)
    np.testing.assert_allclose(run(layers.Permute((3, 1, 2)), y), y.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(run(layers.UpSampling2D((2, 3)), y),
                               y.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_allclose(run(layers.ZeroPadding2D(((1, 0), (2, 1))), y),
                               np.pad(y, ((0, 0), (1, 0), (2, 1), (0, 0))))
    np.testing.assert_allclose(run(layers.Cropping2D(((1, 0), (1, 2))), y), y[:, 1:, 1:2])
    z = np.arange(30.0, dtype=np.float32).reshape(2, 5, 3)
    np.testing.assert_allclose(run(layers.Cropping1D((1, 2)), z), z[:, 1:3])
    np.testing.assert_allclose(run(layers.ZeroPadding1D(2), z), np.pad(z, ((0, 0), (2, 2), (0, 0))))
    np.testing.assert_allclose(run(layers.UpSampling1D(2), z), z.repeat(2, axis=1))
    assert layers.ZeroPadding2D(2).compute_output_shape((None, 5, None, 3)) == (None, 9, None, 3)
    with pytest.raises(ShapeError, match="leaves nothing"):
        layers.Cropping2D(3)(keras.Input((4, 4, 1)))
    with pytest.raises(ConfigError, match="permutation"):
        layers.Permute((1, 3))
    with pytest.raises(ConfigError, match="padding"):
        layers.ZeroPadding2D((1, 2, 3))


# ----------------------------------------------------------------------------- activations
def test_activation_layers():
    x = rand(3, 5) * 3
    np.testing.assert_allclose(run(layers.LeakyReLU(), x), np.where(x > 0, x, 0.3 * x), rtol=1e-6)
    np.testing.assert_allclose(run(layers.ReLU(max_value=1.0), x), np.clip(x, 0, 1))
    np.testing.assert_allclose(run(layers.ELU(0.5), x), np.where(x > 0, x, 0.5 * np.expm1(x)),
                               rtol=1e-5, atol=1e-6)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(run(layers.Softmax(), x), e / e.sum(-1, keepdims=True), rtol=1e-5)
    mask = torch.tensor([[True, True, False, True, False]] * 3)
    masked = layers.Softmax()(torch.as_tensor(x), mask=mask).numpy()
    assert np.all(masked[:, [2, 4]] == 0)
    np.testing.assert_allclose(masked.sum(-1), 1, rtol=1e-5)
    prelu = layers.PReLU(alpha_initializer="ones", shared_axes=[1])
    out = run(prelu, rand(2, 4, 3))
    assert prelu.get_weights()[0].shape == (1, 3) and prelu.count_params() == 3
    assert np.allclose(out, out)  # finite
    prelu.set_weights([np.full((1, 3), 0.25, np.float32)])
    z = rand(2, 4, 3)
    np.testing.assert_allclose(run(prelu, z), np.where(z > 0, z, 0.25 * z), rtol=1e-6)
    with pytest.warns(UserWarning, match="negative_slope"):
        assert layers.LeakyReLU(alpha=0.1).negative_slope == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="negative_slope"):
        layers.LeakyReLU(-1)
    with pytest.raises(ConfigError, match="axis"):
        layers.Softmax(axis="last")


# ----------------------------------------------------------------------------- preprocessing
def test_rescaling_normalization_resizing_centercrop():
    img = RNG.integers(0, 256, (2, 6, 8, 3)).astype(np.uint8)
    np.testing.assert_allclose(run(layers.Rescaling(1 / 127.5, offset=-1), img),
                               img / 127.5 - 1, rtol=1e-6, atol=1e-6)
    data = rand(100, 4) * 3 + 2
    norm = layers.Normalization()
    norm.adapt(data)
    mean, var, count = norm.get_weights()
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, data.var(0), rtol=1e-5)
    assert norm.count_params() == 4 + 4 + 1
    np.testing.assert_allclose(run(norm, data), (data - data.mean(0)) / data.std(0), rtol=1e-4,
                               atol=1e-4)
    batched = layers.Normalization()
    batched.adapt([data[:30], data[30:]])  # an iterable of batches: same statistics
    np.testing.assert_allclose(batched.get_weights()[1], data.var(0), rtol=1e-5)
    fixed = layers.Normalization(mean=2.0, variance=4.0)
    np.testing.assert_allclose(run(fixed, data), (data - 2) / 2, rtol=1e-6)
    assert fixed.count_params() == 0
    inverse = layers.Normalization(mean=[1, 2, 3, 4], variance=[1, 4, 9, 16], invert=True)
    np.testing.assert_allclose(run(inverse, np.ones((2, 4), np.float32)), [[2, 4, 6, 8]] * 2)
    crop = run(layers.CenterCrop(4, 4), img)
    np.testing.assert_array_equal(crop, img[:, 1:5, 2:6].astype(np.float32))
    resized = run(layers.Resizing(3, 4), img)
    ref = torch.nn.functional.interpolate(torch.as_tensor(img).float().permute(0, 3, 1, 2),
                                          size=(3, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resized, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5)
    with pytest.raises(ConfigError, match="both `mean` and `variance`"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ShapeError, match="incompatible shape"):
        norm.adapt(rand(10, 5))
    for layer in (layers.Normalization(axis=(1, 2)), layers.Rescaling(2.0, 1.0),
                  layers.Resizing(4, 5, interpolation="nearest"), layers.CenterCrop(2, 3)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


# ----------------------------------------------------------------------------- Lambda & co.
def test_lambda_identity_input_and_noise_layers():
    inputs = layers.Input((4,))
    assert isinstance(inputs, keras.KerasTensor) and keras.Input is layers.Input
    doubled = layers.Lambda(lambda t: t * 2)(inputs)
    assert doubled.shape == (None, 4)
    pair = layers.Lambda(lambda ts: torch.cat(ts, -1), output_shape=(8,))([inputs, doubled])
    assert pair.shape == (None, 8)
    model = keras.Model(inputs, layers.Identity()(pair))
    x = rand(3, 4)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.concatenate([x, 2 * x], -1),
                               rtol=1e-6)
    scaled = layers.Lambda(lambda t, factor: t * factor, arguments={"factor": 3.0})
    np.testing.assert_allclose(run(scaled, x), 3 * x, rtol=1e-6)
    config = layers.Lambda(lambda t: t + 1).get_config()
    assert config["function"]["class_name"] == "__lambda__"
    with pytest.raises(ConfigError, match="executing Python bytecode"):
        layers.Lambda.from_config(config)
    with pytest.raises(ConfigError, match="callable"):
        layers.Lambda(3)
    y = torch.ones(8, 10, 6)
    assert torch.equal(layers.SpatialDropout1D(0.5)(y, training=False), y)
    dropped = layers.SpatialDropout1D(0.5, seed=1)(y, training=True)
    per_channel = dropped[:, 0, :]
    assert torch.all(dropped == per_channel[:, None, :])  # whole channels dropped
    assert torch.all((per_channel == 0) | (per_channel == 2))
    noisy = layers.GaussianNoise(0.1, seed=0)(torch.zeros(2000), training=True)
    assert abs(float(noisy.std()) - 0.1) < 0.01
    reg = layers.ActivityRegularization(l1=0.01)
    out = reg(torch.ones(2, 3))
    assert torch.equal(out, torch.ones(2, 3)) and len(reg.losses) == 1
