"""Log-mel, MFCC and SpecAugment modules against NumPy implementations of the formulas (and librosa
when it is installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dct

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.nn.audio_features import (
    MFCC,
    LogMelSpectrogram,
    MelSpectrogram,
    SpecAugment,
    mel_filterbank,
)

# -- NumPy references, written from the definitions -------------------------------------------------

def np_hz_to_mel(f, scale):
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    return np.where(f < 1000.0, f * 3.0 / 200.0,
                    15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4))


def np_mel_to_hz(m, scale):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


def np_filterbank(rate, n_fft, n_mels, f_min, f_max, scale, slaney_norm):
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    edges = np_mel_to_hz(np.linspace(np_hz_to_mel(f_min, scale), np_hz_to_mel(f_max, scale),
                                     n_mels + 2), scale)
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= mid:
                bank[m, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[m, k] = (hi - f) / (hi - mid)
        if slaney_norm:
            bank[m] *= 2.0 / (hi - lo)
    return bank


def np_power_spectrogram(y, n_fft, win, hop):
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start: start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic
    padded = np.pad(y.astype(np.float64), n_fft // 2)
    frames = [padded[t * hop: t * hop + n_fft] * window
              for t in range(1 + len(y) // hop)]
    return np.abs(np.fft.rfft(np.array(frames), axis=1)).T ** 2  # (bins, T)


def signal(seconds=0.5, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 3000 * t ** 2))
    return (chirp + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


# -- the tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, norm", [("slaney", "slaney"), ("htk", None)])
def test_filterbank_matches_formula(scale, norm):
    ours = mel_filterbank(16000, 512, 40, 20.0, 7600.0, scale, norm).numpy()
    reference = np_filterbank(16000, 512, 40, 20.0, 7600.0, scale, norm == "slaney")
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7)


def test_log_mel_and_mfcc_match_numpy():
    y = signal()
    power = np_power_spectrogram(y, 512, 400, 160)
    mel = np_filterbank(16000, 512, 40, 0.0, 8000.0, "slaney", True) @ power
    module = MelSpectrogram(16000, 512, 400, 160, 40)
    ours = module(torch.from_numpy(y)).numpy()
    assert ours.shape == (40, 1 + len(y) // 160) == (40, module.num_frames(len(y)))
    np.testing.assert_allclose(ours, mel, rtol=1e-3, atol=1e-6 * mel.max())
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    log_mel = LogMelSpectrogram(16000, 512, 400, 160, 40)(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(log_mel, db, atol=2e-3)
    mfcc = MFCC(16000, 13, 512, 400, 160, 40)(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(mfcc, dct(db, type=2, norm="ortho", axis=0)[:13], atol=1e-2)


def test_batched_equals_one_by_one():
    batch = torch.from_numpy(np.stack([signal(seed=s) for s in range(3)]))
    module = MFCC(n_mfcc=20, n_mels=40)
    together = module(batch)
    for row in range(3):
        torch.testing.assert_close(together[row], module(batch[row]), atol=1e-4, rtol=1e-5)


def test_against_librosa():
    librosa = pytest.importorskip("librosa")
    y = signal(1.0)
    for htk in (False, True):
        reference = librosa.feature.melspectrogram(
            y=y, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64, fmin=20,
            fmax=7600, htk=htk, center=True, pad_mode="constant")
        ours = MelSpectrogram(16000, 512, 400, 160, 64, 20.0, 7600.0,
                              "htk" if htk else "slaney")(torch.from_numpy(y)).numpy()
        np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-6 * reference.max())
    reference = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13, n_fft=512, win_length=400,
                                     hop_length=160, n_mels=40, center=True, pad_mode="constant")
    ours = MFCC(16000, 13, 512, 400, 160, 40)(torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-2)


def test_features_gradients_and_bad_inputs():
    y = torch.from_numpy(signal(0.2)).requires_grad_(True)
    LogMelSpectrogram()(y[None]).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    module = MelSpectrogram()
    with pytest.raises(InputTypeError, match="floating-point"):
        module(torch.zeros(2, 100, dtype=torch.int16))
    with pytest.raises(ShapeError, match=r"\(B, N\)"):
        module(torch.zeros(2, 3, 100))
    with pytest.raises(ConfigError, match="win_length"):
        MelSpectrogram(n_fft=256, win_length=400)
    with pytest.raises(ConfigError, match="f_min"):
        MelSpectrogram(f_min=9000.0)
    with pytest.raises(ConfigError, match="n_mfcc"):
        MFCC(n_mfcc=50, n_mels=40)


def test_spec_augment_masks():
    x = torch.randn(64, 40, 101) + 10.0  # no cell is 0 before masking
    augment = SpecAugment(freq_mask_param=8, time_mask_param=20, num_freq_masks=1,
                          num_time_masks=1, seed=0)
    assert augment.eval()(x) is x  # identity in eval mode
    out = augment.train()(x)
    masked = out == 0.0
    bands = masked.all(dim=2)  # (B, F): whole frequency rows masked
    spans = masked.all(dim=1)  # (B, T): whole time columns masked
    # every masked cell lies in a masked row or column; the widths respect the parameters
    assert torch.equal(masked, bands[:, :, None] | spans[:, None, :])
    assert int(bands.sum(dim=1).max()) <= 8 and int(spans.sum(dim=1).max()) <= 20
    assert bands.any(dim=1).float().mean() > 0.5 and spans.any(dim=1).float().mean() > 0.5
    for row in range(64):  # one mask each: the masked rows / columns are contiguous
        for line in (bands[row], spans[row]):
            where = line.nonzero().flatten()
            if len(where):
                assert int(where[-1] - where[0]) + 1 == len(where)
    again = SpecAugment(8, 20, 1, 1, seed=0).train()(x)
    torch.testing.assert_close(again, out)  # seeded: the same masks
    four = augment.transform(x[:, None].expand(-1, 2, -1, -1))
    assert torch.equal(four[:, 0], four[:, 1])  # the same mask on every channel
    ratio = SpecAugment(0, 50, 0, 3, time_mask_ratio=0.1, seed=1).transform(x)
    assert int((ratio == 0).all(dim=1).sum(dim=1).max()) <= 3 * 10
    with pytest.raises(ShapeError, match="SpecAugment"):
        augment.transform(torch.zeros(4, 5))
    with pytest.raises(ConfigError, match="time_mask_ratio"):
        SpecAugment(time_mask_ratio=0.0)
    with pytest.raises(ConfigError, match="num_freq_masks"):
        SpecAugment(num_freq_masks=-1)
