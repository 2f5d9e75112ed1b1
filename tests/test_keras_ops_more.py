"""keras.ops stft / istft, fold / unfold, lu_factor, rearrange, associative_scan and vectorize:
values against real Keras 3 (torch backend) and NumPy / SciPy, symbolic shapes, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras import ops

RNG = np.random.default_rng(0)
SIGNAL = RNG.standard_normal((2, 3, 40)).astype(np.float32)
IMAGES = RNG.standard_normal((2, 3, 7, 6)).astype(np.float32)


def _real():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real


def _close(ours, theirs, atol=1e-5):
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    theirs = theirs if isinstance(theirs, (tuple, list)) else [theirs]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        a = a.detach().numpy()
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("sizes", [(8, 4, 8, "hann", True), (6, 3, 8, "hamming", False),
                                   (8, 4, 16, None, True), (5, 2, 8, "hann", True)])
def test_stft_and_istft_match_keras(sizes):
    real = _real()
    length, stride, fft, window, center = sizes
    _close(ops.stft(SIGNAL, length, stride, fft, window, center),
           real.ops.stft(SIGNAL, length, stride, fft, window, center))
    spectrum = tuple(t.numpy() for t in ops.stft(SIGNAL, length, stride, fft, window, center))
    for out_length in (None, 37):
        _close(ops.istft(spectrum, length, stride, fft, out_length, window, center),
               real.ops.istft(spectrum, length, stride, fft, out_length, window, center))


def test_stft_is_the_textbook_windowed_dft_and_istft_inverts_it():
    x = SIGNAL[0, 0].astype(np.float64)
    real, imag = ops.stft(x, 8, 4, 8, window="hann", center=False)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8)  # periodic Hann
    frames = np.stack([x[t * 4:t * 4 + 8] * window for t in range(9)])
    expected = np.fft.rfft(frames, axis=-1)
    np.testing.assert_allclose(real.numpy(), expected.real, atol=1e-10)
    np.testing.assert_allclose(imag.numpy(), expected.imag, atol=1e-10)
    back = ops.istft(ops.stft(x, 8, 2, 8), 8, 2, 8, length=40)
    np.testing.assert_allclose(back.numpy(), x, atol=1e-10)


def test_fold_unfold_and_lu_factor_match_keras_and_scipy():
    real = _real()
    scipy_linalg = pytest.importorskip("scipy.linalg")
    images = torch.as_tensor(IMAGES)
    _close(ops.unfold(IMAGES, (2, 3), 2, 1, (1, 2)), real.ops.unfold(images, (2, 3), 2, 1, (1, 2)))
    blocks = ops.unfold(IMAGES, 2, stride=2)
    _close(ops.fold(blocks, (7, 6), 2, stride=2), real.ops.fold(blocks, (7, 6), 2, 1, 0, 2))
    assert ops.nn.fold is ops.fold and ops.nn.unfold is ops.unfold
    # non-overlapping blocks: fold undoes unfold where the blocks reach
    np.testing.assert_array_equal(ops.fold(blocks, (7, 6), 2, stride=2).numpy()[..., :6, :],
                                  IMAGES[..., :6, :])
    matrices = RNG.standard_normal((3, 4, 4)).astype(np.float32)
    _close(ops.lu_factor(matrices), real.ops.lu_factor(matrices))
    lu, pivots = ops.linalg.lu_factor(matrices[0])
    lu_ref, pivots_ref = scipy_linalg.lu_factor(matrices[0])
    np.testing.assert_allclose(lu.numpy(), lu_ref, atol=1e-5)
    np.testing.assert_array_equal(pivots.numpy(), pivots_ref)


def test_rearrange_matches_keras_and_numpy():
    real = _real()
    _close(ops.rearrange(IMAGES, "b c h w -> b (w c) h"),
           real.ops.rearrange(IMAGES, "b c h w -> b (w c) h"))
    _close(ops.rearrange(SIGNAL, "b c (t p) -> b t (p c)", p=4),
           real.ops.rearrange(SIGNAL, "b c (t p) -> b t (p c)", p=4))
    expected = SIGNAL.reshape(2, 3, 10, 4).transpose(0, 2, 3, 1).reshape(2, 10, 12)
    np.testing.assert_array_equal(ops.rearrange(SIGNAL, "b c (t p) -> b t (p c)", p=4).numpy(),
                                  expected)


def test_associative_scan_matches_keras_and_cumulative_numpy():
    real = _real()
    _close(ops.associative_scan(lambda a, b: a + b, SIGNAL, axis=2),
           real.ops.associative_scan(lambda a, b: a + b, SIGNAL, axis=2))
    np.testing.assert_allclose(ops.associative_scan(lambda a, b: a * b, SIGNAL[..., :7],
                                                    reverse=True, axis=-1).numpy(),
                               np.cumprod(SIGNAL[..., :7][..., ::-1], axis=-1)[..., ::-1],
                               rtol=1e-5, atol=1e-6)
    elems = {"total": SIGNAL[0], "peak": SIGNAL[1]}
    out = ops.associative_scan(
        lambda p, q: {"total": p["total"] + q["total"], "peak": torch.maximum(p["peak"],
                                                                              q["peak"])},
        elems, axis=1)
    np.testing.assert_allclose(out["total"].numpy(), np.cumsum(SIGNAL[0], axis=1), atol=1e-5)
    np.testing.assert_array_equal(out["peak"].numpy(), np.maximum.accumulate(SIGNAL[1], axis=1))


def test_vectorize_matches_keras_and_numpy():
    real = _real()

    def dot(a, b):
        return (a * b).sum()

    _close(ops.vectorize(dot, signature="(n),(n)->()")(SIGNAL, SIGNAL[0]),
           real.ops.vectorize(dot, signature="(n),(n)->()")(SIGNAL, SIGNAL[0]))
    gram = ops.numpy.vectorize(lambda a: a.T @ a, signature="(m,n)->(n,n)")(SIGNAL)
    np.testing.assert_allclose(gram.numpy(), np.einsum("bmi,bmj->bij", SIGNAL, SIGNAL),
                               rtol=1e-5, atol=1e-5)
    scaled = ops.vectorize(lambda a, k: a * k, excluded={1})(SIGNAL, 3.0)
    np.testing.assert_allclose(scaled.numpy(), SIGNAL * 3.0)


def test_symbolic_inputs_get_keras_output_shapes():
    audio = keras.Input((40,))
    real, imag = ops.stft(audio, 8, 4, 8)
    assert tuple(real.shape) == (None, 11, 5) and tuple(imag.shape) == (None, 11, 5)
    assert tuple(ops.istft((real, imag), 8, 4, 8).shape) == (None, 40)
    images = keras.Input((3, 7, 6))
    blocks = ops.unfold(images, 2, stride=2)
    assert tuple(blocks.shape) == (None, 12, 9)
    assert tuple(ops.fold(blocks, (7, 6), 2, stride=2).shape) == (None, 3, 7, 6)
    flat = ops.rearrange(images, "b c h w -> b (h w) c")
    assert tuple(flat.shape) == (None, 42, 3)
    model = keras.Model(images, flat)
    np.testing.assert_array_equal(model.predict(IMAGES, verbose=0),
                                  IMAGES.transpose(0, 2, 3, 1).reshape(2, 42, 3))
    running = ops.associative_scan(lambda a, b: a + b, audio, axis=1)
    assert tuple(running.shape) == (None, 40)
    np.testing.assert_allclose(keras.Model(audio, running).predict(SIGNAL[0], verbose=0),
                               np.cumsum(SIGNAL[0], axis=1), rtol=1e-5, atol=1e-5)
    with pytest.raises(NotSupportedError, match="type function .* cannot be saved"):
        keras.Model(audio, running).get_config()
    with pytest.raises(NotSupportedError, match="vectorize on a symbolic KerasTensor"):
        ops.vectorize(lambda a: a * 2)(audio)
    square = keras.Input((4, 4))
    lu, pivots = ops.lu_factor(square)
    assert tuple(lu.shape) == (None, 4, 4) and tuple(pivots.shape) == (None, 4)


def test_bad_inputs_raise_errors_naming_the_op_and_argument():
    with pytest.raises(ConfigError, match=r"stft: sequence_stride must be a positive integer"):
        ops.stft(SIGNAL, 8, 0, 8)
    with pytest.raises(ConfigError, match=r"stft: fft_length must be >= sequence_length"):
        ops.stft(SIGNAL, 8, 4, 4)
    with pytest.raises(ConfigError, match=r"stft: window must be 'hann'.*window='blackman'"):
        ops.stft(SIGNAL, 8, 4, 8, window="blackman")
    with pytest.raises(ConfigError, match=r"istft: window must have shape \(sequence_length,\)"):
        ops.istft(ops.stft(SIGNAL, 8, 4, 8), 8, 4, 8, window=np.ones(5))
    with pytest.raises(InputTypeError, match="stft: x must be float32 or float64; received int32"):
        ops.stft(np.ones((40,), np.int32), 8, 4, 8)
    with pytest.raises(ShapeError, match=r"unfold: x must be 4-D"):
        ops.unfold(SIGNAL, 2)
    with pytest.raises(ConfigError, match=r"unfold: kernel_size must be an int >= 1"):
        ops.unfold(IMAGES, (2, 0))
    with pytest.raises(ShapeError, match="fold: x of shape"):
        ops.fold(ops.unfold(IMAGES, 2, stride=2), (9, 9), 2, stride=2)
    with pytest.raises(ShapeError, match="lu_factor: x must be a matrix"):
        ops.lu_factor(np.ones(3, np.float32))
    with pytest.raises(ConfigError, match=r"rearrange: pattern 'b c -> b c d'"):
        ops.rearrange(IMAGES[0, 0], "b c -> b c d")
    with pytest.raises(InputTypeError, match="rearrange: pattern must be a string"):
        ops.rearrange(IMAGES, 3)
    with pytest.raises(ShapeError, match="associative_scan: every leaf of elems needs the same"):
        ops.associative_scan(lambda a, b: a + b, [SIGNAL, SIGNAL[..., :3]], axis=-1)
    with pytest.raises(InputTypeError, match="associative_scan: f must be callable"):
        ops.associative_scan(None, SIGNAL)
    with pytest.raises(ConfigError, match="vectorize: signature must look like"):
        ops.vectorize(len, signature="n->m")
    with pytest.raises(ShapeError, match=r"vectorize: the loop axes \(0,\) hold no elements"):
        ops.vectorize(lambda a: a * 2)(np.zeros(0, np.float32))
    with pytest.raises(ShapeError, match="vectorize: core axis 'n' is 40 and 3"):
        ops.vectorize(lambda a, b: (a * b).sum(), signature="(n),(n)->()")(SIGNAL, SIGNAL[0, :, :3])
