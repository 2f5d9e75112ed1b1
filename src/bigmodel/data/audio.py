"""WAV files in and out, and the conversions that turn any clip into a model input.

``load_clip(path)`` is what every speech loader uses; its documented conversions are:

* **format** -- PCM WAV of 8 (unsigned), 16, 24 or 32 bits, or IEEE-float WAV (what
  ``scipy.io.wavfile`` reads); samples become float32 in [-1, 1]. Anything else (MP3, FLAC, a text
  file renamed ``.wav``) is a :class:`~bigmodel.errors.DataFileError` naming the file.
* **channels** -- stereo / multi-channel clips are mixed down to mono by averaging the channels.
* **sample rate** -- resampled to ``sample_rate`` (default 16 kHz) with a polyphase filter
  (``scipy.signal.resample_poly``; the up/down ratio is the reduced fraction of the two rates).
* **length** -- shorter clips are zero-padded equally on both sides to ``num_samples``; longer
  clips are an error by default (``long_clips="error"``), or cut to the ``num_samples`` window
  holding the most energy (``long_clips="trim"``).
* **empty / silent** -- a clip with no samples, NaN/Inf samples, or whose peak is below
  ``silence_threshold`` (default 1e-4, i.e. -80 dBFS) is a :class:`~bigmodel.errors.DataError`
  unless ``allow_silent=True``.

Writing: ``write_wav`` stores 16-bit PCM through a temporary file renamed into place (atomic).
"""

from __future__ import annotations

import math
import os
import warnings
import wave
from pathlib import Path

import numpy as np

from bigmodel.errors import ConfigError, DataError, DataFileError, ShapeError, describe
from bigmodel.utils.io import atomic_path

__all__ = ["LONG_CLIPS", "fit_length", "load_clip", "read_wav", "resample", "to_mono", "write_wav"]

LONG_CLIPS = ("error", "trim")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 samples in [-1, 1].

    Returns:
        ``(samples, sample_rate)``: samples ``(N,)`` for mono, ``(N, C)`` for ``C`` channels.

    Raises:
        DataFileError: the file is missing, unreadable, or not a WAV file scipy can decode.
    """
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"Audio file not found: {path}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError as exc:
        raise DataFileError(f"Cannot read audio file {path}: {exc}") from None
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise DataFileError(f"{path} is not a WAV file: expected a RIFF/WAVE header, found "
                            f"{head[:12]!r}; convert it to WAV (e.g. ffmpeg -i IN -ar 16000 "
                            "OUT.wav)")
    try:
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # e.g. LIST chunks: harmless
            sample_rate, data = wavfile.read(handle, mmap=False)
    except Exception as exc:  # noqa: BLE001 - scipy fails on bad bytes in many ways, even NameError
        raise DataFileError(f"{path}: cannot decode the WAV file ({exc}); expected PCM (8/16/24/"
                            "32-bit) or IEEE-float samples") from None
    return _to_float(data, path), int(sample_rate)


def _to_float(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned with 128 as zero
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        # scipy returns 24-bit samples left-justified in int32, so int32 full scale fits both.
        scale = float(2 ** (8 * data.dtype.itemsize - 1))
        return (data.astype(np.float64) / scale).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise DataFileError(f"{path}: unsupported sample type {data.dtype}")


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write float samples in [-1, 1] (``(N,)`` or ``(N, C)``) as 16-bit PCM, atomically.

    Values outside [-1, 1] are clipped.

    Raises:
        ShapeError: samples are not 1-D or 2-D.
        ConfigError: ``sample_rate`` is not a positive int.
    """
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) \
            or sample_rate < 1:
        raise ConfigError(f"write_wav: 'sample_rate' must be a positive int; received "
                          f"{sample_rate!r}")
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise ShapeError(f"write_wav: expected samples (N,) or (N, channels); received "
                         f"{describe(array)}")
    pcm = np.round(np.clip(array, -1.0, 1.0) * 32767.0).astype("<i2")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    path = Path(path)
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return path


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of ``(N, C)`` samples; ``(N,)`` is returned unchanged."""
    array = np.asarray(samples, dtype=np.float32)
    return array.mean(axis=1, dtype=np.float32) if array.ndim == 2 else array


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of ``(N,)`` or ``(N, C)`` samples from ``orig_rate`` to ``target_rate``.

    The output has ``ceil(N * target_rate / orig_rate)`` samples.
    """
    from scipy.signal import resample_poly

    for name, value in (("orig_rate", orig_rate), ("target_rate", target_rate)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"resample: '{name}' must be a positive int; received {value!r}")
    if orig_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    divisor = math.gcd(int(orig_rate), int(target_rate))
    up, down = int(target_rate) // divisor, int(orig_rate) // divisor
    return resample_poly(np.asarray(samples, dtype=np.float64), up, down, axis=0).astype(np.float32)


def fit_length(samples: np.ndarray, num_samples: int, long_clips: str = "error",
               source: str = "clip", sample_rate: int | None = None) -> np.ndarray:
    """Zero-pad ``(N,)`` samples equally on both sides, or handle a clip longer than ``num_samples``.

    Args:
        long_clips: ``"error"`` (raise) or ``"trim"`` (keep the ``num_samples`` window with the
            most energy, found with a cumulative sum).

    Raises:
        DataError: the clip is longer than ``num_samples`` and ``long_clips="error"``.
        ConfigError: unknown ``long_clips``.
    """
    if long_clips not in LONG_CLIPS:
        raise ConfigError(f"'long_clips' must be one of {', '.join(LONG_CLIPS)}; received "
                          f"{long_clips!r}")
    length = len(samples)
    if length > num_samples:
        if long_clips == "error":
            rate = f" ({length / sample_rate:.3f} s > {num_samples / sample_rate:.3f} s)" \
                if sample_rate else ""
            raise DataError(f"{source}: {length} samples is longer than the maximum of "
                            f"{num_samples}{rate}; trim it, or pass long_clips='trim' to keep "
                            "the loudest window")
        energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
        window = energy[num_samples:] - energy[: length - num_samples + 1]
        start = int(np.argmax(window))
        return np.ascontiguousarray(samples[start: start + num_samples], dtype=np.float32)
    before = (num_samples - length) // 2
    return np.pad(samples.astype(np.float32, copy=False), (before, num_samples - length - before))


def load_clip(path: str | os.PathLike, sample_rate: int = 16000, num_samples: int | None = 16000,
              long_clips: str = "error", silence_threshold: float = 1e-4,
              allow_silent: bool = False) -> np.ndarray:
    """Read one WAV file and convert it to a mono float32 clip at ``sample_rate`` (module doc).

    Args:
        path: a WAV file.
        sample_rate: output rate in Hz.
        num_samples: output length (pad / trim, see :func:`fit_length`); None keeps the length.
        long_clips: ``"error"`` or ``"trim"``, for clips longer than ``num_samples``.
        silence_threshold: a clip whose peak amplitude is below this is silent.
        allow_silent: return silent clips instead of raising.

    Returns:
        float32 samples ``(num_samples,)``.

    Raises:
        DataFileError: missing or not a readable WAV file.
        DataError: empty, silent, non-finite, or too long (``long_clips="error"``).
    """
    samples, rate = read_wav(path)
    if samples.ndim == 2 and samples.shape[1] == 0:
        raise DataError(f"{path}: the WAV file has no channels")
    samples = to_mono(samples)
    if len(samples) == 0:
        raise DataError(f"{path}: the clip is empty (0 samples); expected speech")
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: the clip holds NaN or Inf samples")
    samples = resample(samples, rate, sample_rate)
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak < silence_threshold and not allow_silent:
        raise DataError(f"{path}: the clip is silent (peak amplitude {peak:.2e} < "
                        f"silence_threshold={silence_threshold:g}); expected speech")
    if num_samples is None:
        return samples
    return fit_length(samples, num_samples, long_clips, source=str(path), sample_rate=sample_rate)
