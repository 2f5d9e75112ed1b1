"""``GroupQueryAttention`` (Keras 3 API): grouped-query attention, where ``num_key_value_heads``
key/value heads are shared by groups of the ``num_query_heads`` query heads.

Weights live in four ``EinsumDense`` sub-layers, as in Keras (same attribute names, so the
``.keras`` weight paths ``_query_dense/vars/0`` ... match)::

    _query_dense  "bqm,muh->bquh"  kernel (dim, num_query_heads, head_dim)      bias (heads, head_dim)
    _key_dense    "bkm,mvh->bkvh"  kernel (dim, num_key_value_heads, head_dim)  bias (kv heads, head_dim)
    _value_dense  "bkm,mvh->bkvh"  kernel (dim, num_key_value_heads, head_dim)  bias (kv heads, head_dim)
    _output_dense "bquh,uhm->bqm"  kernel (num_query_heads, head_dim, dim)      bias (dim,)

(plus ``_gate_dense`` with ``use_gate=True``). Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` with ``enable_gqa`` (no copy of the key/value
heads); with dropout or ``return_attention_scores`` the scores are computed explicitly, as Keras
does. Masks combine as in ``MultiHeadAttention`` (query/value/key masks, ``attention_mask``,
``use_causal_mask``, ``sliding_window``). A query whose keys are all masked gets what Keras gives
on each path: uniform weights in the fused kernel (Keras adds -0.7 * the float maximum to masked
scores, which swamps them), zero weights where the scores are computed (Keras 3.15's ``Softmax``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import constraints, initializers, regularizers
from bigmodel.keras.layers.activation_layers import Softmax
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import Dropout, check_positive_int, resolve
from bigmodel.keras.layers.einsum_dense import EinsumDense
from bigmodel.keras.layers.layer_registry import unique_name
from bigmodel.keras.layers.symbolic import KerasTensor, Shape, get_keras_mask, set_keras_mask

__all__ = ["GroupQueryAttention"]


def _as_tensor(value: Any) -> Any:
    """NumPy arrays (inputs and masks) as tensors; anything else unchanged."""
    return torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value


class GroupQueryAttention(Layer):
    """Grouped-query attention (Keras 3's ``keras.layers.GroupQueryAttention``).

    Args:
        head_dim: size of each attention head.
        num_query_heads: number of query heads.
        num_key_value_heads: number of key/value heads; must divide ``num_query_heads``.
        dropout: dropout rate on the attention probabilities.
        use_bias: biases in the dense projections.
        sliding_window: each query attends to keys within ``sliding_window - 1`` positions.
        use_gate: a sigmoid gate (a fifth projection of the query) on the attention output.
        kernel_* / bias_*: initializers, regularizers and constraints of the projections.
        seed: seed of the dropout.

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)``
    -> ``(B, T, dim)`` or ``(output, scores (B, num_query_heads, T, S))``.

    Raises:
        ConfigError: a non-positive size, heads that do not divide, a bad dropout rate.
        ShapeError: query and value with different feature sizes.
    """

    supports_masking = True
    keras_class_name = "GroupedQueryAttention"  # Keras's Python class (names its .keras group)

    def __init__(self, head_dim: int, num_query_heads: int, num_key_value_heads: int,
                 dropout: float = 0.0, use_bias: bool = True, sliding_window: int | None = None,
                 flash_attention: bool | None = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 use_gate: bool = False, seed: int | None = None, **kwargs: Any):
        if kwargs.get("name") is None:  # Keras's name for this class
            kwargs["name"] = unique_name("grouped_query_attention")
        super().__init__(**kwargs)
        self.head_dim = check_positive_int(self, "head_dim", head_dim)
        self.num_query_heads = check_positive_int(self, "num_query_heads", num_query_heads)
        self.num_key_value_heads = check_positive_int(self, "num_key_value_heads",
                                                      num_key_value_heads)
        if self.num_query_heads % self.num_key_value_heads:
            raise ConfigError(f"Layer '{self.name}' (GroupQueryAttention): `num_query_heads` must "
                              f"be divisible by `num_key_value_heads`. Received: num_query_heads="
                              f"{num_query_heads}, num_key_value_heads={num_key_value_heads}")
        self.num_repeats = self.num_query_heads // self.num_key_value_heads
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"Layer '{self.name}' (GroupQueryAttention): invalid value for "
                              f"argument `dropout`, expected a float in [0, 1). Received: "
                              f"dropout={dropout!r}")
        if sliding_window is not None:
            sliding_window = check_positive_int(self, "sliding_window", sliding_window)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.use_gate = bool(use_gate)
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.activity_regularizer = resolve(self, "activity_regularizer", activity_regularizer)
        self.kernel_constraint = resolve(self, "kernel_constraint", kernel_constraint)
        self.bias_constraint = resolve(self, "bias_constraint", bias_constraint)
        self.seed = seed

    # ----------------------------------------------------------------------------- build
    def _dense(self, equation: str, shape: tuple, bias: str, name: str,
               activation: Any = None) -> EinsumDense:
        # Each projection gets its own initializer objects (Keras clones them: a seeded
        # initializer must not give every projection the same values).
        def clone(init: Any) -> Any:
            return type(init).from_config(init.get_config()) if hasattr(init, "get_config") \
                else init
        return EinsumDense(equation, output_shape=shape, bias_axes=bias if self.use_bias else None,
                           activation=activation, name=name,
                           kernel_initializer=clone(self.kernel_initializer),
                           bias_initializer=clone(self.bias_initializer),
                           kernel_regularizer=self.kernel_regularizer,
                           bias_regularizer=self.bias_regularizer,
                           kernel_constraint=self.kernel_constraint,
                           bias_constraint=self.bias_constraint)

    def build(self, query_shape: Shape, value_shape: Shape | None = None,
              key_shape: Shape | None = None) -> None:
        value_shape = tuple(query_shape) if value_shape is None else tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        for role, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): the {role} must "
                                 f"have shape (batch, length, features) with known features; "
                                 f"received {tuple(shape)}")
        self.feature_dim = int(query_shape[-1])
        heads, kv_heads, dim = self.num_query_heads, self.num_key_value_heads, self.head_dim
        build_device, self._build_device = self._build_device, None

        def made(layer: EinsumDense, shape: Shape) -> EinsumDense:
            layer._build_device = build_device
            layer._maybe_build(tuple(shape), build_device)
            return layer

        self._query_dense = made(self._dense("bqm,muh->bquh", (None, heads, dim), "uh", "query"),
                                 query_shape)
        self._key_dense = made(self._dense("bkm,mvh->bkvh", (None, kv_heads, dim), "vh", "key"),
                               key_shape)
        if self.use_gate:
            self._gate_dense = made(self._dense("bqm,muh->bquh", (None, heads, dim), "uh", "gate",
                                                activation="sigmoid"), query_shape)
        self._value_dense = made(self._dense("bkm,mvh->bkvh", (None, kv_heads, dim), "vh",
                                             "value"), value_shape)
        self._softmax = Softmax(axis=-1)
        self._dropout_layer = Dropout(rate=self.dropout, seed=self.seed)
        self._output_dense = made(self._dense("bquh,uhm->bqm", (None, self.feature_dim), "m",
                                              "attention_output"), (None, None, heads, dim))
        self.built = True

    def compute_output_shape(self, query_shape: Shape, value_shape: Shape | None = None,
                             key_shape: Shape | None = None) -> Shape:
        if value_shape is not None and query_shape[-1] != value_shape[-1]:
            raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): the last dimension of "
                             f"`query_shape` and `value_shape` must be equal, but are "
                             f"{query_shape[-1]}, {value_shape[-1]}")
        return tuple(query_shape)

    # ----------------------------------------------------------------------------- calling
    def __call__(self, query: Any, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        parts = list(query) if isinstance(query, (list, tuple)) else [query, value, key]
        if any(isinstance(p, KerasTensor) for p in parts):
            return self._symbolic(parts, **kwargs)
        return nn.Module.__call__(self, query, value, key, **kwargs)

    def _symbolic(self, parts: list[Any], **kwargs: Any) -> KerasTensor:
        query, value, key = (parts + [None, None])[:3]
        if value is None:
            raise ConfigError(f"Layer '{self.name}' (GroupQueryAttention) needs `value` (pass "
                              "the query again for self-attention)")
        extra = set(kwargs) - {"use_causal_mask", "training"}
        if extra:
            raise ConfigError(f"Layer '{self.name}' (GroupQueryAttention): in the functional API "
                              f"only use_causal_mask can be given at call time; received "
                              f"{sorted(extra)} (masks and attention scores need eager calls)")
        given = [p for p in (query, value, key) if p is not None]
        if not self.built:
            self.build(*[p.shape for p in given])
        shape = self.compute_output_shape(query.shape, value.shape)
        output = KerasTensor(shape, layer=self, parents=given, name=self.name)
        if kwargs.get("use_causal_mask"):  # replayed by the model with this call (its node)
            output.call_extra = (len(given), (), {"use_causal_mask": True})
        if kwargs.get("training") is not None:
            output.call_training = bool(kwargs["training"])
        return output

    def forward(self, query: Any, value: Any = None, key: Any = None, query_mask: Any = None,
                value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
                return_attention_scores: bool = False, training: bool | None = None,
                use_causal_mask: bool | None = None) -> Any:
        if isinstance(query, (list, tuple)):  # replayed by a functional model
            query, value, key = (list(query) + [None, None])[:3]
        query, value, key = _as_tensor(query), _as_tensor(value), _as_tensor(key)
        if value is None:
            raise ConfigError(f"Layer '{self.name}' (GroupQueryAttention) needs `value`: call "
                              "layer(query, value) (pass the query twice for self-attention)")
        key = value if key is None else key
        for role, tensor in (("query", query), ("value", value), ("key", key)):
            if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
                raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): {role} must be a "
                                 f"tensor of shape (batch, length, features); received "
                                 f"{getattr(tensor, 'shape', type(tensor).__name__)}")
        if not self.built:
            self._build_device = query.device
            try:
                self.build((None, *query.shape[1:]), (None, *value.shape[1:]),
                           (None, *key.shape[1:]))
            finally:
                self._build_device = None
        if training is None:
            training = self.training
        query_mask = get_keras_mask(query) if query_mask is None else query_mask
        value_mask = get_keras_mask(value) if value_mask is None else value_mask
        if key_mask is None and key is not value:
            key_mask = get_keras_mask(key)
        outputs = self.call(query, value, key, query_mask, value_mask, key_mask, attention_mask,
                            return_attention_scores, bool(training), bool(use_causal_mask))
        if query_mask is not None:
            set_keras_mask(outputs[0] if return_attention_scores else outputs,
                           _as_tensor(query_mask).to(query.device).bool())
        if self.activity_regularizer is not None:
            first = outputs[0] if return_attention_scores else outputs
            self._activity_loss = self.activity_regularizer(first) / first.shape[0]
        return outputs

    def _mask(self, batch: int, tq: int, tv: int, query_mask: Any, value_mask: Any,
              key_mask: Any, attention_mask: Any, causal: bool,
              device: torch.device) -> torch.Tensor | None:
        """The combined boolean mask ``(B, 1, T, S)`` (True = attend), or None."""
        parts: list[torch.Tensor] = []
        for role, given, length, axis in (("query_mask", query_mask, tq, -1),
                                          ("value_mask", value_mask, tv, -2),
                                          ("key_mask", key_mask, tv, -2)):
            if given is None:
                continue
            given = _as_tensor(given)
            if not torch.is_tensor(given) or tuple(given.shape) != (batch, length):
                raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): {role} must have "
                                 f"shape (batch, length) = ({batch}, {length}); received "
                                 f"{getattr(given, 'shape', type(given).__name__)}")
            parts.append(given.to(device).bool().unsqueeze(axis).unsqueeze(1))
        if attention_mask is not None:
            am = _as_tensor(attention_mask)
            if not torch.is_tensor(am) or am.dim() > 3 or any(
                    a not in (1, b) for a, b in zip(am.shape[::-1], (tv, tq, batch))):
                raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): attention_mask must "
                                 f"broadcast to (batch, query_len, value_len) = ({batch}, {tq}, "
                                 f"{tv}); received {getattr(am, 'shape', type(am).__name__)}")
            am = am.to(device).bool()
            parts.append(am.unsqueeze(-3) if am.dim() == 3 else am)
        rows = torch.arange(tq, device=device).unsqueeze(1)
        cols = torch.arange(tv, device=device).unsqueeze(0)
        if causal:  # lower triangle aligned at the top left, as Keras
            parts.append(cols <= rows)
        if self.sliding_window is not None:
            parts.append((rows - cols).abs() < self.sliding_window)
        if not parts:
            return None
        mask = parts[0]
        for part in parts[1:]:
            mask = mask & part
        return mask.expand(batch, 1, tq, tv)

    def call(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor,
             query_mask: Any = None, value_mask: Any = None, key_mask: Any = None,
             attention_mask: Any = None, return_attention_scores: bool = False,
             training: bool = False, use_causal_mask: bool = False) -> Any:
        if query.shape[-1] != value.shape[-1]:
            raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): the last dimension of "
                             f"query and value must be equal; received query "
                             f"{tuple(query.shape)} and value {tuple(value.shape)}")
        if key.shape[1] != value.shape[1]:
            raise ShapeError(f"Layer '{self.name}' (GroupQueryAttention): key and value must "
                             f"have the same length; received key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)}")
        batch, tq, tv = query.shape[0], query.shape[1], value.shape[1]
        q = self._query_dense(query).transpose(1, 2)  # (B, heads, T, head_dim)
        k = self._key_dense(key).transpose(1, 2)      # (B, kv_heads, S, head_dim)
        v = self._value_dense(value).transpose(1, 2)
        mask = self._mask(batch, tq, tv, query_mask, value_mask, key_mask, attention_mask,
                          use_causal_mask, query.device)
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = None
        if return_attention_scores or (training and self.dropout > 0):
            k = k.repeat_interleave(self.num_repeats, dim=1)
            v = v.repeat_interleave(self.num_repeats, dim=1)
            scores = self._softmax(torch.matmul(q * scale, k.transpose(-1, -2)), mask=mask)
            if mask is not None:  # Keras 3.15's Softmax: masked weights are 0 (whole rows too)
                scores = scores.masked_fill(~mask, 0.0)
            out = torch.matmul(self._dropout_layer(scores, training=training), v)
        else:
            if mask is not None:  # as Keras: -0.7 * float max where masked, so an all-masked
                # row has equal scores (uniform weights) rather than none
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                    ~mask, -0.7 * torch.finfo(q.dtype).max)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale,
                                                 enable_gqa=self.num_repeats > 1)
        out = out.transpose(1, 2)  # (B, T, heads, head_dim)
        if self.use_gate:
            out = out * self._gate_dense(query)
        out = self._output_dense(out)
        return (out, scores) if return_attention_scores else out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head_dim": self.head_dim,
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads, "use_bias": self.use_bias,
                "use_gate": self.use_gate, "sliding_window": self.sliding_window,
                "dropout": self.dropout,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "seed": self.seed}
