"""EinsumDense, GroupQueryAttention, ReversibleEmbedding, SpectralNormalization, Wrapper,
TorchModuleWrapper, InputSpec, STFTSpectrogram, MelSpectrogram and keras.layers.serialize /
deserialize: numbers against real Keras 3 (same weights), NumPy references, parameter counts,
configs, `.keras` files both ways, tiny fits that learn, and bad arguments."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import layers

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def rk():
    """Real Keras 3 on its torch backend (the reference)."""
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    real = pytest.importorskip("keras", reason="real Keras 3 is not installed: pip install -e '.[dev]'")
    if real.backend.backend() != "torch":
        pytest.skip(f"real Keras runs on {real.backend.backend()}, not torch")
    return real


def _np(x):
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))


def _close(a, b, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), atol=atol, rtol=1e-5)


def _same_layer(theirs, ours, *args, config_skip=(), **kwargs):
    """Copy real Keras's weights into ours; equal weight shapes, counts, config keys, outputs."""
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights([w + RNG.uniform(0.05, 0.2, w.shape).astype(w.dtype)
                      for w in theirs.get_weights()])
    theirs.set_weights(ours.get_weights())
    assert set(ours.get_config()) | {"dtype"} == set(theirs.get_config()) - set(config_skip)
    out_theirs = theirs(*args, **kwargs)
    out_ours = ours(*[torch.as_tensor(a) for a in args], **kwargs)
    if isinstance(out_theirs, tuple):
        for a, b in zip(out_theirs, out_ours):
            _close(a, b)
        return out_ours
    _close(out_theirs, out_ours)
    assert _np(out_ours).std() > 0  # not a trivial output
    return out_ours


def _both_ways(rk, model, x, tmp_path, name):
    """bigmodel -> real Keras -> bigmodel through .keras files, outputs equal at each step."""
    ours = model.predict(x, verbose=0)
    model.save(tmp_path / f"{name}.keras")
    theirs = rk.models.load_model(tmp_path / f"{name}.keras")
    _close(theirs.predict(x, verbose=0), ours)
    theirs.save(tmp_path / f"{name}_real.keras")
    back = keras.models.load_model(tmp_path / f"{name}_real.keras")
    _close(back.predict(x, verbose=0), ours)
    assert back.count_params() == model.count_params() == theirs.count_params()
    return back


# ------------------------------------------------------------------------------- EinsumDense
@pytest.mark.parametrize("equation, output_shape, bias_axes, shape", [
    ("ab,bc->ac", 4, "c", (3, 5)),
    ("abc,cd->abd", (None, 6), "d", (2, 3, 5)),
    ("...b,bc->...c", 4, None, (2, 3, 5)),
    ("abc,cde->abde", (None, 2, 3), "de", (2, 3, 5)),
    ("abc...,cd->abd...", (None, 6), "d", (2, 3, 5, 4)),
])
def test_einsum_dense_matches_keras(rk, equation, output_shape, bias_axes, shape):
    x = RNG.normal(size=shape).astype(np.float32)
    theirs = rk.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes,
                                   activation="tanh")
    ours = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="tanh")
    theirs.build((None, *shape[1:]))
    ours.build((None, *shape[1:]))
    out = _same_layer(theirs, ours, x)
    symbolic = ours.compute_output_shape((None, *shape[1:]))
    assert symbolic == tuple(theirs.compute_output_shape((None, *shape[1:])))
    assert all(s in (None, o) for s, o in zip(symbolic[1:], tuple(out.shape)[1:]))


def test_einsum_dense_bad_arguments():
    with pytest.raises(ConfigError, match="equation"):
        layers.EinsumDense("ab->b", 3)
    with pytest.raises(ConfigError, match="bias dimension 'z'"):
        layers.EinsumDense("ab,bc->ac", 3, bias_axes="z").build((None, 4))
    with pytest.raises(ConfigError, match="output_shape"):
        layers.EinsumDense("ab,bc->ac", -3)
    with pytest.raises(ConfigError, match="lora_rank"):
        layers.EinsumDense("ab,bc->ac", 3, lora_rank=2)
    layer = layers.EinsumDense("abc,cd->abd", (None, 4), name="ein")
    with pytest.raises(ShapeError, match="ein"):  # rank 2 into a rank-3 equation
        layer(keras.Input((5,)))
    layer(torch.zeros(2, 3, 5))
    with pytest.raises(ShapeError, match="ein"):  # built for 5 features
        layer(torch.zeros(2, 3, 6))


def test_einsum_dense_and_gqa_model_learns():
    torch.manual_seed(0)
    x = RNG.normal(size=(64, 6, 8)).astype(np.float32)
    y = (x[:, :, :2].sum(axis=(1, 2)) > 0).astype(np.float32)[:, None]
    inputs = keras.Input((6, 8))
    h = layers.EinsumDense("abc,cd->abd", (None, 8), bias_axes="d", activation="relu")(inputs)
    h = layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)(h, h)
    out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]


# ------------------------------------------------------------------------------- GroupQueryAttention
@pytest.mark.parametrize("options, call", [
    ({}, {}),
    ({"use_gate": True, "use_bias": False}, {}),
    ({"sliding_window": 2}, {"use_causal_mask": True}),
    ({"num_key_value_heads": 4}, {"return_attention_scores": True}),
    ({"dropout": 0.3}, {"value_mask": np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)}),
])
def test_group_query_attention_matches_keras(rk, options, call):
    q = RNG.normal(size=(2, 5, 8)).astype(np.float32)
    v = RNG.normal(size=(2, 4, 8)).astype(np.float32)
    kwargs = {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2, **options}
    theirs = rk.layers.GroupQueryAttention(**kwargs)
    ours = layers.GroupQueryAttention(**kwargs)
    theirs.build(q.shape, v.shape)
    ours.build((None, 5, 8), (None, 4, 8))
    if "value_mask" in call:
        call = {"value_mask": torch.as_tensor(call["value_mask"])}
        theirs_out = theirs(q, v, value_mask=call["value_mask"].numpy())
        ours.set_weights(theirs.get_weights())
        _close(theirs_out, ours(torch.as_tensor(q), torch.as_tensor(v), **call))
        return
    _same_layer(theirs, ours, q, v, config_skip=(), **call)
    assert ours.name.startswith("grouped_query_attention")


def test_group_query_attention_masks_match_keras(rk):
    q = RNG.normal(size=(2, 5, 8)).astype(np.float32)
    v = RNG.normal(size=(2, 4, 8)).astype(np.float32)
    theirs, ours = rk.layers.GroupQueryAttention(3, 4, 2), layers.GroupQueryAttention(3, 4, 2)
    theirs.build(q.shape, v.shape)
    ours.build((None, 5, 8), (None, 4, 8))
    ours.set_weights([w + 0.1 for w in theirs.get_weights()])
    theirs.set_weights(ours.get_weights())
    attention = RNG.random((2, 5, 4)) > 0.3
    attention[:, :, 0] = True  # every query keeps a key (Keras's fast path has no fallback)
    query_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    masks = {"attention_mask": attention, "query_mask": query_mask}
    expected = theirs(q, v, return_attention_scores=True, **masks)
    got = ours(torch.as_tensor(q), torch.as_tensor(v), return_attention_scores=True,
               **{k: torch.as_tensor(m) for k, m in masks.items()})
    for a, b in zip(expected, got):
        _close(a, b)
    assert not _np(got[1])[~np.broadcast_to(attention[:, None], got[1].shape)].any()
    # without scores both take the fused kernel (rows whose keys are all masked included)
    _close(theirs(q, v, **masks), ours(torch.as_tensor(q), torch.as_tensor(v),
                                       **{k: torch.as_tensor(m) for k, m in masks.items()}))


def test_group_query_attention_symbolic_shapes_and_bad_arguments():
    q, v = keras.Input((5, 8)), keras.Input((4, 8))
    assert layers.GroupQueryAttention(2, 4, 2)(q, v).shape == (None, 5, 8)
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        layers.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=3)
    with pytest.raises(ConfigError, match="dropout"):
        layers.GroupQueryAttention(2, 4, 2, dropout=1.5)
    with pytest.raises(ConfigError, match="head_dim"):
        layers.GroupQueryAttention(0, 4, 2)
    layer = layers.GroupQueryAttention(2, 4, 2, name="gqa")
    with pytest.raises(ShapeError, match="gqa"):
        layer(torch.zeros(2, 5, 8), torch.zeros(2, 4, 6))


def test_einsum_dense_and_gqa_keras_files_both_ways(rk, tmp_path):
    inputs = keras.Input((5, 8))
    h = layers.EinsumDense("abc,cd->abd", (None, 6), bias_axes="d")(inputs)
    h = layers.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2,
                                   use_gate=True)(h, h, use_causal_mask=True)
    out = layers.SpectralNormalization(layers.Dense(3))(h)
    model = keras.Model(inputs, out)
    model.set_weights([w + RNG.uniform(0.05, 0.2, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    x = RNG.normal(size=(2, 5, 8)).astype(np.float32)
    back = _both_ways(rk, model, x, tmp_path, "gqa")
    later = x.copy()
    later[:, -1] += 1.0  # causal: the first position does not see the last
    for net in (model, back):
        first, changed = net.predict(x, verbose=0), net.predict(later, verbose=0)
        _close(first[:, 0], changed[:, 0])
        assert np.abs(first[:, -1] - changed[:, -1]).max() > 1e-3


# ------------------------------------------------------------------------------- ReversibleEmbedding
@pytest.mark.parametrize("options", [{}, {"tie_weights": False, "logit_soft_cap": 2.0}])
def test_reversible_embedding_matches_keras(rk, options):
    ids = np.array([[1, 2, 0], [3, 4, 9]])
    theirs = rk.layers.ReversibleEmbedding(10, 4, **options)
    ours = layers.ReversibleEmbedding(10, 4, **options)
    theirs.build((None, 3))
    ours.build((None, 3))
    vectors = _same_layer(theirs, ours, ids)
    _close(theirs(_np(vectors), reverse=True), ours(vectors, reverse=True))
    assert ours.compute_output_shape((None, 3, 4), reverse=True) == (None, 3, 10)
    with pytest.raises(ShapeError, match="output_dim=4"):
        ours(torch.zeros(2, 3, 5), reverse=True)
    with pytest.raises(ConfigError, match="logit_soft_cap"):
        layers.ReversibleEmbedding(10, 4, logit_soft_cap=-1.0)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_reversible_embedding_keras_files_both_ways(rk, tmp_path, tie_weights):
    inputs = keras.Input((3,), dtype="int32")
    embedding = layers.ReversibleEmbedding(10, 4, tie_weights=tie_weights)
    hidden = layers.Dense(4, activation="tanh")(embedding(inputs))
    model = keras.Model(inputs, embedding(hidden, reverse=True))  # one layer, two calls
    assert model.output.shape == (None, 3, 10)
    _both_ways(rk, model, np.array([[1, 2, 0], [3, 4, 9]]), tmp_path, "rev")


# ------------------------------------------------------------------------------- Spectral norm
def test_spectral_normalization_matches_keras_and_svd(rk):
    x = RNG.normal(size=(4, 6, 6, 2)).astype(np.float32)
    theirs = rk.layers.SpectralNormalization(rk.layers.Conv2D(3, 2), power_iterations=2)
    ours = layers.SpectralNormalization(layers.Conv2D(3, 2), power_iterations=2)
    theirs.build(x.shape)
    ours.build((None, 6, 6, 2))
    _same_layer(theirs, ours, x)
    for _ in range(3):  # training calls update vector_u and the kernel in both
        _close(theirs(x, training=True), ours(torch.as_tensor(x), training=True))
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        _close(a, b)
    dense = layers.SpectralNormalization(layers.Dense(5), power_iterations=5)
    dense(torch.zeros(2, 7))
    for _ in range(20):
        dense(torch.zeros(2, 7), training=True)
    kernel = dense.get_weights()[0]
    assert abs(np.linalg.svd(kernel, compute_uv=False)[0] - 1.0) < 1e-3  # largest sigma is 1
    assert [w.shape for w in dense.get_weights()] == [(7, 5), (1, 5), (5,)]


def test_spectral_normalization_of_an_embedding_matches_keras(rk):
    ids = np.array([[1, 2, 3], [4, 0, 9]])
    theirs = rk.layers.SpectralNormalization(rk.layers.Embedding(10, 4))
    ours = layers.SpectralNormalization(layers.Embedding(10, 4))
    theirs.build((None, 3))
    ours.build((None, 3))
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights([w + 0.1 for w in theirs.get_weights()])
    theirs.set_weights(ours.get_weights())
    theirs(ids, training=True)
    vectors = ours(torch.as_tensor(ids), training=True)
    for a, b in zip(theirs.get_weights(), ours.get_weights()):  # the same normalized table
        _close(a, b)
    # (Keras casts this output to the ids' integer dtype; bigmodel returns the vectors)
    _close(vectors, ours.get_weights()[0][ids])


class _Twice(layers.Wrapper):
    """A user's wrapper, as Keras's Wrapper docs suggest."""

    def call(self, inputs):
        return 2 * self.layer(inputs)


def test_wrapper_base_class_and_bad_arguments():
    inputs = keras.Input((3,))
    wrapper = _Twice(layers.Dense(2))
    model = keras.Model(inputs, wrapper(inputs))
    x = RNG.normal(size=(4, 3)).astype(np.float32)
    kernel, bias = model.get_weights()
    _close(model.predict(x, verbose=0), 2 * (x @ kernel + bias))
    again = _Twice.from_config(wrapper.get_config())
    assert isinstance(again.layer, layers.Dense) and again.layer.units == 2
    with pytest.raises(ConfigError, match="layer"):
        layers.Wrapper("dense")
    with pytest.raises(ConfigError, match="power_iterations"):
        layers.SpectralNormalization(layers.Dense(2), power_iterations=0)
    with pytest.raises(ConfigError, match="nor 'embeddings'"):
        layers.SpectralNormalization(layers.Dropout(0.5)).build((None, 3))
    wrapped = layers.SpectralNormalization(layers.Dense(2))
    again = layers.SpectralNormalization.from_config(wrapped.get_config())
    assert isinstance(again.layer, layers.Dense) and again.layer.units == 2


# ------------------------------------------------------------------------------- TorchModuleWrapper
def _torch_model(seed):
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU())
    inputs = keras.Input((4,))
    out = layers.Dense(1)(layers.TorchModuleWrapper(module, name="torch_block",
                                                   output_shape=(None, 8))(inputs))
    return keras.Model(inputs, out)


def test_torch_module_wrapper_trains_saves_and_loads(rk, tmp_path):
    x = RNG.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 1.0], np.float32))[:, None]
    model = _torch_model(0)
    wrapper = model.get_layer("torch_block")
    assert [w.shape for w in wrapper.get_weights()] == [(8, 4), (8,), (8,), (8,)]
    assert model.count_params() == 4 * 8 + 8 + 8 + 8 + 8 + 1
    before = wrapper.module[0].weight.detach().clone()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    history = model.fit(x, y, epochs=12, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert not torch.equal(before, wrapper.module[0].weight)  # the module's weights trained
    assert wrapper.module[1].running_mean.abs().sum() > 0  # and its BatchNorm statistics moved
    expected = model.predict(x, verbose=0)
    model.save_weights(tmp_path / "t.weights.h5")
    fresh = _torch_model(1)
    fresh.load_weights(tmp_path / "t.weights.h5")
    _close(fresh.predict(x, verbose=0), expected)
    model.save(tmp_path / "t.keras")  # real Keras reads it (its pickle needs safe_mode=False)
    theirs = rk.models.load_model(tmp_path / "t.keras", safe_mode=False)
    _close(theirs.predict(x, verbose=0), expected)
    theirs.save_weights(tmp_path / "real.weights.h5")
    fresh = _torch_model(2)
    fresh.load_weights(tmp_path / "real.weights.h5")
    _close(fresh.predict(x, verbose=0), expected)
    with pytest.raises(ConfigError, match="never unpickles"):
        keras.models.load_model(tmp_path / "t.keras")
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        layers.TorchModuleWrapper(3)


# ------------------------------------------------------------------------------- InputSpec
class _Checked(layers.Layer):
    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = spec

    def call(self, inputs):
        return inputs


def test_input_spec_checks_calls_like_keras(rk):
    spec = keras.InputSpec(ndim=3, axes={-1: 4})
    assert spec.get_config() == rk.InputSpec(ndim=3, axes={-1: 4}).get_config()
    assert repr(spec) == repr(rk.InputSpec(ndim=3, axes={-1: 4}))
    layer = _Checked(spec, name="checked")
    assert tuple(layer(torch.zeros(2, 3, 4)).shape) == (2, 3, 4)
    assert layer(keras.Input((7, 4))).shape == (None, 7, 4)
    cases = [(torch.zeros(2, 4), "expected ndim=3, found ndim=2"),
             (torch.zeros(2, 3, 5), "expected axis -1 of input shape to have value 4"),
             (keras.Input((3, 5)), "expected axis -1")]
    for bad, message in cases:
        with pytest.raises(ShapeError, match="checked") as info:
            layer(bad)
        assert message in str(info.value)
    typed = _Checked(keras.InputSpec(dtype="int64", max_ndim=2), name="typed")
    typed(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ShapeError, match="expected dtype=int64, found dtype=float32"):
        typed(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="max_ndim=2"):
        typed(torch.zeros(2, 3, 1, dtype=torch.int64))
    shaped = _Checked([keras.InputSpec(shape=(None, 3)), keras.InputSpec(min_ndim=3)])
    shaped([torch.zeros(2, 3), torch.zeros(2, 3, 1)])
    with pytest.raises(ShapeError, match="expects 2 input"):
        shaped([torch.zeros(2, 3)])
    with pytest.raises(ShapeError, match="expected shape=\\(None, 3\\)"):
        shaped([torch.zeros(2, 4), torch.zeros(2, 3, 1)])
    with pytest.raises(ConfigError, match="axis 5 is greater than the maximum allowed value: 1"):
        keras.InputSpec(ndim=2, axes={5: 3})
    with pytest.raises(ConfigError, match="axes"):
        keras.InputSpec(axes={"last": 3})
    with pytest.raises(ConfigError, match="input_spec"):
        _Checked("ndim=3")
    assert layers.Dense(2).input_spec is None


# ------------------------------------------------------------------------------- spectrograms
@pytest.mark.parametrize("options", [
    {"mode": "log"},
    {"mode": "psd", "padding": "same", "expand_dims": True},
    {"mode": "stft", "window": "hamming", "periodic": True, "scaling": "spectrum"},
    {"mode": "real", "data_format": "channels_first", "fft_length": 40},
])
def test_stft_spectrogram_matches_keras(rk, options):
    x = RNG.normal(size=(2, 160, 2)).astype(np.float32)
    if options.get("data_format") == "channels_first":
        x = x.transpose(0, 2, 1).copy()
    kwargs = {"frame_length": 32, "frame_step": 16, **options}
    theirs, ours = rk.layers.STFTSpectrogram(**kwargs), layers.STFTSpectrogram(**kwargs)
    theirs.build(x.shape)
    ours.build((None, *x.shape[1:]))
    for a, b in zip(theirs.get_weights(), ours.get_weights()):  # the Fourier kernels
        _close(a, b, atol=1e-7)
    out = _same_layer(theirs, ours, x)
    assert ours.compute_output_shape((None, *x.shape[1:]))[1:] == tuple(out.shape)[1:]


def test_stft_initializer_matches_keras(rk):
    for args in (("real",), ("imag", "hamming", "spectrum", True), ("real", None, None)):
        theirs, ours = rk.initializers.STFT(*args), keras.initializers.STFT(*args)
        _close(theirs((32, 1, 17)), ours((32, 1, 17)), atol=0)
        assert ours.get_config() == theirs.get_config()
    assert isinstance(keras.initializers.get("stft"), keras.initializers.STFTInitializer)
    with pytest.raises(ConfigError, match="side"):
        keras.initializers.STFT("both")
    with pytest.raises(ConfigError, match="window"):
        keras.initializers.STFT(window="nope")


def test_spectrograms_bad_arguments_and_numpy_reference():
    signal = np.sin(2 * np.pi * 1000 * np.arange(256) / 8000).astype(np.float32)
    layer = layers.STFTSpectrogram(mode="magnitude", frame_length=64, frame_step=64,
                                   window=None, scaling=None)
    out = _np(layer(torch.as_tensor(signal)[None, :, None]))[0]
    reference = np.abs(np.fft.rfft(signal[:256].reshape(4, 64), axis=-1))
    np.testing.assert_allclose(out, reference, atol=1e-3)
    for bad, name in (({"mode": "loud"}, "mode"), ({"frame_step": 300}, "frame_step"),
                      ({"fft_length": 8}, "fft_length"), ({"window": "nope"}, "window"),
                      ({"padding": "full"}, "padding")):
        with pytest.raises(ConfigError, match=name):
            layers.STFTSpectrogram(**bad)
    with pytest.raises(ShapeError, match="stft"):
        layers.STFTSpectrogram(name="stft")(torch.zeros(2, 160))
    with pytest.raises(ConfigError, match="sequence_length"):
        layers.MelSpectrogram(fft_length=64, sequence_length=128)
    with pytest.raises(ConfigError, match="window"):
        layers.MelSpectrogram(window="blackman")


@pytest.mark.parametrize("options", [
    {},
    {"power_to_db": False, "mag_exp": 1.0, "window": "hamming"},
    {"sequence_length": 48, "window": None, "top_db": 20.0},
])
def test_mel_spectrogram_matches_keras(rk, options):
    audio = RNG.normal(size=(2, 400)).astype(np.float32)
    kwargs = {"fft_length": 64, "sequence_stride": 16, "num_mel_bins": 10,
              "sampling_rate": 8000, **options}
    theirs, ours = rk.layers.MelSpectrogram(**kwargs), layers.MelSpectrogram(**kwargs)
    expected = theirs(audio)
    _close(expected, ours(torch.as_tensor(audio)), atol=1e-4)
    assert set(ours.get_config()) | {"dtype"} == set(theirs.get_config())
    assert tuple(expected.shape) == (2, 10, 26)
    assert ours(keras.Input((400,))).shape == (None, 10, 26)
    _close(ours.mel_matrix(33), theirs.linear_to_mel_weight_matrix(10, 33, 8000, 20.0, 4000.0))


def test_stft_spectrogram_keras_files_both_ways(rk, tmp_path):
    inputs = keras.Input((160, 1))
    features = layers.STFTSpectrogram(frame_length=32, frame_step=16)(inputs)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(features)))
    _both_ways(rk, model, RNG.normal(size=(2, 160, 1)).astype(np.float32), tmp_path, "stft")


# ------------------------------------------------------------------------------- serialize
def test_layers_serialize_and_deserialize_like_keras(rk):
    ours = layers.EinsumDense("ab,bc->ac", 3, bias_axes="c", name="ein")
    theirs = rk.layers.EinsumDense("ab,bc->ac", 3, bias_axes="c", name="ein")
    spec = layers.serialize(ours)
    reference = rk.layers.serialize(theirs)
    assert (spec["module"], spec["class_name"]) == (reference["module"], reference["class_name"])
    # (trainable=True, the default, is left out, as .keras files from bigmodel do)
    assert set(spec["config"]) == set(reference["config"]) - {"trainable"}
    back = layers.deserialize(reference)  # real Keras's description
    assert isinstance(back, layers.EinsumDense) and back.get_config() == ours.get_config()
    assert rk.layers.deserialize(spec).get_config()["equation"] == "ab,bc->ac"
    with pytest.raises(ConfigError, match="not a `keras.layers.Layer`"):
        layers.deserialize([1, 2])
    with pytest.raises(ConfigError, match="expected a keras.layers.Layer"):
        layers.serialize("dense")
