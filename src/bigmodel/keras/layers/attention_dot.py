"""Keras 3's single-head attention layers: ``Attention`` (Luong, dot-product) and
``AdditiveAttention`` (Bahdanau), on ``[query, value]`` or ``[query, value, key]`` lists.

Shapes: query ``(batch, Tq, dim)``, value ``(batch, Tv, dim_v)``, key ``(batch, Tv, dim)`` (default
the value) -> ``(batch, Tq, dim_v)``; with ``return_attention_scores=True`` also the attention
weights ``(batch, Tq, Tv)``. Masks as Keras: a value mask ``(batch, Tv)`` keeps padded keys out
(their scores lowered by 1e9 before the softmax), a query mask ``(batch, Tq)`` zeroes the padded
queries' outputs and is the output's mask; ``use_causal_mask`` lets query ``i`` see keys ``<= i``.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from bigmodel.errors import ConfigError, NotSupportedError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape
from bigmodel.nn.augment import SeededGenerators

__all__ = ["AdditiveAttention", "Attention"]

_MASKED = 1.0e9  # subtracted from the scores of masked keys (Keras's value for float32)


class Attention(Layer):
    """Dot-product attention: ``softmax(query @ key^T [* scale]) @ value``.

    Args:
        use_scale: learn a scalar ``scale`` (initialized to 1) multiplying the scores.
        score_mode: ``"dot"`` (``query @ key^T``) or ``"concat"``
            (``concat_score_weight * sum(tanh(scale * (query_i + key_j)))``).
        dropout: rate of dropout on the attention weights (training only).
        seed: the dropout's seed.

    Raises:
        ConfigError: an unknown ``score_mode`` or a dropout rate outside ``[0, 1)``.
        ShapeError: inputs that are not a list of 2 or 3 tensors, or mismatched sizes.
    """

    supports_masking = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): invalid value for "
                              f"argument score_mode. Expected one of {{'dot', 'concat'}}. "
                              f"Received: score_mode={score_mode!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not (
                0 <= dropout < 1):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): dropout must be a "
                              f"number in [0, 1). Received: dropout={dropout!r}")
        self.use_scale, self.score_mode = bool(use_scale), score_mode
        self.dropout, self.seed = float(dropout), seed
        self._generators = SeededGenerators(seed)

    # -- shapes ---------------------------------------------------------------------------
    def _shapes(self, input_shape: Any) -> tuple[Shape, Shape, Shape]:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
                input_shape[0], (list, tuple)) or not 2 <= len(input_shape) <= 3:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) must be called on a "
                             "list of inputs, namely [query, value] or [query, value, key]. "
                             f"Received: input_shape={input_shape}")
        query, value = (tuple(s) for s in input_shape[:2])
        key = tuple(input_shape[2]) if len(input_shape) == 3 else value
        if len(query) < 3 or len(value) != len(query) or len(key) != len(query):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): query, value and key "
                             f"must be of one rank >= 3 (batch, steps, features); received "
                             f"{query}, {value}, {key}")
        if None not in (query[-1], key[-1]) and query[-1] != key[-1]:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): query and key need "
                             f"the same last dimension; received {query} and {key}")
        if None not in (value[-2], key[-2]) and value[-2] != key[-2]:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): value and key need "
                             f"the same number of steps; received {value} and {key}")
        return query, value, key

    def compute_output_shape(self, input_shape: Any) -> Shape:
        query, value, _ = self._shapes(input_shape)
        return (*query[:-1], value[-1])

    def build(self, input_shape: Any) -> None:
        query, _, _ = self._shapes(input_shape)
        self._build_scores(query[-1])
        super().build(input_shape)

    def _build_scores(self, dim: int | None) -> None:
        if self.use_scale:
            self.add_weight("scale", (), "ones")
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), "ones")

    # -- computing ------------------------------------------------------------------------
    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Scores ``(batch, Tq, Tv)``."""
        scale = self.scale if self.use_scale else None
        if self.score_mode == "dot":
            scores = query @ key.transpose(-2, -1)
            return scores * scale if scale is not None else scores
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)  # (batch, Tq, Tv, dim)
        if scale is not None:
            pairs = scale * pairs
        return self.concat_score_weight * torch.tanh(pairs).sum(dim=-1)

    def call(self, inputs: Any, mask: Any = None, training: bool = False,
             return_attention_scores: bool = False, use_causal_mask: bool = False) -> Any:
        if not isinstance(inputs, (list, tuple)):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) must be called on a "
                             "list of inputs, namely [query, value] or [query, value, key]")
        tensors = [torch.as_tensor(t) for t in inputs]
        self._shapes([tuple(t.shape) for t in tensors])
        query, value = tensors[0], tensors[1]
        key = tensors[2] if len(tensors) == 3 else value
        if mask is not None and not isinstance(mask, (list, tuple)):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): mask must be a list "
                             "[query_mask, value_mask]")
        query_mask = mask[0] if mask else None
        value_mask = mask[1] if mask and len(mask) > 1 else None
        scores = self._scores(query, key)
        allowed = None
        if value_mask is not None:
            allowed = torch.as_tensor(value_mask, device=scores.device).bool().unsqueeze(-2)
        if use_causal_mask:
            tq, tv = scores.shape[-2:]
            causal = torch.ones(tq, tv, dtype=torch.bool, device=scores.device).tril()
            allowed = causal if allowed is None else allowed & causal
        if allowed is not None:
            scores = scores - _MASKED * (~allowed).to(scores.dtype)
        weights = torch.softmax(scores, dim=-1)
        if training and self.dropout > 0:
            keep = torch.rand(weights.shape, dtype=weights.dtype, device=weights.device,
                              generator=self._generators.get(weights.device))
            weights = weights * (keep >= self.dropout).to(weights.dtype) / (1 - self.dropout)
        outputs = weights @ value
        if query_mask is not None:
            keep_query = torch.as_tensor(query_mask, device=outputs.device).bool().unsqueeze(-1)
            outputs = torch.where(keep_query, outputs, torch.zeros((), dtype=outputs.dtype))
        return (outputs, weights) if return_attention_scores else outputs

    def _call_symbolic(self, inputs: Any, **kwargs: Any) -> Any:
        # A functional graph node replays call() with its inputs only: refuse what it would drop.
        dropped = {k: v for k, v in kwargs.items() if k != "training" and v not in (None, False)}
        if dropped:
            raise NotSupportedError(
                f"Layer '{self.name}' ({type(self).__name__}) called on symbolic inputs with "
                f"{', '.join(f'{k}={v!r}' for k, v in dropped.items())}: not supported in a "
                "functional graph by bigmodel (masks come from the inputs, e.g. "
                "Embedding(mask_zero=True)); call the layer inside a custom layer's call() instead")
        return super()._call_symbolic(inputs, **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if not isinstance(mask, (list, tuple)) or not mask or mask[0] is None:
            return None
        return torch.as_tensor(mask[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: scores ``sum(scale * tanh(query_i + key_j))`` over the
    features, ``scale`` a learned vector ``(dim,)`` when ``use_scale`` (the default).

    Args:
        use_scale: learn the ``scale`` vector (initialized Glorot-uniform, as Keras).
        dropout: rate of dropout on the attention weights (training only).
        seed: the dropout's seed.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def _build_scores(self, dim: int | None) -> None:
        if self.use_scale:
            if dim is None:
                raise ShapeError(f"Layer '{self.name}' (AdditiveAttention): the query's last "
                                 "dimension must be known")
            self.add_weight("scale", (dim,), "glorot_uniform")

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        pairs = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))  # (batch, Tq, Tv, dim)
        if self.use_scale:
            pairs = pairs * self.scale
        return pairs.sum(dim=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("score_mode")
        return config
