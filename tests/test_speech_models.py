"""The four speech recognizers: inputs, classifier surface, SpecAugment, save/load, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.models import create_model, load_model, save_model

NAMES = ("speech-cnn", "speech-crnn", "speech-lstm", "speech-transformer")
SMALL = {"speech-cnn": {"channels": [8, 16, 16]}, "speech-crnn": {"channels": [8, 8],
                                                                  "hidden_size": 16},
         "speech-lstm": {"hidden_size": 24, "num_layers": 1},
         "speech-transformer": {"d_model": 32, "num_heads": 2, "num_layers": 1, "dff": 64}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sounds(count: int, seconds: float = 0.5, rate: int = 16000, seed: int = 0):
    """Three learnable 'words': a rising chirp, a falling chirp, two alternating tones; random
    length, position, loudness and noise."""
    rng = np.random.default_rng(seed)
    size = int(seconds * rate)
    waves = np.zeros((count, size), dtype=np.float32)
    labels = rng.integers(0, 3, count)
    for row, label in enumerate(labels):
        length = int(rng.uniform(0.4, 0.7) * size)
        t = np.arange(length) / rate
        span = t[-1]
        if label == 0:
            phase = 2 * np.pi * (300 * t + 2500 * t ** 2 / (2 * span))
        elif label == 1:
            phase = 2 * np.pi * (2800 * t - 2500 * t ** 2 / (2 * span))
        else:
            phase = 2 * np.pi * np.where(t < span / 2, 700, 1800) * t
        start = int(rng.integers(0, size - length + 1))
        waves[row, start: start + length] = rng.uniform(0.2, 0.8) * np.sin(phase)
        waves[row] += rng.normal(0, 0.02, size)
    return waves, labels.astype(np.int64)


def build(name: str, **extra):
    torch.manual_seed(0)
    return create_model(name, num_classes=3, clip_seconds=0.5, **{**SMALL[name], **extra})


@pytest.mark.parametrize("name", NAMES)
def test_waveform_and_spectrogram_inputs_agree(name):
    model = build(name).eval()
    waves = torch.from_numpy(sounds(4)[0])
    logits = model(waves)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    spec = model.spectrogram(waves)
    assert spec.shape == (4, 40, 51)
    # standardised per clip
    torch.testing.assert_close(spec.mean(dim=(1, 2)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(model(spec), logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model(spec.unsqueeze(1)), logits, atol=1e-4, rtol=1e-4)
    features = model.forward_features(waves)
    torch.testing.assert_close(model.forward_head(features), logits, atol=1e-5, rtol=1e-5)
    assert model.forward_head(features, pre_logits=True).shape == (4, model.num_features)
    silent = model(torch.zeros(2, 8000))  # a silent clip gives finite scores, not NaN
    assert torch.isfinite(silent).all()


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_named(name):
    model = build(name)
    with pytest.raises(ShapeError, match=r"waveforms \(B, 8000\) \(0.5 s at 16000 Hz\)"):
        model(torch.zeros(2, 16000))
    with pytest.raises(ShapeError, match="features"):
        model(torch.zeros(2, 13, 51))
    with pytest.raises(InputTypeError, match="floating-point"):
        model(torch.zeros(2, 8000, dtype=torch.int16))
    with pytest.raises(InputTypeError, match="torch.Tensor"):
        model(np.zeros((2, 8000), dtype=np.float32))


def test_config_errors():
    with pytest.raises(ConfigError, match="features"):
        create_model("speech-cnn", features="wavelet")
    with pytest.raises(ConfigError, match="divisible"):
        create_model("speech-transformer", d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="dropout_rate"):
        create_model("speech-lstm", dropout_rate=1.5)
    with pytest.raises(ConfigError, match="clip_seconds"):
        create_model("speech-crnn", clip_seconds=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_surface_gradients_and_round_trip(name, tmp_path):
    model = build(name, features="mfcc" if name == "speech-lstm" else "logmel").train()
    waves = torch.from_numpy(sounds(3)[0])
    model(waves).square().mean().backward()
    for key, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), key
    model.eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.get_config() == model.get_config()
    torch.testing.assert_close(loaded(waves), model(waves))
    model.reset_classifier(5)
    assert model(waves).shape == (3, 5) and model.get_config()["num_classes"] == 5
    assert isinstance(model.get_classifier(), nn.Linear)


def test_spec_augment_runs_only_in_training():
    model = build("speech-cnn", time_masks=4, time_mask_width=20)
    waves = torch.from_numpy(sounds(8)[0])
    model.eval()
    torch.testing.assert_close(model(waves), model(waves))
    model.frontend.train()
    features = model.frontend(waves)
    assert ((features == 0).all(dim=1)).any()  # whole frames masked to 0
    model.frontend.eval()
    assert not ((model.frontend(waves) == 0).all(dim=1)).any()
    off = build("speech-cnn", freq_masks=0, time_masks=0).frontend.train()
    torch.testing.assert_close(off(waves), off.spectrogram(waves))


@pytest.mark.parametrize("name", NAMES)
def test_tiny_run_learns(name):
    from bigmodel.engine.trainer import Trainer

    x_train, y_train = sounds(96, seed=1)
    x_test, y_test = sounds(48, seed=2)
    model = build(name)
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), lr=3e-3, metrics=["accuracy"],
                      device="cpu", seed=0, verbose=0)
    before = trainer.evaluate((x_test, y_test))
    trainer.fit((x_train, y_train), epochs=8, batch_size=16)
    after = trainer.evaluate((x_test, y_test))
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] >= 0.9, after


# speech-crnn (~8 s) is exported in make test by test_every_command (speech_crnn export:onnx).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.full) if n == "speech-crnn"
                                  else n for n in NAMES])
def test_onnx_export_matches_eager(name, tmp_path):
    """The whole model, STFT frontend included, exports; a batch of 3 after exporting with 1."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from bigmodel.export import export_onnx, onnx_session

    model = build(name).eval()
    export_onnx(model, tmp_path / "m.onnx", (torch.from_numpy(sounds(1)[0]),))
    session = onnx_session(tmp_path / "m.onnx")
    waves = sounds(3, seed=5)[0]
    outputs = session.run(None, {session.get_inputs()[0].name: waves})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(waves)).numpy()
    np.testing.assert_allclose(outputs, expected, atol=1e-4, rtol=1e-4)
