"""Audio front ends of Keras 3: ``STFTSpectrogram`` (a strided convolution with Fourier kernels,
which training can tune) and ``MelSpectrogram`` (``torch.stft`` -> mel filter bank -> decibels).

Both compute what Keras 3 computes on its torch backend: the same kernels, framing, padding,
mel matrix (HTK formula, as ``keras.layers.MelSpectrogram.linear_to_mel_weight_matrix``) and
decibel clipping (``top_db`` below the largest value of the whole batch, as Keras does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.keras import initializers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import check_positive_int
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["MelSpectrogram", "STFTSpectrogram"]

_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")
_EPSILON = 1e-7  # keras.backend.epsilon()
_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


class STFTSpectrogram(Layer):
    """Short-time Fourier transform of ``(batch, time, channels)`` signals as a layer.

    Args:
        mode: ``"log"`` (log magnitude), ``"magnitude"``, ``"psd"``, ``"real"``, ``"imag"``,
            ``"angle"`` or ``"stft"`` (real and imaginary parts stacked along frequency).
        frame_length / frame_step / fft_length: window size, hop (default half the frame) and
            FFT size (default the next power of two); ``fft_length // 2 + 1`` frequency bins.
        window: a SciPy window name, an array of ``frame_length`` values, or None.
        periodic: a periodic (DFT-even) window.
        scaling: ``"density"``, ``"spectrum"`` or None.
        padding: ``"valid"`` or ``"same"``.
        expand_dims: keep channels apart: ``(batch, frames, bins, channels)``; else
            ``(batch, frames, channels * bins)``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Weights: ``real_kernel`` and ``imag_kernel`` (``(frame_length, 1, bins)``, Keras layout),
    initialized by ``keras.initializers.STFT``.

    Raises:
        ConfigError: an argument outside the values above (named in the message).
        ShapeError: an input that is not ``(batch, time, channels)``.
    """

    input_ndim = 3

    def __init__(self, mode: str = "log", frame_length: int = 256, frame_step: int | None = None,
                 fft_length: int | None = None, window: Any = "hann", periodic: bool = False,
                 scaling: str | None = "density", padding: str = "valid",
                 expand_dims: bool = False, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        where = f"Layer '{self.name}' (STFTSpectrogram)"
        self.frame_length = check_positive_int(self, "frame_length", frame_length)
        if frame_step is not None and (check_positive_int(self, "frame_step", frame_step)
                                       > frame_length):
            raise ConfigError(f"{where}: `frame_step` should be a positive integer not greater "
                              f"than `frame_length`. Received frame_step={frame_step}, "
                              f"frame_length={frame_length}")
        if fft_length is not None and check_positive_int(self, "fft_length",
                                                         fft_length) < frame_length:
            raise ConfigError(f"{where}: `fft_length` should be not less than `frame_length`. "
                              f"Received fft_length={fft_length}, frame_length={frame_length}")
        for name, value, allowed in (("mode", mode, _MODES),
                                     ("scaling", scaling, ("density", "spectrum", None)),
                                     ("padding", padding, ("valid", "same")),
                                     ("data_format", data_format,
                                      ("channels_last", "channels_first", None))):
            if value not in allowed:
                raise ConfigError(f"{where}: invalid value for argument `{name}`: expected one "
                                  f"of {list(allowed)}. Received: {name}={value!r}")
        initializers.stft_window(window, self.frame_length, bool(periodic), where)  # fail early
        self.mode, self.window, self.periodic = mode, window, bool(periodic)
        self.frame_step, self.fft_length = frame_step, fft_length
        self._frame_step = frame_step or self.frame_length // 2
        self._fft_length = fft_length or 2 ** int(math.ceil(math.log2(self.frame_length)))
        self.scaling, self.padding, self.expand_dims = scaling, padding, bool(expand_dims)
        self.data_format = data_format or "channels_last"
        for name in ("real_kernel", "imag_kernel"):
            self.register_parameter(name, None)

    def build(self, input_shape: Shape) -> None:
        shape = (self.frame_length, 1, self._fft_length // 2 + 1)
        for side in ("real", "imag"):
            if self.mode != ("imag" if side == "real" else "real"):
                init = initializers.STFT(side, self.window, self.scaling, self.periodic)
                # stored (bins, 1, frame_length): the layout of F.conv1d's weight
                self.add_weight(f"{side}_kernel", shape, init, torch_perm=(2, 1, 0))
        super().build(input_shape)

    def _conv(self, inputs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """(B, T, C) or (B, C, T) -> (B, C, bins, frames)."""
        if self.data_format == "channels_last":
            inputs = inputs.transpose(1, 2)
        batch, channels, length = inputs.shape
        x = inputs.reshape(batch * channels, 1, length)
        if self.padding == "same":
            out = (length + self._frame_step - 1) // self._frame_step
            total = max(0, (out - 1) * self._frame_step + self.frame_length - length)
            x = F.pad(x, (total // 2, total - total // 2))
        y = F.conv1d(x, kernel.to(x.dtype), stride=self._frame_step)
        return y.reshape(batch, channels, y.shape[1], y.shape[2])

    def _adjust(self, out: torch.Tensor) -> torch.Tensor:
        batch, channels, bins, frames = out.shape
        if self.expand_dims:
            return out.permute(0, 3, 2, 1) if self.data_format == "channels_last" \
                else out.transpose(2, 3)
        out = out.reshape(batch, channels * bins, frames)
        return out.transpose(1, 2) if self.data_format == "channels_last" else out

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not inputs.is_floating_point():
            raise InputTypeError(f"Layer '{self.name}' (STFTSpectrogram): invalid input type. "
                                 f"Expected float16, float32 or float64. Received: input "
                                 f"type={inputs.dtype}")
        real = self._conv(inputs, self.real_kernel) if self.mode != "imag" else None
        imag = self._conv(inputs, self.imag_kernel) if self.mode != "real" else None
        if self.mode in ("real", "imag"):
            return self._adjust(real if self.mode == "real" else imag)
        if self.mode == "angle":
            return self._adjust(torch.atan2(imag, real))
        if self.mode == "stft":
            return self._adjust(torch.cat([real, imag], dim=2))
        power = real.square() + imag.square()
        if self.mode == "psd":
            return self._adjust(power + F.pad(power[:, :, 1:-1, :], (0, 0, 1, 1)))
        magnitude = self._adjust(torch.sqrt(torch.clamp(power, min=_EPSILON)))
        if self.mode == "magnitude":
            return magnitude
        return torch.log(torch.clamp(magnitude, min=_EPSILON))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch = input_shape[0]
        if len(input_shape) != 3:
            raise ShapeError(f"Layer '{self.name}' (STFTSpectrogram) expects inputs of shape "
                             f"(batch, time, channels); received {tuple(input_shape)}")
        last = self.data_format == "channels_last"
        length, channels = (input_shape[1], input_shape[2]) if last else \
            (input_shape[2], input_shape[1])
        bins = (self._fft_length // 2 + 1) * (2 if self.mode == "stft" else 1)
        if length is None:
            frames = None
        elif self.padding == "same":
            frames = (length + self._frame_step - 1) // self._frame_step
        else:
            frames = (length - self.frame_length) // self._frame_step + 1
        if self.expand_dims:
            return (batch, frames, bins, channels) if last else (batch, channels, frames, bins)
        size = None if channels is None else channels * bins
        return (batch, frames, size) if last else (batch, size, frames)

    def get_config(self) -> dict[str, Any]:
        window = self.window.tolist() if isinstance(self.window, np.ndarray) else self.window
        return {**super().get_config(), "mode": self.mode, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "fft_length": self.fft_length, "window": window,
                "periodic": self.periodic, "scaling": self.scaling, "padding": self.padding,
                "data_format": self.data_format, "expand_dims": self.expand_dims}


class MelSpectrogram(Layer):
    """Mel spectrogram of ``(batch, samples)`` (or ``(samples,)``) audio, as Keras 3 computes it.

    ``|stft|**mag_exp`` (``torch.stft``, centered frames, periodic Hann/Hamming window) -> mel
    filter bank -> optionally decibels, clipped ``top_db`` below the batch's largest value.
    Output: ``(batch, num_mel_bins, frames)`` with ``frames = 1 + samples // sequence_stride``.

    Args:
        fft_length / sequence_stride / sequence_length: FFT size, hop, window length (default
            ``fft_length``; at most ``fft_length``).
        window: ``"hann"``, ``"hamming"`` or None.
        sampling_rate / num_mel_bins / min_freq / max_freq: the mel filter bank (``max_freq``
            defaults to ``sampling_rate / 2``).
        power_to_db / top_db / mag_exp / min_power / ref_power: as in Keras.

    Raises:
        ConfigError: an invalid argument (named in the message).
    """

    def __init__(self, fft_length: int = 2048, sequence_stride: int = 512,
                 sequence_length: int | None = None, window: str | None = "hann",
                 sampling_rate: int = 16000, num_mel_bins: int = 128, min_freq: float = 20.0,
                 max_freq: float | None = None, power_to_db: bool = True, top_db: float = 80.0,
                 mag_exp: float = 2.0, min_power: float = 1e-10, ref_power: float = 1.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        where = f"Layer '{self.name}' (MelSpectrogram)"
        self.fft_length = check_positive_int(self, "fft_length", fft_length)
        self.sequence_stride = check_positive_int(self, "sequence_stride", sequence_stride)
        self.sequence_length = fft_length if sequence_length is None else check_positive_int(
            self, "sequence_length", sequence_length)
        if self.fft_length < self.sequence_length:
            raise ConfigError(f"{where}: `fft_length` must be greater than or equal to "
                              f"`sequence_length`. Received: sequence_length="
                              f"{self.sequence_length}, fft_length={self.fft_length}")
        if window not in ("hann", "hamming", None):
            raise ConfigError(f"{where}: invalid value for argument `window`: expected 'hann', "
                              f"'hamming' or None. Received: window={window!r}")
        self.window = window
        self.sampling_rate = sampling_rate
        self.num_mel_bins = check_positive_int(self, "num_mel_bins", num_mel_bins)
        self.min_freq = min_freq
        self.max_freq = max_freq or int(sampling_rate / 2)
        self.power_to_db, self.top_db, self.mag_exp = bool(power_to_db), top_db, mag_exp
        self.min_power, self.ref_power = min_power, ref_power

    def mel_matrix(self, num_spectrogram_bins: int) -> torch.Tensor:
        """The ``(num_spectrogram_bins, num_mel_bins)`` HTK filter bank (peaks of 1)."""
        def to_mel(hz: torch.Tensor) -> torch.Tensor:
            return _MEL_HIGH_FREQUENCY_Q * torch.log(1.0 + hz / _MEL_BREAK_FREQUENCY_HERTZ)

        linear = torch.linspace(0.0, self.sampling_rate / 2.0, num_spectrogram_bins)[1:]
        bins_mel = to_mel(linear).unsqueeze(1)
        edges = torch.linspace(float(to_mel(torch.tensor(float(self.min_freq)))),
                               float(to_mel(torch.tensor(float(self.max_freq)))),
                               self.num_mel_bins + 2)
        lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
        weights = torch.clamp(torch.minimum((bins_mel - lower) / (center - lower),
                                            (upper - bins_mel) / (upper - center)), min=0.0)
        return F.pad(weights, (0, 0, 1, 0))  # the DC bin, which HTK leaves out

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs if inputs.dtype in (torch.float32, torch.float64) else inputs.float()
        if self.window is None:
            window = torch.ones(self.sequence_length, dtype=x.dtype, device=x.device)
        else:
            make = torch.hann_window if self.window == "hann" else torch.hamming_window
            window = make(self.sequence_length, periodic=True, dtype=x.dtype, device=x.device)
        flat = x.reshape(-1, x.shape[-1])
        spec = torch.stft(flat, n_fft=self.fft_length, hop_length=self.sequence_stride,
                          win_length=self.sequence_length, window=window, center=True,
                          return_complex=True)
        spec = spec.reshape(*x.shape[:-1], *spec.shape[-2:]).transpose(-1, -2)
        power = torch.sqrt(spec.real.square() + spec.imag.square()) ** self.mag_exp
        mel = power @ self.mel_matrix(power.shape[-1]).to(power.dtype).to(power.device)
        if self.power_to_db:
            db = 10.0 * torch.log10(torch.clamp(mel, min=self.min_power))
            db = db - 10.0 * math.log10(max(abs(self.ref_power), self.min_power))
            mel = torch.maximum(db, db.max() - self.top_db)
        return mel.transpose(-1, -2)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        length = input_shape[-1]
        frames = None if length is None else 1 + length // self.sequence_stride
        if len(input_shape) == 1:
            return (self.num_mel_bins, frames)
        return (input_shape[0], self.num_mel_bins, frames)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride, "sequence_length": self.sequence_length,
                "window": self.window, "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins, "min_freq": self.min_freq,
                "max_freq": self.max_freq, "power_to_db": self.power_to_db,
                "top_db": self.top_db, "mag_exp": self.mag_exp, "min_power": self.min_power,
                "ref_power": self.ref_power}
