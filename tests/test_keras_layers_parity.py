"""Parity with real Keras 3 (torch backend) for the layers of ``test_keras_layers_more.py``:
same constructor arguments, Keras's weights copied in with ``set_weights``, outputs within 1e-5,
same output shapes, parameter counts and weight shapes. Skipped when Keras is not installed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
real = pytest.importorskip("keras")
if real.backend.backend() != "torch":  # pragma: no cover - another backend was chosen first
    pytest.skip("real Keras runs on another backend", allow_module_level=True)

from bigmodel.keras import layers  # noqa: E402

RNG = np.random.default_rng(1)

CASES = [
    ("Conv1D", dict(filters=4, kernel_size=3), [(2, 9, 3)]),
    ("Conv1D", dict(filters=4, kernel_size=3, strides=2, padding="same"), [(2, 9, 3)]),
    ("Conv1D", dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2), [(2, 9, 3)]),
    ("Conv1D", dict(filters=6, kernel_size=2, groups=3, activation="relu"), [(2, 9, 3)]),
    ("Conv1DTranspose", dict(filters=4, kernel_size=3, strides=2), [(2, 5, 3)]),
    ("Conv1DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), [(2, 5, 3)]),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), [(2, 5, 4, 3)]),
    ("Conv2DTranspose", dict(filters=4, kernel_size=(2, 3), strides=(3, 2)), [(2, 5, 4, 3)]),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, dilation_rate=2), [(2, 5, 4, 3)]),
    ("Conv2DTranspose", dict(filters=2, kernel_size=4, strides=2, padding="same",
                             output_padding=1), [(2, 5, 4, 3)]),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, depth_multiplier=2), [(2, 7, 6, 3)]),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, strides=2, padding="same"),
     [(2, 7, 6, 3)]),
    ("SeparableConv1D", dict(filters=5, kernel_size=3, padding="same"), [(2, 7, 3)]),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, padding="same"), [(2, 7, 6, 3)]),
    ("MaxPooling1D", dict(pool_size=3, strides=2, padding="same"), [(2, 8, 3)]),
    # Symmetric 'same' padding only: where TensorFlow pads one side more (e.g. 8 steps, pool 3,
    # stride 2), Keras's torch backend pads by replicating edge values and averages them, while
    # TensorFlow, JAX and bigmodel average the real cells only (see docs/keras.md).
    ("AveragePooling1D", dict(pool_size=3, strides=2, padding="same"), [(2, 7, 3)]),
    ("AveragePooling1D", dict(pool_size=2), [(2, 8, 3)]),
    ("GlobalAveragePooling1D", dict(), [(2, 8, 3)]),
    ("GlobalMaxPooling1D", dict(keepdims=True), [(2, 8, 3)]),
    ("UpSampling2D", dict(size=(2, 3)), [(2, 3, 4, 2)]),
    ("UpSampling2D", dict(size=2, interpolation="bilinear"), [(2, 3, 4, 2)]),
    ("ZeroPadding2D", dict(padding=((1, 2), (0, 1))), [(2, 3, 4, 2)]),
    ("Cropping2D", dict(cropping=((1, 0), (1, 2))), [(2, 4, 5, 2)]),
    ("RepeatVector", dict(n=3), [(2, 4)]),
    ("Permute", dict(dims=(2, 1)), [(2, 3, 4)]),
    ("LeakyReLU", dict(), [(2, 5)]),
    ("ReLU", dict(max_value=1.0, negative_slope=0.1, threshold=0.2), [(2, 5)]),
    ("ELU", dict(alpha=0.7), [(2, 5)]),
    ("PReLU", dict(alpha_initializer="ones", shared_axes=[1]), [(2, 4, 3)]),
    ("Softmax", dict(axis=1), [(2, 4, 3)]),
    ("Rescaling", dict(scale=0.5, offset=-1.0), [(2, 4)]),
    ("Normalization", dict(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0]), [(2, 3)]),
    ("Resizing", dict(height=5, width=7), [(2, 3, 4, 2)]),
    ("Resizing", dict(height=4, width=4, crop_to_aspect_ratio=True), [(2, 6, 9, 2)]),
    ("Resizing", dict(height=5, width=3, interpolation="nearest"), [(2, 3, 4, 2)]),
    ("CenterCrop", dict(height=2, width=3), [(2, 5, 6, 2)]),
    ("CenterCrop", dict(height=6, width=4), [(2, 4, 5, 2)]),
    ("Add", dict(), [(2, 3, 4), (2, 3, 4)]),
    ("Subtract", dict(), [(2, 4), (2, 4)]),
    ("Multiply", dict(), [(2, 3, 4), (2, 1, 4)]),
    ("Average", dict(), [(2, 4), (2, 4), (2, 4)]),
    ("Maximum", dict(), [(2, 4), (2, 4)]),
    ("Minimum", dict(), [(2, 4), (2, 4)]),
    ("Concatenate", dict(axis=1), [(2, 3, 4), (2, 2, 4)]),
    ("Dot", dict(axes=(2, 2)), [(2, 3, 4), (2, 5, 4)]),
    ("Dot", dict(axes=1, normalize=True), [(2, 4), (2, 4)]),
    ("Dot", dict(axes=(1, 2)), [(2, 4, 3), (2, 5, 4)]),
]


def _inputs(shapes):
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


@pytest.mark.parametrize("name,kwargs,shapes", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layer_matches_real_keras(name, kwargs, shapes):
    x = _inputs(shapes)
    theirs = getattr(real.layers, name)(**kwargs)
    expected = real.ops.convert_to_numpy(theirs(x))
    ours = getattr(layers, name)(**kwargs)
    as_torch = [torch.as_tensor(a) for a in x] if isinstance(x, list) else torch.as_tensor(x)
    if theirs.weights:
        if isinstance(x, list):
            ours.build([(None, *a.shape[1:]) for a in x])
        else:
            ours._maybe_build((None, *x.shape[1:]))
        keras_weights = [real.ops.convert_to_numpy(w) for w in theirs.weights]
        assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_weights]
        ours.set_weights(keras_weights)
    got = ours(as_torch).detach().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert ours.count_params() == theirs.count_params()
    in_shape = ([(None, *a.shape[1:]) for a in x] if isinstance(x, list)
                else (None, *x.shape[1:]))
    assert tuple(ours.compute_output_shape(in_shape)) == tuple(
        theirs.compute_output_shape(in_shape))


def test_normalization_adapt_matches_real_keras():
    data = RNG.standard_normal((50, 3, 4)).astype(np.float32) * 2 + 1
    theirs, ours = real.layers.Normalization(axis=(1, 2)), layers.Normalization(axis=(1, 2))
    theirs.adapt(data)
    ours.adapt(data)
    assert ours.count_params() == theirs.count_params()
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(torch.as_tensor(data)).numpy(),
                               real.ops.convert_to_numpy(theirs(data)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", [
    ("Conv1D", dict(filters=4, kernel_size=3, padding="causal")),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, output_padding=1)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3, depth_multiplier=2)),
    ("DepthwiseConv2D", dict(kernel_size=3)),
    ("Concatenate", dict(axis=1)), ("Dot", dict(axes=[1, 2], normalize=True)),
    ("LeakyReLU", dict(negative_slope=0.1)), ("PReLU", dict(shared_axes=[1, 2])),
    ("Softmax", dict(axis=-1)), ("Rescaling", dict(scale=2.0, offset=1.0)),
    ("Resizing", dict(height=3, width=4)), ("CenterCrop", dict(height=3, width=4)),
    ("RepeatVector", dict(n=2)), ("Permute", dict(dims=[2, 1])),
    ("ZeroPadding2D", dict(padding=2)), ("Cropping2D", dict(cropping=1)),
    ("UpSampling2D", dict(size=2)), ("MaxPooling1D", dict(pool_size=2)),
    ("GlobalAveragePooling1D", dict()), ("SpatialDropout1D", dict(rate=0.2)),
    ("GaussianNoise", dict(stddev=0.1)), ("ActivityRegularization", dict(l1=0.1)),
])
def test_real_keras_config_builds_our_layer(name, kwargs):
    """A config written by real Keras builds the same layer here (the keys we do not model,
    such as dtype policies, aside)."""
    config = getattr(real.layers, name)(**kwargs).get_config()
    # Initializer configs are keras/initializers.py's concern (checked there); dtype policies
    # are not modelled.
    config = {k: v for k, v in config.items()
              if k not in ("dtype", "autocast") and not k.endswith("_initializer")}
    ours = getattr(layers, name).from_config(config)
    mine = ours.get_config()

    def normalise(value):
        if isinstance(value, (list, tuple)):
            return [normalise(v) for v in value]
        return value

    shared = [k for k in config if k in mine]
    assert {k: normalise(mine[k]) for k in shared} == {k: normalise(config[k]) for k in shared}
