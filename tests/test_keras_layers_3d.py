"""3-D layers (Conv3D, Conv3DTranspose, 3-D pooling, Cropping3D, UpSampling3D, ZeroPadding3D,
SpatialDropout3D), adaptive pooling (1-D/2-D/3-D) and DepthwiseConv1D: outputs against real
Keras 3 (torch backend) given the same weights, NumPy references (a direct 3-D convolution, the
adaptive-pooling windows), output shapes on symbolic inputs, parameter counts, ``get_config``
keys, ``.keras`` archives both ways, a tiny Conv3D model that learns, and bad arguments/inputs.
Volumes are tiny (4x4x4) to keep the file fast."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
real = pytest.importorskip("keras")
if real.backend.backend() != "torch":  # pragma: no cover - another backend was chosen first
    pytest.skip("real Keras runs on another backend", allow_module_level=True)

from bigmodel import keras  # noqa: E402
from bigmodel.errors import ConfigError, ShapeError  # noqa: E402
from bigmodel.keras import layers  # noqa: E402
from test_keras_archives import _both_ways, rk  # noqa: E402,F401 - helper and fixture

RNG = np.random.default_rng(3)
CF = "channels_first"

# (class name, arguments, input shape with batch)
CASES = [
    ("Conv3D", dict(filters=3, kernel_size=2), (2, 4, 4, 4, 2)),
    ("Conv3D", dict(filters=3, kernel_size=3, strides=2, padding="same"), (2, 4, 5, 4, 2)),
    ("Conv3D", dict(filters=2, kernel_size=(2, 1, 2), dilation_rate=(1, 2, 1)), (2, 4, 4, 4, 2)),
    ("Conv3D", dict(filters=4, kernel_size=2, groups=2, activation="relu"), (2, 4, 4, 4, 2)),
    ("Conv3D", dict(filters=3, kernel_size=2, padding="same", data_format=CF), (2, 2, 4, 4, 4)),
    ("Conv3DTranspose", dict(filters=2, kernel_size=2, strides=2), (2, 3, 2, 3, 2)),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same"),
     (2, 3, 2, 3, 2)),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=1,
                             data_format=CF), (2, 2, 2, 3, 2)),
    ("DepthwiseConv1D", dict(kernel_size=3), (2, 7, 3)),
    ("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same"),
     (2, 7, 3)),
    ("DepthwiseConv1D", dict(kernel_size=2, dilation_rate=2, data_format=CF), (2, 3, 7)),
    ("MaxPooling3D", dict(), (2, 4, 4, 4, 2)),
    ("MaxPooling3D", dict(pool_size=3, strides=2, padding="same"), (2, 4, 5, 3, 2)),
    ("MaxPooling3D", dict(pool_size=(2, 1, 2), data_format=CF), (2, 2, 4, 4, 4)),
    ("AveragePooling3D", dict(pool_size=2), (2, 4, 4, 4, 2)),
    # Symmetric 'same' padding only (see the AveragePooling1D note in test_keras_layers_parity).
    ("AveragePooling3D", dict(pool_size=3, strides=1, padding="same"), (2, 4, 3, 4, 2)),
    ("AveragePooling3D", dict(pool_size=(1, 2, 2), data_format=CF), (2, 2, 4, 4, 4)),
    ("GlobalAveragePooling3D", dict(), (2, 4, 3, 2, 2)),
    ("GlobalAveragePooling3D", dict(keepdims=True, data_format=CF), (2, 2, 4, 3, 2)),
    ("GlobalMaxPooling3D", dict(keepdims=True), (2, 4, 3, 2, 2)),
    ("GlobalMaxPooling3D", dict(data_format=CF), (2, 2, 4, 3, 2)),
    ("Cropping3D", dict(), (2, 4, 4, 4, 2)),
    ("Cropping3D", dict(cropping=((1, 0), (0, 2), (1, 1)), data_format=CF), (2, 2, 4, 4, 4)),
    ("ZeroPadding3D", dict(padding=(1, 0, 2)), (2, 2, 3, 2, 2)),
    ("ZeroPadding3D", dict(padding=((0, 1), (2, 0), (1, 1)), data_format=CF), (2, 2, 2, 3, 2)),
    ("UpSampling3D", dict(), (2, 2, 3, 2, 2)),
    ("UpSampling3D", dict(size=(1, 2, 3), data_format=CF), (2, 2, 2, 3, 2)),
    ("SpatialDropout3D", dict(rate=0.3), (2, 2, 3, 2, 2)),  # inference: the identity
    ("AdaptiveAveragePooling1D", dict(output_size=3), (2, 7, 2)),
    ("AdaptiveAveragePooling2D", dict(output_size=(3, 2), data_format=CF), (2, 2, 5, 4)),
    ("AdaptiveAveragePooling3D", dict(output_size=(2, 3, 2)), (2, 4, 5, 3, 2)),
    ("AdaptiveMaxPooling1D", dict(output_size=4, data_format=CF), (2, 2, 7)),
    ("AdaptiveMaxPooling2D", dict(output_size=3), (2, 5, 4, 2)),
    ("AdaptiveMaxPooling3D", dict(output_size=2, data_format=CF), (2, 2, 5, 3, 4)),
]


@pytest.mark.parametrize("name,kwargs,shape", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layer_matches_real_keras(name, kwargs, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    theirs = getattr(real.layers, name)(**kwargs)
    expected = real.ops.convert_to_numpy(theirs(x))
    ours = getattr(layers, name)(**kwargs)
    if theirs.weights:
        ours._maybe_build((None, *shape[1:]))
        weights = [real.ops.convert_to_numpy(w) for w in theirs.weights]
        assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
        ours.set_weights([w + RNG.uniform(0.1, 0.3, w.shape).astype(np.float32)
                          for w in weights])  # non-zero biases too
        theirs.set_weights(ours.get_weights())
        expected = real.ops.convert_to_numpy(theirs(x))
    got = ours(torch.as_tensor(x)).detach().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert ours.count_params() == theirs.count_params()
    symbolic = (None, *shape[1:])
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(
        theirs.compute_output_shape(symbolic))
    # A fresh layer called on a symbolic (functional) input gives Keras's shape too.
    out = getattr(layers, name)(**kwargs)(keras.Input(shape[1:]))
    assert tuple(out.shape) == tuple(theirs.compute_output_shape(symbolic))


@pytest.mark.parametrize("name,kwargs", [c[:2] for c in CASES],
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_config_keys_and_real_keras_config(name, kwargs):
    """Same ``get_config`` keys as Keras; Keras's config builds the same layer here."""
    theirs = getattr(real.layers, name)(**kwargs).get_config()
    ours = getattr(layers, name)(**kwargs).get_config()
    assert set(ours) == set(theirs) - {"dtype"}  # a dtype policy is written only when set
    # Initializer configs and dtype policies are checked elsewhere (test_keras_config_keys).
    config = {k: v for k, v in theirs.items() if k != "dtype" and not k.endswith("_initializer")}
    rebuilt = getattr(layers, name).from_config(config).get_config()

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    assert {k: plain(rebuilt[k]) for k in config} == {k: plain(v) for k, v in config.items()}
    assert getattr(layers, name).from_config(ours).get_config() == ours


def test_aliases_are_the_classes():
    for alias, cls in [("Convolution3D", "Conv3D"), ("Convolution3DTranspose", "Conv3DTranspose"),
                       ("MaxPool3D", "MaxPooling3D"), ("AvgPool3D", "AveragePooling3D"),
                       ("GlobalAvgPool3D", "GlobalAveragePooling3D"),
                       ("GlobalMaxPool3D", "GlobalMaxPooling3D")]:
        assert getattr(layers, alias) is getattr(layers, cls)
    assert layers.Conv3D(2, 3).name.startswith("conv3d")


def _np_conv3d_valid(x, kernel, bias):
    """Cross-correlation, stride 1, no padding: (B, D, H, W, C) * (kd, kh, kw, C, F)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:3], axis=(1, 2, 3))
    return np.einsum("bdhwcijk,ijkcf->bdhwf", windows, kernel) + bias


def test_conv3d_matches_numpy():
    layer = layers.Conv3D(3, (2, 3, 2), bias_initializer="ones")
    x = RNG.standard_normal((2, 4, 4, 4, 2)).astype(np.float32)
    out = layer(torch.as_tensor(x)).detach().numpy()
    kernel, bias = layer.get_weights()
    assert kernel.shape == (2, 3, 2, 2, 3) and out.shape == (2, 3, 2, 3, 3)
    np.testing.assert_allclose(out, _np_conv3d_valid(x, kernel, bias), rtol=1e-5, atol=1e-5)
    assert layer.count_params() == 2 * 3 * 2 * 2 * 3 + 3


def _np_adaptive(x, output_size, reduce):
    """Adaptive pooling of channels-last ``x`` by its definition: output cell i of an axis of n
    cells reduces cells floor(i * n / m) .. ceil((i + 1) * n / m) - 1."""
    for axis, m in enumerate(output_size, start=1):
        n = x.shape[axis]
        cells = [reduce(np.take(x, range(math.floor(i * n / m), math.ceil((i + 1) * n / m)),
                                axis=axis), axis=axis, keepdims=True) for i in range(m)]
        x = np.concatenate(cells, axis=axis)
    return x


@pytest.mark.parametrize("rank,output_size", [(1, (3,)), (2, (3, 2)), (3, (2, 3, 2)),
                                              (3, (5, 2, 1))])
def test_adaptive_pooling_matches_its_definition(rank, output_size):
    x = RNG.standard_normal((2, *(5, 4, 3)[:rank], 2)).astype(np.float32)
    average = getattr(layers, f"AdaptiveAveragePooling{rank}D")(output_size)
    maximum = getattr(layers, f"AdaptiveMaxPooling{rank}D")(output_size)
    # The windows are boxes, so the per-axis reductions in turn give the reduction of each box.
    np.testing.assert_allclose(average(torch.as_tensor(x)).numpy(),
                               _np_adaptive(x, output_size, np.mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maximum(torch.as_tensor(x)).numpy(),
                               _np_adaptive(x, output_size, np.max))


def test_pooling3d_same_padding_one_side_matches_numpy():
    """TensorFlow's 'same' on 4 cells with pool 3, stride 2 pads one cell at the end only: the
    windows are cells 0-2 and 2-3, averaged over their real cells (Keras's torch backend
    differs here, so NumPy is the reference)."""
    x = RNG.standard_normal((2, 4, 4, 4, 3)).astype(np.float32)
    spans = [(0, 3), (2, 4)]
    for cls, reduce in ((layers.AveragePooling3D, np.mean), (layers.MaxPooling3D, np.max)):
        out = cls(pool_size=3, strides=2, padding="same")(torch.as_tensor(x)).numpy()
        ref = np.array([[[[[reduce(x[b, d0:d1, h0:h1, w0:w1, c]) for c in range(3)]
                           for w0, w1 in spans] for h0, h1 in spans] for d0, d1 in spans]
                        for b in range(2)])
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_spatial_dropout3d_drops_whole_channels():
    layer = layers.SpatialDropout3D(0.5, seed=1)
    x = torch.ones(4, 2, 3, 2, 8)
    out = layer(x, training=True).numpy()
    per_map = out.reshape(4, -1, 8)
    assert np.all(per_map.min(1) == per_map.max(1))  # one value per sample and channel
    assert set(np.unique(out)) == {0.0, 2.0}
    first = layers.SpatialDropout3D(0.5, data_format=CF, seed=1)(x.movedim(-1, 1), training=True)
    per_map = first.numpy().reshape(4, 8, -1)
    assert np.all(per_map.min(2) == per_map.max(2))


def test_weighted_3d_and_depthwise1d_layers_keras_files_both_ways(rk, tmp_path):  # noqa: F811
    volumes = keras.Sequential([
        keras.Input((4, 4, 4, 2)),
        layers.ZeroPadding3D(1),
        layers.Conv3D(3, 3, activation="relu"),
        layers.MaxPooling3D(pool_size=2, padding="same"),
        layers.Conv3DTranspose(2, 2, strides=2),
        layers.Cropping3D(((1, 0), (0, 1), (1, 1))),
        layers.UpSampling3D((1, 1, 2)),
        layers.SpatialDropout3D(0.2),
        layers.AveragePooling3D(2),
        layers.AdaptiveMaxPooling3D(2),
        layers.GlobalAveragePooling3D(),
        layers.Dense(2),
    ])
    back = _both_ways(rk, volumes, RNG.random((2, 4, 4, 4, 2), dtype=np.float32), tmp_path,
                      "volumes")
    assert [type(layer).__name__ for layer in back.layers][1:4] == [
        "Conv3D", "MaxPooling3D", "Conv3DTranspose"]
    sequences = keras.Sequential([
        keras.Input((7, 3)),
        layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same"),
        layers.AdaptiveAveragePooling1D(3),
        layers.GlobalMaxPooling1D(),
    ])
    _both_ways(rk, sequences, RNG.random((2, 7, 3), dtype=np.float32), tmp_path, "depthwise1d")


def test_tiny_conv3d_model_learns():
    """Is the bright 2x2x2 cube in the front or the back half of a 4x4x4 volume?"""
    torch.manual_seed(0)
    n = 64
    x = RNG.normal(0.0, 0.1, (n, 4, 4, 4, 1)).astype(np.float32)
    y = RNG.integers(0, 2, n)
    for i in range(n):
        d = 2 * y[i]
        h, w = RNG.integers(0, 3, 2)
        x[i, d:d + 2, h:h + 2, w:w + 2] += 1.0
    model = keras.Sequential([keras.Input((4, 4, 4, 1)), layers.Conv3D(4, 2, activation="relu"),
                              layers.MaxPooling3D(pool_size=(1, 3, 3)), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] >= 0.9


def test_bad_arguments_and_inputs():
    with pytest.raises(ShapeError, match="expected ndim=5, found ndim=4"):
        layers.Conv3D(2, 2)(keras.Input((4, 4, 2)))
    with pytest.raises(ShapeError, match="ndim=5"):
        layers.MaxPooling3D()(torch.zeros(2, 4, 4, 2))
    with pytest.raises(ShapeError, match="ndim=3"):
        layers.DepthwiseConv1D(2)(torch.zeros(2, 4, 4, 2))
    with pytest.raises(ShapeError, match="ndim=4"):
        layers.AdaptiveMaxPooling2D(2)(keras.Input((4, 2)))
    with pytest.raises(ConfigError, match="data_format.*channels_middle"):
        layers.Conv3D(2, 2, data_format="channels_middle")
    for cls in (layers.AveragePooling3D, layers.AdaptiveAveragePooling3D):
        with pytest.raises(ConfigError, match="data_format"):
            cls(2, data_format="NDHWC")
    with pytest.raises(ShapeError, match="negative or zero"):  # kernel larger than the input
        layers.Conv3D(2, 5)(keras.Input((4, 4, 4, 1)))
    with pytest.raises(ShapeError, match="negative or zero"):
        layers.MaxPooling3D(pool_size=(2, 5, 2))(torch.zeros(1, 4, 4, 4, 1))
    with pytest.raises(ShapeError, match="leaves nothing"):
        layers.Cropping3D(2)(torch.zeros(1, 4, 4, 4, 1))
    with pytest.raises(ConfigError, match="padding.*Received: padding='causal'"):
        layers.Conv3D(2, 2, padding="causal")
    with pytest.raises(ConfigError, match="padding"):
        layers.DepthwiseConv1D(2, padding="causal")
    with pytest.raises(ConfigError, match="groups=3, filters=4"):
        layers.Conv3D(4, 2, groups=3)
    with pytest.raises(ShapeError, match="groups=2.*3 channels"):
        layers.Conv3D(4, 2, groups=2)(keras.Input((4, 4, 4, 3)))
    with pytest.raises(ConfigError, match="kernel_size"):
        layers.Conv3D(2, (2, 2))
    with pytest.raises(ConfigError, match="output_padding"):
        layers.Conv3DTranspose(2, 2, output_padding=(1, 1))
    with pytest.raises(ConfigError, match="output_size"):
        layers.AdaptiveAveragePooling2D((2, 2, 2))
    with pytest.raises(ConfigError, match="output_size"):
        layers.AdaptiveMaxPooling1D(0)
    with pytest.raises(ConfigError, match="pool_size"):
        layers.AveragePooling3D((2, 2))
    with pytest.raises(ConfigError, match="size"):
        layers.UpSampling3D((2, -1, 2))
    with pytest.raises(ConfigError, match="padding"):
        layers.ZeroPadding3D(((1, 1), (1, 1)))
    with pytest.raises(ConfigError, match="rate"):
        layers.SpatialDropout3D(1.5)
    with pytest.raises(ConfigError, match="depth_multiplier"):
        layers.DepthwiseConv1D(2, depth_multiplier=0)
