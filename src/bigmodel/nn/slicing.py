"""Slicing a layer's weights in place: what structured pruning does to any layer, plain PyTorch or
Keras surface (``bigmodel.compress`` and the channel specs of ``bigmodel.keras`` layers use it).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["slice_param", "to_channels_last"]


def slice_param(module: nn.Module, name: str, keep: torch.Tensor, dim: int) -> None:
    """Keep only the indices ``keep`` (a LongTensor) of ``module.<name>`` along ``dim``.

    A ``Parameter`` stays a ``Parameter`` with its ``requires_grad``; a registered buffer stays a
    buffer; a ``None`` attribute (no bias) is left alone.
    """
    tensor = getattr(module, name)
    if tensor is None:
        return
    new = tensor.detach().index_select(dim, keep.to(tensor.device)).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=tensor.requires_grad))
    else:
        setattr(module, name, new)  # a registered buffer stays a buffer


def to_channels_last(module: nn.Module, name: str) -> None:
    """Store the 4-D tensor ``module.<name>`` in ``channels_last`` memory format again (slicing
    made it contiguous); other ranks and ``None`` are left alone."""
    tensor = getattr(module, name)
    if tensor is not None and tensor.ndim == 4:
        with torch.no_grad():
            tensor.data = torch.empty_like(tensor, memory_format=torch.channels_last).copy_(tensor)
