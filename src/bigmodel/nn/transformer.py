"""Transformer encoder and decoder layers (Vaswani et al., 2017, section 3.1), post- or pre-norm.

Post-norm, as in the paper: ``x = LayerNorm(x + Dropout(Sublayer(x)))``.
Pre-norm (``norm_first=True``, GPT-2 and most later models): ``x = x + Dropout(Sublayer(LayerNorm(x)))``,
with one more LayerNorm after the last layer of a stack.

An encoder layer is self-attention + feed-forward; with ``is_causal=True`` it is also the block of a
decoder-only language model. A decoder layer adds cross-attention to the encoder output ("memory").
Shapes are ``(batch, length, d_model)``; masks follow :mod:`bigmodel.nn.attention` (True = attend;
``key_mask`` marks real tokens).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.nn.attention import KVCache, MultiHeadAttention
from bigmodel.utils import checks

__all__ = ["ACTIVATIONS", "FeedForward", "TransformerDecoder", "TransformerDecoderLayer",
           "TransformerEncoder", "TransformerEncoderLayer", "get_activation"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's approximation
    "silu": F.silu,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"Unknown activation {name!r} for a Transformer feed-forward block; "
                               f"known: {', '.join(ACTIVATIONS)}") from None


class FeedForward(nn.Module):
    """``FFN(x) = act(x W1 + b1) W2 + b2`` applied at every position (the paper's eq. 2)."""

    def __init__(self, d_model: int, dff: int, activation: str = "relu", bias: bool = True) -> None:
        super().__init__()
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.linear1 = nn.Linear(d_model, dff, bias=bias)
        self.linear2 = nn.Linear(dff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))


class _Residual(nn.Module):
    """Shared pieces of both layer kinds: dropout on each sublayer's output, norm placement."""

    norm_first: bool
    dropout: float

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, True) if self.dropout and self.training else x

    def _sublayer(self, x: torch.Tensor, norm: nn.LayerNorm, fn: Callable) -> tuple:
        """Residual connection around ``fn``; returns ``(x, extra)`` with ``fn``'s extra output."""
        if self.norm_first:
            out, extra = fn(norm(x))
            return x + self._drop(out), extra
        out, extra = fn(x)
        return norm(x + self._drop(out)), extra


class TransformerEncoderLayer(_Residual):
    """Self-attention then feed-forward, each wrapped in dropout + residual + LayerNorm.

    Args:
        d_model: model width. num_heads: attention heads (must divide ``d_model``).
        dff: hidden width of the feed-forward block.
        dropout: residual dropout on each sublayer's output (the paper's ``P_drop``).
        attention_dropout: dropout on the attention weights.
        activation: ``relu`` (paper), ``gelu``, ``gelu_tanh`` or ``silu``.
        norm_first: pre-norm instead of the paper's post-norm.
        layer_norm_eps: epsilon of the LayerNorms.
        bias: biases in the linear layers.
    """

    def __init__(self, d_model: int, num_heads: int, dff: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation: str = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.dropout = checks.rate("TransformerEncoderLayer", "dropout", dropout)
        checks.rate("TransformerEncoderLayer", "attention_dropout", attention_dropout)
        self.norm_first = bool(norm_first)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, bias=bias)
        self.ffn = FeedForward(d_model, dff, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False, cache: KVCache | None = None,
                rotary: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, L, d_model) -> ((B, L, d_model), attention weights (B, H, L, L_keys) or None)``."""
        def attend(h):
            return self.self_attn(h, attn_mask=attn_mask, key_mask=key_mask, is_causal=is_causal,
                                  need_weights=need_weights, cache=cache, rotary=rotary)

        x, weights = self._sublayer(x, self.norm1, attend)
        x, _ = self._sublayer(x, self.norm2, lambda h: (self.ffn(h), None))
        return x, weights


class TransformerDecoderLayer(_Residual):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward.

    Same arguments as :class:`TransformerEncoderLayer`.
    """

    def __init__(self, d_model: int, num_heads: int, dff: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation: str = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.dropout = checks.rate("TransformerDecoderLayer", "dropout", dropout)
        checks.rate("TransformerDecoderLayer", "attention_dropout", attention_dropout)
        self.norm_first = bool(norm_first)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, bias=bias)
        self.ffn = FeedForward(d_model, dff, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None,
                memory_key_mask: torch.Tensor | None = None,
                self_key_mask: torch.Tensor | None = None,
                cache: tuple[KVCache, KVCache] | None = None, need_weights: bool = False,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
        """One decoder layer.

        Args:
            x: target-side states ``(B, T, d_model)``.
            memory: encoder output ``(B, S, d_model)`` (may be None once ``cache[1]`` is filled).
            memory_key_mask: ``(B, S)`` True for real source tokens.
            self_key_mask: ``(B, T_total)`` True for real target tokens (only needed with left
                padding; causal masking already hides right padding from real positions).
            cache: ``(self-attention cache, static cross-attention cache)`` for incremental decoding.
            need_weights: return the self- and cross-attention weights.

        Returns:
            ``(x (B, T, d_model), (self weights, cross weights))``.
        """
        self_cache, cross_cache = cache if cache is not None else (None, None)

        def self_attend(h):
            return self.self_attn(h, key_mask=self_key_mask, is_causal=True,
                                  need_weights=need_weights, cache=self_cache)

        def cross_attend(h):
            return self.cross_attn(h, memory, key_mask=memory_key_mask, need_weights=need_weights,
                                   cache=cross_cache)

        x, self_weights = self._sublayer(x, self.norm1, self_attend)
        x, cross_weights = self._sublayer(x, self.norm2, cross_attend)
        x, _ = self._sublayer(x, self.norm3, lambda h: (self.ffn(h), None))
        return x, (self_weights, cross_weights)


class TransformerEncoder(nn.Module):
    """A stack of ``num_layers`` encoder layers (plus a final LayerNorm when pre-norm).

    Keyword arguments are those of :class:`TransformerEncoderLayer`.
    """

    def __init__(self, num_layers: int, d_model: int, num_heads: int, dff: int, **layer_kwargs) -> None:
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ConfigError(f"TransformerEncoder: 'num_layers' must be a positive int; received "
                              f"{num_layers!r}")
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, dff, **layer_kwargs) for _ in range(num_layers))
        norm_first = layer_kwargs.get("norm_first", False)
        eps = layer_kwargs.get("layer_norm_eps", 1e-5)
        self.final_norm = nn.LayerNorm(d_model, eps=eps) if norm_first else None

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None,
                is_causal: bool = False, need_weights: bool = False,
                caches: list[KVCache] | None = None, rotary: nn.Module | None = None,
                ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """``(B, L, d) -> ((B, L, d), [weights per layer])`` (weights None unless requested)."""
        all_weights = []
        for index, layer in enumerate(self.layers):
            x, weights = layer(x, key_mask=key_mask, is_causal=is_causal, need_weights=need_weights,
                               cache=None if caches is None else caches[index], rotary=rotary)
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, all_weights


class TransformerDecoder(nn.Module):
    """A stack of ``num_layers`` decoder layers (plus a final LayerNorm when pre-norm)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, dff: int, **layer_kwargs) -> None:
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ConfigError(f"TransformerDecoder: 'num_layers' must be a positive int; received "
                              f"{num_layers!r}")
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, num_heads, dff, **layer_kwargs) for _ in range(num_layers))
        norm_first = layer_kwargs.get("norm_first", False)
        eps = layer_kwargs.get("layer_norm_eps", 1e-5)
        self.final_norm = nn.LayerNorm(d_model, eps=eps) if norm_first else None

    def new_caches(self) -> list[tuple[KVCache, KVCache]]:
        """Empty (self, cross) caches, one pair per layer, for incremental decoding."""
        return [(KVCache(), KVCache(static=True)) for _ in self.layers]

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None,
                memory_key_mask: torch.Tensor | None = None,
                self_key_mask: torch.Tensor | None = None,
                caches: list[tuple[KVCache, KVCache]] | None = None, need_weights: bool = False,
                ) -> tuple[torch.Tensor, list[tuple[torch.Tensor | None, torch.Tensor | None]]]:
        all_weights = []
        for index, layer in enumerate(self.layers):
            x, weights = layer(x, memory, memory_key_mask=memory_key_mask,
                               self_key_mask=self_key_mask,
                               cache=None if caches is None else caches[index],
                               need_weights=need_weights)
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, all_weights
