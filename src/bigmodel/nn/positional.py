"""Position information for attention models: sinusoidal, learned, and rotary (RoPE).

- Sinusoidal (Vaswani et al., 2017, section 3.5): ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``,
  ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``, added to the token embeddings. No parameters.
- Learned: a trainable ``(max_length, d)`` table, added to the embeddings (GPT-2, ViT).
- Rotary (Su et al., 2021, RoFormer, eq. 34): each pair of features ``(x_{2i}, x_{2i+1})`` of a query
  or key at position ``m`` is rotated by the angle ``m * theta_i`` with
  ``theta_i = base^(-2i/d)``; the dot product of a rotated query and key then depends only on
  their distance. Applied inside attention to ``(batch, heads, length, head_dim)`` tensors.

Every module takes an ``offset``: the position of the first element (the length of a key/value
cache during incremental decoding). Positions past ``max_length`` are an error that names the
length received and the maximum.
"""

from __future__ import annotations

import torch
from torch import nn

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.utils import checks

__all__ = ["LearnedPositionalEmbedding", "RotaryEmbedding", "SinusoidalPositionalEncoding",
           "sinusoidal_encoding"]


def _check_length(owner: str, length: int, offset: int, max_length: int) -> None:
    if offset < 0:
        raise ShapeError(f"{owner}: offset must be >= 0; received {offset}")
    if offset + length > max_length:
        raise ShapeError(f"{owner}: sequence of length {length} at offset {offset} needs positions up "
                         f"to {offset + length}, longer than the maximum length {max_length} "
                         "(raise max_length or shorten the input)")


def sinusoidal_encoding(length: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The paper's table ``(length, d_model)``: sines at even features, cosines at odd ones."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    rates = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (ceil(d/2),)
    angles = position * rates
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to ``(batch, length, d_model)`` inputs.

    The table is a non-persistent buffer: it is not part of the state dict (it is recomputed).

    Raises:
        ShapeError: the input is longer than ``max_length`` (with the offset) or has another width.
    """

    def __init__(self, d_model: int, max_length: int = 512) -> None:
        super().__init__()
        self.d_model = checks.positive_int("SinusoidalPositionalEncoding", "d_model", d_model)
        self.max_length = checks.positive_int("SinusoidalPositionalEncoding", "max_length", max_length)
        self.register_buffer("table", sinusoidal_encoding(max_length, d_model), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"SinusoidalPositionalEncoding: expected (batch, length, {self.d_model});"
                             f" received {tuple(x.shape)}")
        _check_length("SinusoidalPositionalEncoding", x.shape[1], offset, self.max_length)
        return x + self.table[offset: offset + x.shape[1]].to(x.dtype)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_length={self.max_length}"


class LearnedPositionalEmbedding(nn.Module):
    """Adds a trainable ``(max_length, d_model)`` table to ``(batch, length, d_model)`` inputs.

    Args:
        init_std: standard deviation of the normal initialization (0.02, as GPT-2 and ViT).
    """

    def __init__(self, max_length: int, d_model: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.max_length = checks.positive_int("LearnedPositionalEmbedding", "max_length", max_length)
        self.d_model = checks.positive_int("LearnedPositionalEmbedding", "d_model", d_model)
        self.weight = nn.Parameter(torch.empty(max_length, d_model))
        nn.init.normal_(self.weight, std=init_std)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"LearnedPositionalEmbedding: expected (batch, length, {self.d_model}); "
                             f"received {tuple(x.shape)}")
        _check_length("LearnedPositionalEmbedding", x.shape[1], offset, self.max_length)
        return x + self.weight[offset: offset + x.shape[1]].to(x.dtype)

    def extra_repr(self) -> str:
        return f"max_length={self.max_length}, d_model={self.d_model}"


class RotaryEmbedding(nn.Module):
    """Rotary position embedding for ``(..., length, head_dim)`` queries and keys.

    Args:
        head_dim: features per head (even).
        max_length: longest position supported.
        base: ``theta_i = base^(-2i/head_dim)`` (10000 in RoFormer).

    Raises:
        ConfigError: odd ``head_dim``. ShapeError: positions past ``max_length``.
    """

    def __init__(self, head_dim: int, max_length: int = 2048, base: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = checks.positive_int("RotaryEmbedding", "head_dim", head_dim)
        self.max_length = checks.positive_int("RotaryEmbedding", "max_length", max_length)
        if head_dim % 2:
            raise ConfigError(f"RotaryEmbedding: 'head_dim' must be even; received {head_dim}")
        self.base = float(base)
        theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.arange(max_length, dtype=torch.float64).unsqueeze(1) * theta  # (L, d/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.shape[-1] != self.head_dim:
            raise ShapeError(f"RotaryEmbedding: expected head_dim {self.head_dim} on the last axis; "
                             f"received {tuple(x.shape)}")
        length = x.shape[-2]
        _check_length("RotaryEmbedding", length, offset, self.max_length)
        cos = self.cos[offset: offset + length]  # (L, d/2)
        sin = self.sin[offset: offset + length]
        pairs = x.float().unflatten(-1, (self.head_dim // 2, 2))  # (..., L, d/2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rotated.flatten(-2).to(x.dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_length={self.max_length}, base={self.base}"

