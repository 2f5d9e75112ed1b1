"""Spoken-word recognizers: a 2-D CNN, a CRNN, an LSTM and a small Transformer over log-mel frames.

Every model takes raw waveforms and computes its own features, so a trained model is one file
that classifies clips (``bigmodel predict RUN_DIR clip.wav``)::

    waveforms (B, S)                         S = clip_seconds * sample_rate (16,000 for 1 s)
      frontend: log-mel dB (or MFCC)         -> (B, F, T)   F = n_mels (or n_mfcc), T = 1 + S // hop
                per-clip standardisation     (zero mean, unit variance over the whole clip)
                SpecAugment (training only)  masks set to 0
      trunk (per model)                      -> forward_features
      dropout, Linear                        -> logits (B, num_classes)    <- forward_head

    speech-cnn          4 x [Conv 3x3, BatchNorm, ReLU] with 2x2 max-pooling between them;
                        features: the last map (B, C, F/8, T/8); head: global average pooling
    speech-crnn         2 x [Conv 3x3, BatchNorm, ReLU, 2x2 max-pool], frequency x channels folded
                        into each time step, bidirectional GRU (bigmodel.nn.recurrent), mean over time
    speech-lstm         pairs of frames (B, T/2, 2F) into bigmodel.models.rnn's SequenceClassifier
                        (stacked LSTM, last hidden state)
    speech-transformer  strided Conv1d (T -> T/2) to d_model, sinusoidal positions, pre-norm
                        bigmodel.nn.transformer encoder, mean pooling

``forward`` / ``forward_features`` also accept the frontend's output -- ``(B, F, T)`` or
``(B, 1, F, T)`` from :meth:`spectrogram` -- so explanations can attribute a decision to
spectrogram cells: ``explain(model, model.spectrogram(waves).unsqueeze(1), method="saliency")``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.models.registry import register_model
from bigmodel.models.rnn import SequenceClassifier
from bigmodel.nn.audio_features import MFCC, LogMelSpectrogram, SpecAugment
from bigmodel.nn.positional import SinusoidalPositionalEncoding
from bigmodel.nn.recurrent import GRU
from bigmodel.nn.transformer import TransformerEncoder
from bigmodel.utils import checks

__all__ = ["SpeechCNN", "SpeechCRNN", "SpeechFrontend", "SpeechLSTM", "SpeechTransformer"]

_FEATURES = ("logmel", "mfcc")


class SpeechFrontend(nn.Module):
    """Waveforms -> standardised log-mel (or MFCC) features, SpecAugment in training mode.

    Args:
        sample_rate, clip_seconds: the input format; waveforms must have
            ``round(clip_seconds * sample_rate)`` samples.
        features: ``"logmel"`` (``n_mels`` bands) or ``"mfcc"`` (``n_mfcc`` coefficients).
        n_fft, win_length, hop_length, n_mels, n_mfcc: the STFT and filterbank.
        freq_masks, freq_mask_width, time_masks, time_mask_width: SpecAugment (0 masks: off).
    """

    def __init__(self, owner: str, sample_rate: int, clip_seconds: float, features: str,
                 n_fft: int, win_length: int, hop_length: int, n_mels: int, n_mfcc: int,
                 freq_masks: int, freq_mask_width: int, time_masks: int,
                 time_mask_width: int) -> None:
        super().__init__()
        self.owner = owner
        checks.positive_int(owner, "sample_rate", sample_rate)
        if not isinstance(clip_seconds, (int, float)) or not 0.05 <= clip_seconds <= 60:
            raise ConfigError(f"{owner}: 'clip_seconds' must be in [0.05, 60]; received "
                              f"{clip_seconds!r}")
        if features not in _FEATURES:
            raise ConfigError(f"{owner}: 'features' must be one of {_FEATURES}; received "
                              f"{features!r}")
        self.sample_rate, self.clip_seconds, self.kind = sample_rate, float(clip_seconds), features
        self.n_mfcc = checks.positive_int(owner, "n_mfcc", n_mfcc)
        self.num_samples = int(round(self.clip_seconds * sample_rate))
        f_max = sample_rate / 2.0
        if features == "mfcc":
            self.transform = MFCC(sample_rate, n_mfcc, n_fft, win_length, hop_length, n_mels,
                                  f_min=20.0, f_max=f_max)
            self.num_features = n_mfcc
        else:
            self.transform = LogMelSpectrogram(sample_rate, n_fft, win_length, hop_length,
                                               n_mels, f_min=20.0, f_max=f_max)
            self.num_features = n_mels
        self.num_frames = self.transform.num_frames(self.num_samples)
        self.spec_augment = SpecAugment(freq_mask_width, time_mask_width, freq_masks, time_masks)

    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Standardised features ``(B, F, T)`` of waveforms ``(B, S)`` (no SpecAugment)."""
        if not isinstance(waveforms, torch.Tensor):
            raise InputTypeError(f"{self.owner} expects a torch.Tensor; received "
                                 f"{describe(waveforms)}")
        if waveforms.dim() != 2 or waveforms.shape[1] != self.num_samples:
            raise ShapeError(f"{self.owner} expects waveforms (B, {self.num_samples}) "
                             f"({self.clip_seconds:g} s at {self.sample_rate} Hz); received "
                             f"{describe(waveforms)}. Pad or trim clips with "
                             "bigmodel.data.audio.load_clip / fit_length")
        if not waveforms.is_floating_point():
            raise InputTypeError(f"{self.owner} expects floating-point samples in [-1, 1]; "
                                 f"received {describe(waveforms)}")
        features = self.transform(waveforms.float())  # (B, F, T)
        mean = features.mean(dim=(1, 2), keepdim=True)
        std = features.std(dim=(1, 2), keepdim=True)
        return (features - mean) / (std + 1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, S)`` or features ``(B, F, T)`` / ``(B, 1, F, T)`` -> ``(B, F, T)``."""
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{self.owner} expects a torch.Tensor; received {describe(x)}")
        shape = (self.num_features, self.num_frames)
        if x.dim() == 4 and x.shape[1] == 1 and tuple(x.shape[2:]) == shape:
            x = x[:, 0]
        if x.dim() == 3:
            if tuple(x.shape[1:]) != shape or not x.is_floating_point():
                raise ShapeError(f"{self.owner} expects waveforms (B, {self.num_samples}) or "
                                 f"features (B, {shape[0]}, {shape[1]}) / (B, 1, {shape[0]}, "
                                 f"{shape[1]}); received {describe(x)}")
            features = x
        else:
            features = self.spectrogram(x)
        return self.spec_augment(features)

    def get_config(self) -> dict[str, Any]:
        mel = self.transform.log_mel.mel if self.kind == "mfcc" else self.transform.mel
        augment = self.spec_augment
        return {"sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds,
                "features": self.kind, "n_fft": mel.n_fft, "win_length": mel.win_length,
                "hop_length": mel.hop_length, "n_mels": mel.n_mels,
                "n_mfcc": self.n_mfcc,
                "freq_masks": augment.num_freq_masks, "freq_mask_width": augment.freq_mask_param,
                "time_masks": augment.num_time_masks, "time_mask_width": augment.time_mask_param}


class _SpeechClassifier(nn.Module):
    """The classifier surface shared by the four models (frontend, head, config)."""

    def _setup(self, frontend: dict, num_classes: int, dropout_rate: float) -> None:
        owner = type(self).__name__
        self.frontend = SpeechFrontend(owner, **frontend)
        self.num_classes = checks.positive_int(owner, "num_classes", num_classes)
        self.dropout_rate = checks.rate(owner, "dropout_rate", dropout_rate)
        self.dropout = nn.Dropout(self.dropout_rate)

    def _make_head(self, width: int) -> None:
        self.num_features = width
        self.classifier = nn.Linear(width, self.num_classes)

    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The standardised features ``(B, F, T)`` this model sees (no SpecAugment)."""
        return self.frontend.spectrogram(waveforms)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        features = self.dropout(self._pool(features))
        return features if pre_logits else self.classifier(features)

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for waveforms ``(B, S)`` or features (module doc)."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialized head with ``num_classes`` outputs."""
        checks.positive_int("reset_classifier", "num_classes", num_classes)
        old = self.classifier.weight
        self.classifier = nn.Linear(self.num_features, num_classes, device=old.device,
                                    dtype=old.dtype)
        self.num_classes = num_classes

    def get_config(self) -> dict[str, Any]:
        return {**self.frontend.get_config(), "num_classes": self.num_classes,
                "dropout_rate": self.dropout_rate, **self._trunk_config()}

    def _trunk_config(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SpeechCNN(_SpeechClassifier):
    """2-D CNN on the spectrogram image ``(B, 1, F, T)``; ``channels`` per block, 2x2 max-pooling
    after every block but the last; global average pooling in the head."""

    def __init__(self, frontend: dict, num_classes: int = 10, channels: list[int] | None = None,
                 dropout_rate: float = 0.2) -> None:
        super().__init__()
        self._setup(frontend, num_classes, dropout_rate)
        channels = list(channels or [16, 32, 64, 64])
        for value in channels:
            checks.positive_int("SpeechCNN", "channels", value)
        self.channels = channels
        blocks, previous = [], 1
        for index, width in enumerate(channels):
            blocks.append(_conv_block(previous, width))
            if index < len(channels) - 1:
                blocks.append(nn.MaxPool2d(2, ceil_mode=True))
            previous = width
        self.trunk = nn.Sequential(*blocks)
        self._make_head(channels[-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolution's map ``(B, C, F', T')`` (after ReLU): Grad-CAM's layer."""
        return self.trunk(self.frontend(x).unsqueeze(1))

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=(2, 3)) if features.dim() == 4 else features

    def _trunk_config(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}


class SpeechCRNN(_SpeechClassifier):
    """Convolutions then a bidirectional GRU over time: each pooled time step carries
    ``channels[-1] * F'`` features; the GRU outputs are averaged over time."""

    def __init__(self, frontend: dict, num_classes: int = 10, channels: list[int] | None = None,
                 hidden_size: int = 64, dropout_rate: float = 0.2) -> None:
        super().__init__()
        self._setup(frontend, num_classes, dropout_rate)
        channels = list(channels or [16, 32])
        for value in channels:
            checks.positive_int("SpeechCRNN", "channels", value)
        self.channels = channels
        self.hidden_size = checks.positive_int("SpeechCRNN", "hidden_size", hidden_size)
        blocks, previous, freq = [], 1, self.frontend.num_features
        for width in channels:
            blocks += [_conv_block(previous, width), nn.MaxPool2d(2, ceil_mode=True)]
            previous, freq = width, -(-freq // 2)
        self.convs = nn.Sequential(*blocks)
        self.rnn = GRU(previous * freq, hidden_size, bidirectional=True)
        self._make_head(2 * hidden_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Time-averaged GRU outputs ``(B, 2 * hidden_size)``."""
        maps = self.convs(self.frontend(x).unsqueeze(1))  # (B, C, F', T')
        steps = maps.permute(0, 3, 1, 2).flatten(2)  # (B, T', C * F')
        outputs, _ = self.rnn(steps)  # (B, T', 2H)
        return outputs.mean(dim=1)

    def _trunk_config(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "hidden_size": self.hidden_size}


class SpeechLSTM(_SpeechClassifier):
    """Stacked LSTM over the frames (:class:`bigmodel.models.rnn.SequenceClassifier` as the
    trunk); ``stack_frames`` consecutive frames are concatenated into one step (``(B, T, F)`` ->
    ``(B, ceil(T / k), k * F)``, the last step zero-padded), which divides the sequential work by
    ``k``; features: the top layer's final hidden state."""

    def __init__(self, frontend: dict, num_classes: int = 10, hidden_size: int = 128,
                 num_layers: int = 2, bidirectional: bool = False, stack_frames: int = 2,
                 dropout_rate: float = 0.2) -> None:
        super().__init__()
        self._setup(frontend, num_classes, dropout_rate)
        self.stack_frames = checks.positive_int("SpeechLSTM", "stack_frames", stack_frames)
        self.sequence = SequenceClassifier(
            input_size=self.frontend.num_features * stack_frames, num_classes=num_classes,
            hidden_size=hidden_size, num_layers=num_layers, cell="lstm",
            bidirectional=bidirectional, dropout_rate=0.0)
        self.sequence.classifier = None  # this model's own head replaces it
        self._make_head(self.sequence.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final hidden state ``(B, D * hidden_size)``."""
        frames = self.frontend(x).transpose(1, 2)  # (B, T, F)
        batch, steps, width = frames.shape
        extra = -steps % self.stack_frames
        if extra:
            frames = F.pad(frames, (0, 0, 0, extra))
        frames = frames.reshape(batch, (steps + extra) // self.stack_frames,
                                self.stack_frames * width)  # (B, T/k, k*F)
        return self.sequence.forward_features(frames)

    def _trunk_config(self) -> dict[str, Any]:
        rnn = self.sequence.encoder.rnn
        return {"hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
                "bidirectional": rnn.bidirectional, "stack_frames": self.stack_frames}


class SpeechTransformer(_SpeechClassifier):
    """Conv1d subsampling (stride 2) to ``d_model``, sinusoidal positions, a pre-norm Transformer
    encoder, mean pooling over time."""

    def __init__(self, frontend: dict, num_classes: int = 10, d_model: int = 96,
                 num_heads: int = 4, num_layers: int = 3, dff: int = 192,
                 dropout_rate: float = 0.1) -> None:
        super().__init__()
        self._setup(frontend, num_classes, dropout_rate)
        for name, value in (("d_model", d_model), ("num_heads", num_heads),
                            ("num_layers", num_layers), ("dff", dff)):
            checks.positive_int("SpeechTransformer", name, value)
        if d_model % num_heads:
            raise ConfigError(f"SpeechTransformer: d_model must be divisible by num_heads; "
                              f"received d_model={d_model}, num_heads={num_heads}")
        self.d_model, self.num_heads, self.num_layers, self.dff = d_model, num_heads, num_layers, dff
        self.subsample = nn.Conv1d(self.frontend.num_features, d_model, 3, stride=2, padding=1)
        steps = (self.frontend.num_frames - 1) // 2 + 1
        self.position = SinusoidalPositionalEncoding(d_model, steps)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, dff,
                                          dropout=self.dropout_rate, norm_first=True,
                                          activation="gelu")
        self._make_head(d_model)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the encoder states over time ``(B, d_model)``."""
        frames = F.gelu(self.subsample(self.frontend(x)))  # (B, d, T/2)
        states, _ = self.encoder(self.position(frames.transpose(1, 2)))  # (B, T/2, d)
        return states.mean(dim=1)

    def _trunk_config(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "num_heads": self.num_heads,
                "num_layers": self.num_layers, "dff": self.dff}


# -- registry --------------------------------------------------------------------------------------


def _waves(batch: int) -> torch.Tensor:
    return 0.1 * torch.randn(batch, 16000)


def _frontend(sample_rate: int, clip_seconds: float, features: str, n_fft: int, win_length: int,
              hop_length: int, n_mels: int, n_mfcc: int, freq_masks: int, freq_mask_width: int,
              time_masks: int, time_mask_width: int) -> dict:
    return {"sample_rate": sample_rate, "clip_seconds": clip_seconds, "features": features,
            "n_fft": n_fft, "win_length": win_length, "hop_length": hop_length,
            "n_mels": n_mels, "n_mfcc": n_mfcc, "freq_masks": freq_masks,
            "freq_mask_width": freq_mask_width, "time_masks": time_masks,
            "time_mask_width": time_mask_width}


@register_model("speech-cnn", example_input=_waves)
def speech_cnn(num_classes: int = 10, channels: list[int] | None = None,
               dropout_rate: float = 0.2, sample_rate: int = 16000, clip_seconds: float = 1.0,
               features: str = "logmel", n_fft: int = 512, win_length: int = 400,
               hop_length: int = 160, n_mels: int = 40, n_mfcc: int = 13, freq_masks: int = 2,
               freq_mask_width: int = 6, time_masks: int = 2,
               time_mask_width: int = 12) -> SpeechCNN:
    """2-D CNN keyword recognizer (channels default [16, 32, 64, 64])."""
    front = _frontend(sample_rate, clip_seconds, features, n_fft, win_length, hop_length, n_mels,
                      n_mfcc, freq_masks, freq_mask_width, time_masks, time_mask_width)
    return SpeechCNN(front, num_classes, channels, dropout_rate)


@register_model("speech-crnn", example_input=_waves)
def speech_crnn(num_classes: int = 10, channels: list[int] | None = None, hidden_size: int = 64,
                dropout_rate: float = 0.2, sample_rate: int = 16000, clip_seconds: float = 1.0,
                features: str = "logmel", n_fft: int = 512, win_length: int = 400,
                hop_length: int = 160, n_mels: int = 40, n_mfcc: int = 13, freq_masks: int = 2,
                freq_mask_width: int = 6, time_masks: int = 2,
                time_mask_width: int = 12) -> SpeechCRNN:
    """Convolutions + bidirectional GRU (channels default [16, 32])."""
    front = _frontend(sample_rate, clip_seconds, features, n_fft, win_length, hop_length, n_mels,
                      n_mfcc, freq_masks, freq_mask_width, time_masks, time_mask_width)
    return SpeechCRNN(front, num_classes, channels, hidden_size, dropout_rate)


@register_model("speech-lstm", example_input=_waves)
def speech_lstm(num_classes: int = 10, hidden_size: int = 128, num_layers: int = 2,
                bidirectional: bool = False, stack_frames: int = 2, dropout_rate: float = 0.2,
                sample_rate: int = 16000,
                clip_seconds: float = 1.0, features: str = "logmel", n_fft: int = 512,
                win_length: int = 400, hop_length: int = 160, n_mels: int = 40,
                n_mfcc: int = 13, freq_masks: int = 2, freq_mask_width: int = 6,
                time_masks: int = 2, time_mask_width: int = 12) -> SpeechLSTM:
    """Stacked LSTM over log-mel frames."""
    front = _frontend(sample_rate, clip_seconds, features, n_fft, win_length, hop_length, n_mels,
                      n_mfcc, freq_masks, freq_mask_width, time_masks, time_mask_width)
    return SpeechLSTM(front, num_classes, hidden_size, num_layers, bidirectional, stack_frames,
                      dropout_rate)


@register_model("speech-transformer", example_input=_waves)
def speech_transformer(num_classes: int = 10, d_model: int = 96, num_heads: int = 4,
                       num_layers: int = 3, dff: int = 192, dropout_rate: float = 0.1,
                       sample_rate: int = 16000, clip_seconds: float = 1.0,
                       features: str = "logmel", n_fft: int = 512, win_length: int = 400,
                       hop_length: int = 160, n_mels: int = 40, n_mfcc: int = 13,
                       freq_masks: int = 2, freq_mask_width: int = 6, time_masks: int = 2,
                       time_mask_width: int = 12) -> SpeechTransformer:
    """A small Transformer encoder over subsampled log-mel frames."""
    front = _frontend(sample_rate, clip_seconds, features, n_fft, win_length, hop_length, n_mels,
                      n_mfcc, freq_masks, freq_mask_width, time_masks, time_mask_width)
    return SpeechTransformer(front, num_classes, d_model, num_heads, num_layers, dff,
                             dropout_rate)
