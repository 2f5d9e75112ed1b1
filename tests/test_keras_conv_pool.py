"""Conv2D and pooling layers against SciPy / NumPy references (TensorFlow 'same' semantics)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d, correlate2d

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers as L


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's documented rule: out = ceil(n / s); the odd padded cell goes at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_reference(x, kernel, bias, strides, padding, dilation, groups):
    """NHWC cross-correlation summed over input channels with scipy.signal.correlate2d."""
    batch, _, _, _ = x.shape
    kh, kw, per_group, filters = kernel.shape
    dh, dw = dilation
    dilated = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1, per_group, filters), kernel.dtype)
    dilated[::dh, ::dw] = kernel
    if padding == "same":
        top, bottom = tf_same_pads(x.shape[1], dilated.shape[0], strides[0])
        left, right = tf_same_pads(x.shape[2], dilated.shape[1], strides[1])
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_per_group = filters // groups
    outputs = []
    for b in range(batch):
        maps = []
        for f in range(filters):
            g = f // out_per_group
            acc = sum(correlate2d(x[b, :, :, g * per_group + c], dilated[:, :, c, f], mode="valid")
                      for c in range(per_group))
            maps.append(acc[::strides[0], ::strides[1]] + bias[f])
        outputs.append(np.stack(maps, -1))
    return np.stack(outputs)


CASES = [
    # (H, W, C, filters, kernel, strides, padding, dilation, groups)
    (7, 6, 3, 4, (3, 3), (1, 1), "valid", (1, 1), 1),
    (7, 6, 3, 4, (3, 2), (1, 1), "same", (1, 1), 1),
    (7, 8, 2, 3, (3, 3), (2, 2), "valid", (1, 1), 1),
    (7, 8, 2, 3, (3, 3), (2, 2), "same", (1, 1), 1),
    (8, 8, 2, 3, (4, 4), (2, 3), "same", (1, 1), 1),
    (9, 9, 2, 2, (3, 3), (1, 1), "valid", (2, 2), 1),
    (9, 8, 2, 2, (3, 2), (1, 1), "same", (2, 2), 1),
    (6, 6, 4, 6, (3, 3), (1, 1), "same", (1, 1), 2),
    (6, 7, 4, 4, (2, 2), (2, 2), "same", (1, 1), 4),
]


@pytest.mark.parametrize("h, w, c, filters, kernel, strides, padding, dilation, groups", CASES)
def test_conv2d_matches_scipy(h, w, c, filters, kernel, strides, padding, dilation, groups):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, h, w, c)).astype(np.float32)
    layer = L.Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                     groups=groups, bias_initializer="random_normal")
    out = _np(layer(torch.tensor(x)))
    k, b = layer.get_weights()
    assert k.shape == (*kernel, c // groups, filters)
    expected = conv_reference(x.astype(np.float64), k.astype(np.float64), b, strides, padding,
                              dilation, groups)
    assert out.shape == expected.shape
    assert layer.compute_output_shape((None, h, w, c)) == (None, *expected.shape[1:])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size, stride", [(5, 1), (6, 1), (5, 2), (6, 2), (7, 2), (8, 3)])
def test_same_output_size_is_ceil(size, stride):
    layer = L.Conv2D(1, 3, strides=stride, padding="same")
    out = layer(torch.zeros(1, size, size, 1))
    assert tuple(out.shape) == (1, math.ceil(size / stride), math.ceil(size / stride), 1)


def test_same_stride_two_pads_bottom_right_like_tensorflow():
    # 6x6 ones, 3x3 ones kernel, stride 2: TF pads 0 rows on top and 1 at the bottom, so the
    # first window is fully inside (9) and the last one sees a 2x2 block of real cells (4).
    layer = L.Conv2D(1, 3, strides=2, padding="same", use_bias=False, kernel_initializer="ones")
    out = _np(layer(torch.ones(1, 6, 6, 1)))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[9, 9, 6], [9, 9, 6], [6, 6, 4]])
    # Stride 1, even kernel: total padding 1, the extra row/column again at the bottom/right.
    even = L.Conv2D(1, 2, padding="same", use_bias=False, kernel_initializer="ones")
    out = _np(even(torch.ones(1, 3, 3, 1)))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[4, 4, 2], [4, 4, 2], [2, 2, 1]])


def test_conv2d_parameter_counts_match_keras():
    def built(layer, shape):
        layer(torch.zeros(1, *shape))
        return layer.count_params()

    assert built(L.Conv2D(32, (3, 3)), (28, 28, 1)) == 320
    assert built(L.Conv2D(64, (3, 3)), (13, 13, 32)) == 18496
    assert built(L.Conv2D(64, 3, use_bias=False), (5, 5, 64)) == 36864
    assert built(L.Conv2D(8, 3, groups=4), (5, 5, 8)) == 3 * 3 * 2 * 8 + 8


def test_conv2d_weights_are_channels_last_and_roundtrip():
    torch.manual_seed(0)
    layer = L.Conv2D(5, 3, padding="same", activation="relu", kernel_regularizer="l2")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer(torch.tensor(x))
    assert tuple(layer.kernel.shape) == (5, 3, 3, 3)
    assert layer.kernel.is_contiguous(memory_format=torch.channels_last)
    k, _ = layer.get_weights()
    assert layer.regularization_losses()[0].item() == pytest.approx(0.01 * np.sum(k ** 2),
                                                                    rel=1e-5)
    expected = _np(layer(torch.tensor(x)))
    clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(layer))))
    clone(torch.tensor(x))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(torch.tensor(x))), expected, rtol=1e-6, atol=1e-6)
    assert clone.kernel.is_contiguous(memory_format=torch.channels_last)


def test_conv2d_channels_first_matches_channels_last():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 7, 3)
    last = L.Conv2D(4, 3, strides=2, padding="same")
    first = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")
    out_last = last(x)
    first(x.permute(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    out_first = first(x.permute(0, 3, 1, 2).contiguous())
    torch.testing.assert_close(out_first.permute(0, 2, 3, 1), out_last)
    assert first.compute_output_shape((None, 3, 7, 7)) == (None, 4, 4, 4)


def test_conv2d_logits_skip_activation():
    torch.manual_seed(0)
    layer = L.Conv2D(3, 1, activation="softmax")
    x = torch.randn(1, 2, 2, 4)
    torch.testing.assert_close(torch.softmax(layer.call_logits(x), -1), layer(x))


def test_conv2d_input_errors_name_the_layer():
    layer = L.Conv2D(32, (3, 3), name="conv_a")
    with pytest.raises(ShapeError, match=r"'conv_a'.*expected ndim=4, found ndim=3"):
        layer(torch.zeros(32, 28, 28))
    layer(torch.zeros(2, 8, 8, 1))
    with pytest.raises(ShapeError, match=r"'conv_a'.*expected axis -1 of input shape to have "
                                         r"value 1"):
        layer(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ShapeError, match="conv_b"):
        L.Conv2D(2, 5, name="conv_b")(torch.zeros(1, 3, 3, 1))
    with pytest.raises(ShapeError, match=r"conv_c.*groups=2"):
        L.Conv2D(4, 3, groups=2, name="conv_c")(torch.zeros(1, 5, 5, 3))


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": 0, "kernel_size": 3}, "filters=0"),
    ({"filters": 4, "kernel_size": 0}, "kernel_size=0"),
    ({"filters": 4, "kernel_size": (3, 3, 3)}, "kernel_size"),
    ({"filters": 4, "kernel_size": 3, "strides": 0}, "strides=0"),
    ({"filters": 4, "kernel_size": 3, "padding": "causal"}, "padding='causal'"),
    ({"filters": 5, "kernel_size": 3, "groups": 2}, "groups=2, filters=5"),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, "dilation_rate"),
    ({"filters": 4, "kernel_size": 3, "data_format": "nhwc"}, "data_format"),
])
def test_conv2d_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        L.Conv2D(name="conv_bad", **kwargs)
    assert "conv_bad" in str(info.value)


# ------------------------------------------------------------------------------ pooling
def pool_reference(x, pool, strides, padding, reduce):
    """Loop over output cells; 'same' windows are clipped to the image (TF: pads never count)."""
    batch, h, w, c = x.shape
    if padding == "same":
        out_h, out_w = math.ceil(h / strides[0]), math.ceil(w / strides[1])
        top = tf_same_pads(h, pool[0], strides[0])[0]
        left = tf_same_pads(w, pool[1], strides[1])[0]
    else:
        out_h = (h - pool[0]) // strides[0] + 1
        out_w = (w - pool[1]) // strides[1] + 1
        top = left = 0
    out = np.zeros((batch, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * strides[0] - top, j * strides[1] - left
            window = x[:, max(r0, 0):min(r0 + pool[0], h), max(c0, 0):min(c0 + pool[1], w), :]
            out[:, i, j, :] = reduce(window, axis=(1, 2))
    return out


POOL_CASES = [
    ((2, 2), None, "valid", (6, 7)),
    ((3, 3), (2, 2), "valid", (7, 7)),
    ((2, 2), None, "same", (5, 7)),
    ((3, 3), (2, 2), "same", (6, 6)),
    ((3, 3), (1, 1), "same", (5, 5)),
    ((2, 3), (2, 1), "same", (5, 6)),
    ((3, 3), (3, 3), "same", (7, 8)),
]


@pytest.mark.parametrize("pool, strides, padding, size", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "average"])
def test_pooling_matches_numpy(kind, pool, strides, padding, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *size, 3)).astype(np.float32)
    if kind == "max":
        layer, reduce = L.MaxPooling2D(pool, strides, padding), np.max
        x = x - 10.0  # all negative: a zero-padded max would be wrong at the border
    else:
        layer, reduce = L.AveragePooling2D(pool, strides, padding), np.mean
        x = x + 10.0  # all positive: averaging padded zeros would be visible at the border
    out = _np(layer(torch.tensor(x)))
    expected = pool_reference(x, pool, strides or pool, padding, reduce)
    assert out.shape == expected.shape
    assert layer.compute_output_shape((None, *size, 3)) == (None, *expected.shape[1:])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_pooling_same_border_values_explicit():
    x = torch.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # [[1,2,3],[4,5,6],[7,8,9]]
    avg = _np(L.AveragePooling2D(2, padding="same")(x))[0, :, :, 0]
    np.testing.assert_allclose(avg, [[3.0, 4.5], [7.5, 9.0]])  # edge windows: real cells only
    mx = _np(L.MaxPooling2D(2, padding="same")(-x))[0, :, :, 0]
    np.testing.assert_allclose(mx, [[-1.0, -3.0], [-7.0, -9.0]])


def test_global_pooling_and_errors():
    x = torch.randn(2, 4, 5, 3)
    torch.testing.assert_close(L.GlobalAveragePooling2D()(x), x.mean(dim=(1, 2)))
    torch.testing.assert_close(L.GlobalMaxPooling2D()(x), x.amax(dim=(1, 2)))
    keep = L.GlobalAveragePooling2D(keepdims=True)
    assert tuple(keep(x).shape) == (2, 1, 1, 3)
    assert keep.compute_output_shape((None, 4, 5, 3)) == (None, 1, 1, 3)
    assert L.GlobalMaxPooling2D().compute_output_shape((None, 4, 5, 3)) == (None, 3)
    cf = L.GlobalAveragePooling2D(data_format="channels_first")
    torch.testing.assert_close(cf(x.permute(0, 3, 1, 2)), x.mean(dim=(1, 2)))
    with pytest.raises(ShapeError, match="pool_a"):
        L.MaxPooling2D(name="pool_a")(torch.zeros(2, 4, 4))
    with pytest.raises(ShapeError, match="pool_b"):
        L.MaxPooling2D(3, name="pool_b")(torch.zeros(1, 2, 2, 1))
    with pytest.raises(ConfigError, match="pool_size"):
        L.MaxPooling2D(pool_size=0)
    with pytest.raises(ConfigError, match="padding"):
        L.AveragePooling2D(padding="full")


def test_pooling_channels_first_and_roundtrip():
    x = torch.randn(2, 5, 5, 3)
    last = L.MaxPooling2D(2, padding="same")
    first = L.MaxPooling2D(2, padding="same", data_format="channels_first")
    torch.testing.assert_close(first(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), last(x))
    clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(last))))
    torch.testing.assert_close(clone(x), last(x))
    assert clone.get_config()["strides"] == [2, 2]
    gap = L.GlobalAveragePooling2D(keepdims=True)
    gap_clone = L.deserialize_layer(json.loads(json.dumps(L.serialize_layer(gap))))
    torch.testing.assert_close(gap_clone(x), gap(x))


def test_seed_cnn_shapes_and_parameter_count():
    model = [L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
             L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
             L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"), L.Flatten(),
             L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")]
    x = torch.zeros(2, 28, 28, 1)
    shape = (None, 28, 28, 1)
    for layer in model:
        x = layer(x)
        shape = layer.compute_output_shape(shape)
        assert tuple(x.shape[1:]) == shape[1:]
    assert shape == (None, 10)
    assert sum(layer.count_params() for layer in model) == 93322


def test_textbook_convolution_is_the_flipped_kernel_form():
    """y(i,j) = sum x(i-p, j-q) w(p,q) (scipy convolve2d) equals Conv2D with the kernel flipped."""
    rng = np.random.default_rng(3)
    image = rng.normal(size=(9, 8)).astype(np.float32)
    kernel = rng.normal(size=(3, 3)).astype(np.float32)
    layer = L.Conv2D(1, (3, 3), use_bias=False)
    layer.build((None, 9, 8, 1))
    layer.set_weights([kernel[::-1, ::-1, None, None].copy()])
    got = _np(layer(torch.as_tensor(image[None, :, :, None])))[0, :, :, 0]
    np.testing.assert_allclose(got, convolve2d(image, kernel, mode="valid"), rtol=1e-5, atol=1e-5)
    layer.set_weights([kernel[:, :, None, None].copy()])
    got = _np(layer(torch.as_tensor(image[None, :, :, None])))[0, :, :, 0]
    np.testing.assert_allclose(got, correlate2d(image, kernel, mode="valid"), rtol=1e-5, atol=1e-5)
