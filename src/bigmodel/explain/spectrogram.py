"""Axes with units for explanations of spectrogram inputs (a speech model's log-mel or MFCC frames).

A speech model is explained on its spectrogram ``(B, 1, F, T)``; the figure then needs time in
seconds and frequency in Hz (mel bands) or MFCC coefficients. :func:`spectrogram_axes` reads them
from the model's own feature extractor, found without per-model code: a submodule with
``sample_rate``, ``hop_length`` and a mel filter bank ``filters`` ``(n_mels, n_fft // 2 + 1)``
(``bigmodel.nn.audio_features.MelSpectrogram`` answers this), and for MFCC features a submodule with
``n_mfcc``. The result is a small JSON-ready dict, kept in ``Explanation.extras["spectrogram"]``::

    {"seconds_per_frame": 0.01, "sample_rate": 16000, "features": "mel",
     "band_hz": [..., one centre frequency per mel band]}         # or "features": "mfcc"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

FEATURES = ("mel", "mfcc")


def _mel_module(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        filters = getattr(module, "filters", None)
        if isinstance(filters, torch.Tensor) and filters.dim() == 2 \
                and isinstance(getattr(module, "sample_rate", None), int) \
                and isinstance(getattr(module, "hop_length", None), int):
            return module
    return None


def spectrogram_axes(model: nn.Module, inputs_shape: Sequence[int]) -> dict[str, Any] | None:
    """Time and frequency units of spectrogram inputs ``(B, 1, F, T)`` of ``model``, or None when
    the model has no mel feature extractor or the inputs are not its ``F`` bands / coefficients."""
    shape = tuple(int(s) for s in inputs_shape)
    if len(shape) != 4 or shape[1] != 1:
        return None
    mel = _mel_module(model)
    if mel is None:
        return None
    bands = shape[2]
    filters = mel.filters.detach().double().cpu()  # (n_mels, bins)
    axes: dict[str, Any] = {"seconds_per_frame": mel.hop_length / mel.sample_rate,
                            "sample_rate": mel.sample_rate}
    if bands == filters.shape[0]:
        bins = torch.linspace(0.0, mel.sample_rate / 2.0, filters.shape[1], dtype=torch.float64)
        weight = filters.sum(dim=1).clamp_min(1e-12)
        axes["features"] = "mel"
        axes["band_hz"] = [round(float(v), 1) for v in (filters * bins).sum(dim=1) / weight]
        return axes
    if any(getattr(m, "n_mfcc", None) == bands for m in model.modules()):
        axes["features"] = "mfcc"
        return axes
    return None


def _hz(value: float) -> str:
    return f"{value / 1000:.3g}k" if value >= 1000 else f"{value:.0f}"


def label_axes(ax: Any, axes: dict[str, Any], frames: int, bands: int,
               show_x: bool = True) -> tuple[float, float, float, float]:
    """Put time (s) on the x axis and frequency (Hz, mel bands) or MFCC coefficients on the y axis
    of ``ax`` for a ``(bands, frames)`` image; returns the ``extent`` to draw it with
    (``origin="lower"``: low frequencies at the bottom)."""
    step = float(axes["seconds_per_frame"])
    extent = (-0.5 * step, (frames - 0.5) * step, -0.5, bands - 0.5)
    if show_x:
        ax.set_xlabel("time (s)")
    if axes.get("features") == "mel" and len(axes.get("band_hz", ())) == bands:
        centres = np.asarray(axes["band_hz"])
        ticks = sorted(set(np.linspace(0, bands - 1, min(bands, 6)).round().astype(int).tolist()))
        ax.set_yticks(ticks, [_hz(centres[i]) for i in ticks])
        ax.set_ylabel("frequency (Hz, mel bands)")
    else:
        ax.set_ylabel("MFCC coefficient")
    return extent


__all__ = ["FEATURES", "label_axes", "spectrogram_axes"]
