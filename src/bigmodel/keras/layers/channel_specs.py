"""How structured pruning slices the Keras-surface ``Dense``, ``Conv2D`` and
``BatchNormalization``: the ``channel_spec`` class attribute those layers carry (the protocol of
``bigmodel.compress.channels``: a mapping of ``ChannelHandler``'s fields). ``compress`` reads it
and never imports ``keras``; the knowledge of a Keras layer's weights stays in ``keras``.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.nn.slicing import slice_param, to_channels_last

__all__ = ["BATCH_NORMALIZATION", "CONV2D", "DENSE"]


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1)


def _dense_out(m: Any, keep: torch.Tensor) -> None:
    slice_param(m, "kernel", keep, 0)
    slice_param(m, "bias", keep, 0)
    m.units = len(keep)


def _dense_in(m: Any, keep: torch.Tensor) -> None:
    slice_param(m, "kernel", keep, 1)
    m.input_axes = {-1: len(keep)}


def _conv_axis(m: Any) -> int:
    return -1 if m.data_format == "channels_last" else 1


def _conv_out(m: Any, keep: torch.Tensor) -> None:
    slice_param(m, "kernel", keep, 0)
    slice_param(m, "bias", keep, 0)
    to_channels_last(m, "kernel")
    m.filters = len(keep)


def _conv_in(m: Any, keep: torch.Tensor) -> None:
    slice_param(m, "kernel", keep, 1)
    to_channels_last(m, "kernel")
    m.input_axes = {m._channel_axis: len(keep)}


def _norm_in(m: Any, keep: torch.Tensor) -> None:
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        if getattr(m, name, None) is not None:
            slice_param(m, name, keep, 0)
    m.input_axes = {m._axis: len(keep)}


DENSE: dict[str, Any] = dict(
    in_axis=lambda m: -1, prune_in=_dense_in, out_axis=lambda m: -1,
    num_out=lambda m: m.units, prune_out=_dense_out, out_weights=lambda m: _rows(m.kernel),
    macs=lambda m, x, y: y.numel() * m.kernel.shape[1], applies=lambda m: m.built)
CONV2D: dict[str, Any] = dict(
    in_axis=_conv_axis, prune_in=_conv_in, out_axis=_conv_axis, num_out=lambda m: m.filters,
    prune_out=_conv_out, out_weights=lambda m: _rows(m.kernel),
    macs=lambda m, x, y: y.numel() * m.kernel[0].numel(),
    applies=lambda m: m.built and m.groups == 1)
BATCH_NORMALIZATION: dict[str, Any] = dict(
    in_axis=lambda m: m._axis, prune_in=_norm_in, passthrough=True, applies=lambda m: m.built)
