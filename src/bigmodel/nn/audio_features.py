"""Speech features as ``nn.Module``s on ``torch.stft``, batched: mel / log-mel spectrograms, MFCCs,
and SpecAugment.

Shapes: waveforms ``(B, N)`` (or one ``(N,)``) -> features ``(B, F, T)`` with
``T = 1 + N // hop_length`` frames (``center=True``: frame ``t`` is centred on sample
``t * hop_length``, the signal zero-padded by ``n_fft // 2`` on both sides, as librosa does by
default with ``pad_mode="constant"``).

Definitions (the tests check them against librosa and a NumPy implementation of the formulas):

* power spectrogram ``|STFT|**power`` with a periodic Hann window of ``win_length`` centred in
  ``n_fft``;
* mel filterbank: triangles between consecutive mel points spaced evenly from ``f_min`` to
  ``f_max`` on the ``"slaney"`` (linear below 1 kHz, logarithmic above; librosa's default) or
  ``"htk"`` (``2595 log10(1 + f / 700)``) scale; ``norm="slaney"`` scales each triangle to unit
  area (``2 / (f_right - f_left)``);
* log-mel in decibels ``10 log10(max(mel, amin))``, optionally floored at ``max - top_db`` per
  example (librosa's ``power_to_db`` with ``ref=1``);
* MFCC: the orthonormal DCT-II of the log-mel frames, first ``n_mfcc`` coefficients;
* SpecAugment (Park et al., 2019): ``num_freq_masks`` bands of width ``U{0..freq_mask_param}``
  and ``num_time_masks`` spans of width ``U{0..min(time_mask_param, time_mask_ratio * T)}`` set to
  ``mask_value``, drawn per example; active in training mode only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.nn.augment import SeededGenerators
from bigmodel.utils import checks

__all__ = ["MFCC", "LogMelSpectrogram", "MelSpectrogram", "SpecAugment", "dct_matrix",
           "hz_to_mel", "mel_filterbank", "mel_to_hz"]

MEL_SCALES = ("slaney", "htk")

# Slaney's scale: linear (200/3 Hz per mel) up to 1 kHz, then logarithmic (27 mels per 6.4x).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(freq: torch.Tensor, mel_scale: str = "slaney") -> torch.Tensor:
    """Frequencies in Hz -> mels on the ``"slaney"`` or ``"htk"`` scale."""
    freq = torch.as_tensor(freq, dtype=torch.float64)
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    linear = freq / _F_SP
    logarithmic = _MIN_LOG_MEL + torch.log(freq.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(freq >= _MIN_LOG_HZ, logarithmic, linear)


def mel_to_hz(mels: torch.Tensor, mel_scale: str = "slaney") -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    mels = torch.as_tensor(mels, dtype=torch.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = mels * _F_SP
    logarithmic = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, logarithmic, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None, mel_scale: str = "slaney",
                   norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (float32) over the rfft bins.

    Raises:
        ConfigError: bad sizes, an unknown scale or norm, or ``f_min >= f_max``.
    """
    owner = "mel_filterbank"
    checks.int_at_least(owner, "sample_rate", sample_rate, 1)
    checks.int_at_least(owner, "n_fft", n_fft, 2)
    checks.int_at_least(owner, "n_mels", n_mels, 1)
    if mel_scale not in MEL_SCALES:
        raise ConfigError(f"{owner}: 'mel_scale' must be one of {MEL_SCALES}; received "
                          f"{mel_scale!r}")
    if norm not in (None, "slaney"):
        raise ConfigError(f"{owner}: 'norm' must be None or 'slaney'; received {norm!r}")
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ConfigError(f"{owner}: need 0 <= f_min < f_max <= sample_rate / 2 = "
                          f"{sample_rate / 2:g}; received f_min={f_min!r}, f_max={f_max!r}")
    bins = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    with torch.device("cpu"):  # read back as floats: must be real even when built on "meta"
        mel_low = float(hz_to_mel(torch.tensor(f_min), mel_scale))
        mel_high = float(hz_to_mel(torch.tensor(f_max), mel_scale))
    mel_points = torch.linspace(mel_low, mel_high, n_mels + 2, dtype=torch.float64)
    hz_points = mel_to_hz(mel_points, mel_scale)  # (n_mels + 2,)
    left, centre, right = hz_points[:-2, None], hz_points[1:-1, None], hz_points[2:, None]
    rising = (bins[None, :] - left) / (centre - left)
    falling = (right - bins[None, :]) / (right - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mels, n_bins)
    if norm == "slaney":
        weights = weights * (2.0 / (right - left))
    return weights.float()


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II as a ``(n_mfcc, n_mels)`` matrix: ``mfcc = D @ log_mel``."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


def _waveforms(owner: str, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(B, N)`` float waveforms (a single ``(N,)`` gets a batch axis; the flag says so)."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{owner} expects a torch.Tensor of waveforms; received {describe(x)}")
    if not x.is_floating_point():
        raise InputTypeError(f"{owner} expects floating-point samples in [-1, 1]; received "
                             f"{describe(x)}")
    if x.dim() == 1:
        return x.unsqueeze(0), True
    if x.dim() != 2 or x.shape[-1] == 0:
        raise ShapeError(f"{owner} expects waveforms (B, N) or (N,) with N > 0; received "
                         f"{describe(x)}")
    return x, False


class MelSpectrogram(nn.Module):
    """Mel power spectrogram: ``(B, N)`` waveforms -> ``(B, n_mels, 1 + N // hop_length)``.

    Args:
        sample_rate: Hz.
        n_fft: FFT size (``n_fft // 2 + 1`` frequency bins).
        win_length: Hann window length in samples (default ``n_fft``); centred in ``n_fft``.
        hop_length: samples between frames (default ``win_length // 4``).
        n_mels, f_min, f_max, mel_scale, norm: the filterbank (:func:`mel_filterbank`).
        power: 2.0 for power, 1.0 for magnitude.

    Raises:
        ConfigError: bad sizes or names.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int | None = None,
                 hop_length: int | None = None, n_mels: int = 40, f_min: float = 0.0,
                 f_max: float | None = None, mel_scale: str = "slaney",
                 norm: str | None = "slaney", power: float = 2.0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.win_length = n_fft if win_length is None else checks.int_at_least(
            owner, "win_length", win_length, 1)
        if self.win_length > n_fft:
            raise ConfigError(f"{owner}: 'win_length' ({self.win_length}) must not exceed n_fft "
                              f"({n_fft})")
        self.hop_length = (max(self.win_length // 4, 1) if hop_length is None
                           else checks.int_at_least(owner, "hop_length", hop_length, 1))
        if power not in (1.0, 2.0):
            raise ConfigError(f"{owner}: 'power' must be 1.0 or 2.0; received {power!r}")
        self.sample_rate, self.n_fft, self.n_mels = sample_rate, n_fft, n_mels
        self.f_min, self.f_max, self.mel_scale, self.norm = f_min, f_max, mel_scale, norm
        self.power = float(power)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True),
                             persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max,
                                                       mel_scale, norm), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples`` samples."""
        return 1 + num_samples // self.hop_length

    def power_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``|STFT|**power`` ``(B, n_fft // 2 + 1, T)`` of waveforms ``(B, N)``."""
        waveforms, _ = _waveforms(type(self).__name__, x)
        padding = self.n_fft // 2
        # Zero padding by hand: torch.stft's own center padding only offers reflect/constant
        # through a pad call on 3-D input; doing it here keeps (B, N) batches and any length.
        padded = torch.nn.functional.pad(waveforms, (padding, padding))
        spec = torch.stft(padded.float(), self.n_fft, hop_length=self.hop_length,
                          win_length=self.win_length, window=self.window, center=False,
                          return_complex=True)  # (B, n_fft // 2 + 1, T)
        magnitude = spec.abs()
        return magnitude.square() if self.power == 2.0 else magnitude

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.dim() == 1 if isinstance(x, torch.Tensor) else False
        mel = torch.matmul(self.filters, self.power_spectrogram(x))  # (B, n_mels, T)
        return mel.squeeze(0) if squeeze else mel

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_mels={self.n_mels}, mel_scale={self.mel_scale!r}")


class LogMelSpectrogram(nn.Module):
    """Log-mel spectrogram in dB: ``10 log10(max(mel, amin))``, floored at ``max - top_db`` per
    example when ``top_db`` is set. Other arguments are :class:`MelSpectrogram`'s."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int | None = None,
                 hop_length: int | None = None, n_mels: int = 40, f_min: float = 0.0,
                 f_max: float | None = None, mel_scale: str = "slaney",
                 norm: str | None = "slaney", amin: float = 1e-10,
                 top_db: float | None = 80.0) -> None:
        super().__init__()
        if not amin > 0:
            raise ConfigError(f"LogMelSpectrogram: 'amin' must be > 0; received {amin!r}")
        if top_db is not None and not top_db > 0:
            raise ConfigError(f"LogMelSpectrogram: 'top_db' must be None or > 0; received "
                              f"{top_db!r}")
        self.mel = MelSpectrogram(sample_rate, n_fft, win_length, hop_length, n_mels, f_min,
                                  f_max, mel_scale, norm, power=2.0)
        self.amin, self.top_db = float(amin), top_db
        self.n_mels = n_mels

    def num_frames(self, num_samples: int) -> int:
        return self.mel.num_frames(num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.mel(x)
        db = 10.0 * torch.log10(mel.clamp(min=self.amin))
        if self.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        return db


class MFCC(nn.Module):
    """Mel-frequency cepstral coefficients ``(B, n_mfcc, T)``: the orthonormal DCT-II of the
    log-mel spectrogram (:class:`LogMelSpectrogram` arguments)."""

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 13, n_fft: int = 512,
                 win_length: int | None = None, hop_length: int | None = None, n_mels: int = 40,
                 f_min: float = 0.0, f_max: float | None = None, mel_scale: str = "slaney",
                 norm: str | None = "slaney", amin: float = 1e-10,
                 top_db: float | None = 80.0) -> None:
        super().__init__()
        checks.int_at_least("MFCC", "n_mfcc", n_mfcc, 1)
        if n_mfcc > n_mels:
            raise ConfigError(f"MFCC: 'n_mfcc' ({n_mfcc}) must not exceed n_mels ({n_mels})")
        self.log_mel = LogMelSpectrogram(sample_rate, n_fft, win_length, hop_length, n_mels,
                                         f_min, f_max, mel_scale, norm, amin, top_db)
        self.n_mfcc = n_mfcc
        self.register_buffer("dct", dct_matrix(n_mfcc, n_mels), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        return self.log_mel.num_frames(num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.dct, self.log_mel(x))  # (n_mfcc, n_mels) @ (B, n_mels, T)


class SpecAugment(nn.Module):
    """Frequency and time masking of spectrograms ``(B, F, T)`` or ``(B, C, F, T)`` (the same
    masks on every channel of an example); identity in eval mode. ``transform`` always masks.

    Args:
        freq_mask_param: widest frequency band masked (``F`` in the paper).
        time_mask_param: widest time span masked (``T`` in the paper).
        num_freq_masks, num_time_masks: masks per example (they may overlap).
        time_mask_ratio: a time mask covers at most this fraction of the frames (``p``).
        mask_value: value written into masked cells.
        seed: a seed for a private generator (None: the global torch RNG).
    """

    def __init__(self, freq_mask_param: int = 8, time_mask_param: int = 20,
                 num_freq_masks: int = 2, num_time_masks: int = 2, time_mask_ratio: float = 1.0,
                 mask_value: float = 0.0, seed: int | None = None) -> None:
        super().__init__()
        for name, value in (("freq_mask_param", freq_mask_param),
                            ("time_mask_param", time_mask_param),
                            ("num_freq_masks", num_freq_masks),
                            ("num_time_masks", num_time_masks)):
            checks.int_at_least("SpecAugment", name, value, 0)
        if not isinstance(time_mask_ratio, (int, float)) or not 0.0 < time_mask_ratio <= 1.0:
            raise ConfigError(f"SpecAugment: 'time_mask_ratio' must be in (0, 1]; received "
                              f"{time_mask_ratio!r}")
        self.freq_mask_param, self.time_mask_param = freq_mask_param, time_mask_param
        self.num_freq_masks, self.num_time_masks = num_freq_masks, num_time_masks
        self.time_mask_ratio, self.mask_value = float(time_mask_ratio), float(mask_value)
        self.seed = seed
        self.generators = SeededGenerators(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x) if self.training else x

    @staticmethod
    def _band_masks(batch: int, count: int, widest: int, size: int, device: torch.device,
                    generator: torch.Generator | None) -> torch.Tensor:
        """``(B, size)`` True where any of ``count`` random bands of width ``U{0..widest}`` lies."""
        if count == 0 or widest == 0 or size == 0:
            return torch.zeros(batch, size, dtype=torch.bool, device=device)
        widest = min(widest, size)
        width = torch.floor(torch.rand(batch, count, device=device, generator=generator)
                            * (widest + 1))
        start = torch.floor(torch.rand(batch, count, device=device, generator=generator)
                            * (size - width + 1))
        index = torch.arange(size, device=device, dtype=width.dtype)
        inside = (index >= start[..., None]) & (index < (start + width)[..., None])  # (B, n, size)
        return inside.any(dim=1)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Mask ``x`` whatever the module's mode."""
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            raise ShapeError(f"SpecAugment expects spectrograms (B, F, T) or (B, C, F, T); "
                             f"received {describe(x)}")
        batch, freq, steps = x.shape[0], x.shape[-2], x.shape[-1]
        generator = self.generators.get(x.device)
        widest_time = min(self.time_mask_param, int(self.time_mask_ratio * steps))
        freq_mask = self._band_masks(batch, self.num_freq_masks, self.freq_mask_param, freq,
                                     x.device, generator)
        time_mask = self._band_masks(batch, self.num_time_masks, widest_time, steps, x.device,
                                     generator)
        mask = freq_mask[:, :, None] | time_mask[:, None, :]  # (B, F, T)
        if x.dim() == 4:
            mask = mask[:, None]
        return x.masked_fill(mask, self.mask_value)

    def extra_repr(self) -> str:
        return (f"freq_mask_param={self.freq_mask_param}, time_mask_param={self.time_mask_param}, "
                f"num_freq_masks={self.num_freq_masks}, num_time_masks={self.num_time_masks}, "
                f"seed={self.seed}")
