"""WAV reading/writing and the clip conversions of bigmodel.data.audio (every file written here)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from scipy.io import wavfile

from bigmodel.data.audio import fit_length, load_clip, read_wav, resample, to_mono, write_wav
from bigmodel.errors import ConfigError, DataError, DataFileError, ShapeError


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1.0 / rate)[np.argmax(spectrum)])


def test_write_then_read_16_bit(tmp_path):
    samples = tone(440, 0.25, 16000)
    path = write_wav(tmp_path / "a.wav", samples, 16000)
    with wave.open(str(path)) as handle:  # a plain PCM file any tool reads
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, 16000)
    back, rate = read_wav(path)
    assert rate == 16000 and back.dtype == np.float32 and back.shape == samples.shape
    np.testing.assert_allclose(back, samples, atol=1.0 / 32767)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


@pytest.mark.parametrize("dtype, scale, offset", [(np.uint8, 127, 128), (np.int16, 32767, 0),
                                                  (np.int32, 2**31 - 1, 0), (np.float32, 1, 0)])
def test_read_pcm_widths_and_float(tmp_path, dtype, scale, offset):
    samples = tone(300, 0.1, 8000, amplitude=0.8)
    stored = np.round(samples.astype(np.float64) * scale + offset).astype(dtype) \
        if dtype != np.float32 else samples
    wavfile.write(tmp_path / "x.wav", 8000, stored)
    back, rate = read_wav(tmp_path / "x.wav")
    assert rate == 8000
    np.testing.assert_allclose(back, samples, atol=2.0 / 127 if dtype == np.uint8 else 1e-4)


def test_stereo_is_averaged_and_resampled(tmp_path):
    left, right = tone(500, 0.5, 44100, 0.4), tone(500, 0.5, 44100, 0.2)
    wavfile.write(tmp_path / "s.wav", 44100, np.stack([left, right], axis=1))
    samples, rate = read_wav(tmp_path / "s.wav")
    assert samples.shape == (22050, 2) and rate == 44100
    np.testing.assert_allclose(to_mono(samples), (left + right) / 2, atol=1e-6)
    clip = load_clip(tmp_path / "s.wav", sample_rate=16000, num_samples=16000)
    assert clip.shape == (16000,)
    voiced = clip[4000:12000]  # the 0.5 s tone sits in the middle of the 1 s clip
    assert abs(dominant_frequency(voiced, 16000) - 500) < 3
    np.testing.assert_allclose(np.abs(voiced).max(), 0.3, rtol=0.02)
    assert np.abs(clip[:3900]).max() == 0 and np.abs(clip[-3900:]).max() == 0  # zero padding


def test_resample_matches_scipy_and_keeps_pitch():
    from scipy.signal import resample_poly

    samples = tone(1000, 0.3, 22050)
    out = resample(samples, 22050, 16000)
    np.testing.assert_allclose(out, resample_poly(samples, 320, 441), atol=1e-6)
    assert len(out) == int(np.ceil(len(samples) * 16000 / 22050))
    assert abs(dominant_frequency(out, 16000) - 1000) < 5
    assert resample(samples, 16000, 16000) is not None
    with pytest.raises(ConfigError, match="orig_rate"):
        resample(samples, 0, 16000)


def test_fit_length_pads_centred_and_trims_loudest_window():
    samples = np.ones(10, dtype=np.float32)
    padded = fit_length(samples, 16)
    np.testing.assert_array_equal(padded, np.r_[np.zeros(3), np.ones(10), np.zeros(3)])
    loud = np.zeros(100, dtype=np.float32)
    loud[60:70] = 1.0
    trimmed = fit_length(loud, 20, long_clips="trim")
    assert len(trimmed) == 20 and trimmed.sum() == 10  # the window holding all the energy
    with pytest.raises(DataError, match=r"longer than the maximum of 20 .*0.006 s > 0.001 s"):
        fit_length(loud, 20, source="clip.wav", sample_rate=16000)
    with pytest.raises(ConfigError, match="long_clips"):
        fit_length(loud, 20, long_clips="cut")


def test_load_clip_bad_inputs(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    with pytest.raises(DataFileError, match="not a WAV file"):
        load_clip(tmp_path / "notes.wav")
    (tmp_path / "fake.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(DataFileError, match="cannot decode"):
        load_clip(tmp_path / "fake.wav")
    with pytest.raises(DataFileError, match="not found"):
        load_clip(tmp_path / "missing.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(DataError, match="empty"):
        load_clip(tmp_path / "empty.wav")
    write_wav(tmp_path / "silent.wav", np.zeros(8000), 16000)
    with pytest.raises(DataError, match="silent"):
        load_clip(tmp_path / "silent.wav")
    assert load_clip(tmp_path / "silent.wav", allow_silent=True).shape == (16000,)
    write_wav(tmp_path / "long.wav", tone(200, 1.5, 16000), 16000)
    with pytest.raises(DataError, match=r"long\.wav.*1\.500 s > 1\.000 s"):
        load_clip(tmp_path / "long.wav")
    assert load_clip(tmp_path / "long.wav", long_clips="trim").shape == (16000,)
    wavfile.write(tmp_path / "nan.wav", 16000, np.full(100, np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        load_clip(tmp_path / "nan.wav")
    with pytest.raises(ShapeError, match="write_wav"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 2, 2)), 16000)
