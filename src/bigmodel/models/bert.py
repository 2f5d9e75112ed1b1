"""A BERT-style encoder classifier (Devlin et al., 2019) on bigmodel's own Transformer encoder.

This is the architecture of all-MiniLM-L6-v2 and other sentence encoders, so their pretrained
weights load into it (:mod:`bigmodel.transfer.pretrained`). Layout (``B`` batch, ``L`` tokens,
``d`` = ``d_model``)::

    ids (B, L), pad_id = padding
    word embedding + learned position (0..L-1) + token type 0, LayerNorm, dropout  -> (B, L, d)
    num_layers x post-norm encoder layer (GELU feed-forward, padding masked)      -> (B, L, d)
    pool: mean over real tokens | the first ([CLS]) state                         -> (B, d)  <- forward_features
    dropout, Linear                                                               -> (B, num_classes) <- forward_head

Unlike :class:`~bigmodel.models.transformer_classifier.TransformerClassifier` the embeddings are not
scaled by ``sqrt(d)`` and are normalized by a LayerNorm before the first layer, as in BERT.
``sentence_embedding(ids)`` is the pooled vector divided by its L2 norm (sentence-transformers'
``Normalize`` module), the vector sentence-similarity search compares.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.models.registry import register_model
from bigmodel.models.tokens import as_token_ids, embed_tokens
from bigmodel.models.transformer_classifier import PooledClassifierMixin, pool_states
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.positional import LearnedPositionalEmbedding
from bigmodel.nn.transformer import TransformerEncoder

__all__ = ["BertClassifier", "BertEmbeddings", "bert_classifier"]

_POOLING = ("mean", "cls")


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout: ``(B, L) -> (B, L, d)``."""

    def __init__(self, vocab_size: int, d_model: int, max_length: int, type_vocab_size: int,
                 layer_norm_eps: float, dropout: float) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, d_model)
        self.position = LearnedPositionalEmbedding(max_length, d_model)
        self.token_type = nn.Embedding(type_vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = embed_tokens(ids, self.word.weight, "BertClassifier", "input")  # (B, L, d)
        x = self.position(x)
        if token_type_ids is None:  # every token in segment 0: one row, broadcast
            x = x + self.token_type.weight[0].to(x.dtype)
        else:
            x = x + self.token_type(token_type_ids.to(ids.device))
        return self.dropout(self.norm(x))


class BertClassifier(PooledClassifierMixin, nn.Module):
    """BERT-style encoder + pooling + linear head.

    Args:
        vocab_size: token ids lie in ``[0, vocab_size)``.
        num_classes: output logits.
        max_length: longest input in tokens (the size of the position table).
        d_model, num_heads, num_layers, dff: encoder sizes.
        dropout: embedding / residual dropout and dropout before the head.
        attention_dropout: dropout on the attention weights.
        type_vocab_size: segments (token types); 2 in BERT.
        layer_norm_eps: epsilon of every LayerNorm (1e-12 in BERT).
        pooling: ``"mean"`` over real tokens (sentence-transformers) or ``"cls"`` (the first token).
        pad_id: the padding id (masked out of attention and of the mean).

    Raises:
        ConfigError: a size that is not a positive int, ``d_model`` not divisible by ``num_heads``,
            an unknown pooling.
    """

    def __init__(self, vocab_size: int = 30522, num_classes: int = 2, max_length: int = 512,
                 d_model: int = 384, num_heads: int = 12, num_layers: int = 6, dff: int = 1536,
                 dropout: float = 0.1, attention_dropout: float = 0.1, type_vocab_size: int = 2,
                 layer_norm_eps: float = 1e-12, pooling: str = "mean", pad_id: int = 0) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("max_length", max_length), ("d_model", d_model),
                            ("num_heads", num_heads), ("dff", dff),
                            ("type_vocab_size", type_vocab_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"BertClassifier: '{name}' must be a positive int; received "
                                  f"{value!r}")
        if d_model % num_heads:
            raise ConfigError(f"BertClassifier: d_model must be divisible by num_heads; received "
                              f"d_model={d_model}, num_heads={num_heads}")
        if pooling not in _POOLING:
            raise ConfigError(f"BertClassifier: 'pooling' must be one of {_POOLING}; received "
                              f"{pooling!r}")
        self.vocab_size, self.num_classes, self.max_length = vocab_size, num_classes, max_length
        self.d_model, self.num_heads, self.num_layers, self.dff = d_model, num_heads, num_layers, dff
        self.dropout, self.attention_dropout = float(dropout), float(attention_dropout)
        self.type_vocab_size, self.layer_norm_eps = type_vocab_size, float(layer_norm_eps)
        self.pooling, self.pad_id = pooling, pad_id
        self.embeddings = BertEmbeddings(vocab_size, d_model, max_length, type_vocab_size,
                                         layer_norm_eps, dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, dff, dropout=dropout,
                                          attention_dropout=attention_dropout, activation="gelu",
                                          norm_first=False, layer_norm_eps=layer_norm_eps)
        self.head_dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_classes)
        self.apply(_bert_init)

    # -- encoder ----------------------------------------------------------------------------------
    def _encode(self, ids: Any, token_type_ids: torch.Tensor | None = None):
        ids = as_token_ids(ids, "BertClassifier", "input")
        if ids.shape[1] > self.max_length:
            raise ShapeError(f"BertClassifier: input has length {ids.shape[1]}, longer than "
                             f"max_length={self.max_length}")
        ids = ids.to(self.embeddings.word.weight.device)
        mask = ids != self.pad_id  # (B, L) True for real tokens
        empty = ~mask.any(dim=1)
        if not capturing_graph() and bool(empty.any()):  # a value check: eager mode only
            raise DataError(f"BertClassifier: input row {int(empty.nonzero()[0])} is empty (only "
                            f"padding id {self.pad_id}); every text needs a token")
        x = self.embeddings(ids, token_type_ids)
        states, _ = self.encoder(x, key_mask=mask)  # (B, L, d)
        return states, mask

    def forward_features(self, ids: Any, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled encoder states ``(B, d_model)`` for token ids ``(B, L)``.

        Raises:
            DataError: an id outside the vocabulary, or a row made only of padding.
            ShapeError: longer than ``max_length`` or empty.
        """
        states, mask = self._encode(ids, token_type_ids)
        return pool_states(states, mask, self.pooling)

    def sentence_embedding(self, ids: Any) -> torch.Tensor:
        """Unit-length sentence vectors ``(B, d_model)`` (pooled states / their L2 norm)."""
        return F.normalize(self.forward_features(ids), p=2.0, dim=-1)

    # -- classifier surface (forward, forward_head, reset_classifier: PooledClassifierMixin) --------
    def _init_classifier(self, layer: nn.Linear) -> None:
        _bert_init(layer)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes,
                "max_length": self.max_length, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_layers": self.num_layers, "dff": self.dff,
                "dropout": self.dropout, "attention_dropout": self.attention_dropout,
                "type_vocab_size": self.type_vocab_size, "layer_norm_eps": self.layer_norm_eps,
                "pooling": self.pooling, "pad_id": self.pad_id}


def _bert_init(module: nn.Module) -> None:
    """BERT's initialization: N(0, 0.02) weights, zero biases, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, LearnedPositionalEmbedding):
        nn.init.normal_(module.weight, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@register_model("bert-classifier", example_input=lambda batch: torch.randint(1, 1000, (batch, 12)))
def bert_classifier(vocab_size: int = 1000, num_classes: int = 2, max_length: int = 128,
                    d_model: int = 64, num_heads: int = 4, num_layers: int = 2, dff: int = 128,
                    dropout: float = 0.1, attention_dropout: float = 0.1, type_vocab_size: int = 2,
                    layer_norm_eps: float = 1e-12, pooling: str = "mean",
                    pad_id: int = 0) -> BertClassifier:
    """A small BERT-style classifier; ``bigmodel.transfer.pretrained.load`` builds MiniLM's sizes."""
    return BertClassifier(vocab_size=vocab_size, num_classes=num_classes, max_length=max_length,
                          d_model=d_model, num_heads=num_heads, num_layers=num_layers, dff=dff,
                          dropout=dropout, attention_dropout=attention_dropout,
                          type_vocab_size=type_vocab_size, layer_norm_eps=layer_norm_eps,
                          pooling=pooling, pad_id=pad_id)
