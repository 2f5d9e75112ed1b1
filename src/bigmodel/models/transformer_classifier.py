"""TransformerClassifier: a Transformer encoder over token ids, pooled, then a linear head.

Layout (``B`` batch, ``L`` tokens, ``d`` = ``d_model``)::

    ids (B, L), 0 = padding -> embedding * sqrt(d) + positions ([CLS] first with pooling="cls")
    num_layers x encoder layer (padding masked out of attention)   -> (B, L, d)
    pool: mean over real tokens | max over real tokens | the [CLS] state -> (B, d)  <- forward_features
    dropout, Linear -> logits (B, num_classes)                                      <- forward_head

Padding never changes the result: a padded batch gives the same logits as its rows one by one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.models.registry import register_model
from bigmodel.models.tokens import as_token_ids, embed_tokens
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from bigmodel.nn.transformer import TransformerEncoder

__all__ = ["TransformerClassifier", "transformer_classifier"]

_POOLING = ("mean", "max", "cls")


def pool_states(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(B, L, d)`` encoder states -> ``(B, d)``: the first ([CLS]) state, or the mean / max over
    the real tokens (``mask`` ``(B, L)`` True for them; padding never counts)."""
    if pooling == "cls":
        return states[:, 0]
    keep = mask.unsqueeze(-1)
    if pooling == "max":
        return states.masked_fill(~keep, float("-inf")).amax(dim=1)
    keep = keep.to(states.dtype)
    return (states * keep).sum(dim=1) / keep.sum(dim=1)


class PooledClassifierMixin:
    """The classifier surface of a model that pools token states into ``d_model`` features and
    classifies them with ``self.classifier`` (a Linear) after ``self.head_dropout``:
    ``forward``, ``forward_head``, ``get_classifier``, ``reset_classifier``."""

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from pooled features ``(B, d_model)``."""
        features = self.head_dropout(features)
        return features if pre_logits else self.classifier(features)

    def forward(self, ids: Any) -> torch.Tensor:
        return self.forward_head(self.forward_features(ids))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialized head with ``num_classes`` outputs.

        Raises:
            ConfigError: ``num_classes`` is not a positive int.
        """
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"reset_classifier: 'num_classes' must be a positive int; received "
                              f"{num_classes!r}")
        weight = self.classifier.weight
        self.classifier = nn.Linear(self.d_model, num_classes, device=weight.device,
                                    dtype=weight.dtype)
        self._init_classifier(self.classifier)
        self.num_classes = num_classes

    def _init_classifier(self, layer: nn.Linear) -> None:
        """Initialize a new head (default: PyTorch's Linear initialization)."""


class TransformerClassifier(PooledClassifierMixin, nn.Module):
    """Encoder + pooling + head for sequence classification.

    Args:
        vocab_size: token ids lie in ``[0, vocab_size)``; ``pad_id`` marks padding.
        num_classes: output logits.
        max_length: longest input (tokens, [CLS] not counted).
        d_model, num_heads, num_layers, dff: encoder sizes.
        dropout: residual / embedding dropout and before the head.
        pooling: ``"mean"``, ``"max"`` (over real tokens) or ``"cls"`` (a learned first token).
        positional: ``"sinusoidal"`` or ``"learned"``.
        norm_first: pre-norm encoder layers (with a final LayerNorm).

    Raises:
        ConfigError: bad sizes or option names.
    """

    def __init__(self, vocab_size: int = 10000, num_classes: int = 2, max_length: int = 256,
                 d_model: int = 128, num_heads: int = 4, num_layers: int = 2, dff: int = 256,
                 dropout: float = 0.1, pooling: str = "mean", positional: str = "sinusoidal",
                 norm_first: bool = True, pad_id: int = 0) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("max_length", max_length), ("d_model", d_model)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TransformerClassifier: '{name}' must be a positive int; "
                                  f"received {value!r}")
        if d_model % num_heads:
            raise ConfigError(f"TransformerClassifier: d_model must be divisible by num_heads; "
                              f"received d_model={d_model}, num_heads={num_heads}")
        if pooling not in _POOLING:
            raise ConfigError(f"TransformerClassifier: 'pooling' must be one of {_POOLING}; "
                              f"received {pooling!r}")
        if positional not in ("sinusoidal", "learned"):
            raise ConfigError(f"TransformerClassifier: 'positional' must be 'sinusoidal' or "
                              f"'learned'; received {positional!r}")
        self.vocab_size, self.num_classes, self.max_length = vocab_size, num_classes, max_length
        self.d_model, self.num_heads, self.num_layers, self.dff = d_model, num_heads, num_layers, dff
        self.dropout, self.pooling, self.positional_kind = float(dropout), pooling, positional
        self.norm_first, self.pad_id = bool(norm_first), pad_id
        positions = max_length + (pooling == "cls")
        self.embedding = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        self.position = (SinusoidalPositionalEncoding(d_model, positions) if positional == "sinusoidal"
                         else LearnedPositionalEmbedding(positions, d_model))
        self.cls_token = nn.Parameter(torch.randn(1, 1, d_model) * 0.02) if pooling == "cls" \
            else None
        self.embedding_dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, dff, dropout=dropout,
                                          norm_first=norm_first, activation="gelu")
        self.head_dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_classes)

    def _encode(self, ids: Any, need_weights: bool = False):
        ids = as_token_ids(ids, "TransformerClassifier", "input")
        if ids.shape[1] > self.max_length:
            raise ShapeError(f"TransformerClassifier: input has length {ids.shape[1]}, longer than "
                             f"max_length={self.max_length}")
        ids = ids.to(self.embedding.weight.device)
        mask = ids != self.pad_id
        empty = ~mask.any(dim=1)
        if not capturing_graph() and bool(empty.any()):
            raise DataError(f"TransformerClassifier: input row {int(empty.nonzero()[0])} is empty "
                            f"(only padding id {self.pad_id}); every text needs a token")
        x = embed_tokens(ids, self.embedding.weight, "TransformerClassifier", "input")
        x = x * math.sqrt(self.d_model)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1).to(x.dtype), x], dim=1)
            mask = torch.cat([mask.new_ones(len(x), 1), mask], dim=1)
        x = self.embedding_dropout(self.position(x))
        states, weights = self.encoder(x, key_mask=mask, need_weights=need_weights)
        return states, mask, weights

    def forward_features(self, ids: Any) -> torch.Tensor:
        """Pooled encoder states ``(B, d_model)`` for token ids ``(B, L)``.

        Raises:
            DataError: an id outside the vocabulary, or a row made only of padding.
            ShapeError: longer than ``max_length`` or empty.
        """
        states, mask, _ = self._encode(ids)
        return pool_states(states, mask, self.pooling)

    def attention_maps(self, ids: Any) -> list[torch.Tensor]:
        """Attention weights of every layer, each ``(B, num_heads, L', L')`` (L' counts [CLS])."""
        return self._encode(ids, need_weights=True)[2]

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes,
                "max_length": self.max_length, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_layers": self.num_layers, "dff": self.dff,
                "dropout": self.dropout, "pooling": self.pooling,
                "positional": self.positional_kind, "norm_first": self.norm_first,
                "pad_id": self.pad_id}


@register_model("transformer-classifier",
                example_input=lambda batch: torch.randint(1, 1000, (batch, 12)))
def transformer_classifier(vocab_size: int = 1000, num_classes: int = 2, max_length: int = 128,
                           d_model: int = 64, num_heads: int = 4, num_layers: int = 2,
                           dff: int = 128, dropout: float = 0.1, pooling: str = "mean",
                           positional: str = "sinusoidal", norm_first: bool = True,
                           pad_id: int = 0) -> TransformerClassifier:
    """A small text classifier (override vocab_size and num_classes for your data)."""
    return TransformerClassifier(vocab_size=vocab_size, num_classes=num_classes,
                                 max_length=max_length, d_model=d_model, num_heads=num_heads,
                                 num_layers=num_layers, dff=dff, dropout=dropout, pooling=pooling,
                                 positional=positional, norm_first=norm_first, pad_id=pad_id)
