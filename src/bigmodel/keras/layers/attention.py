"""``MultiHeadAttention`` with Keras 3's signature, weight shapes, order and parameter counts.

Weights (Keras shapes, in Keras's order)::

    query kernel (query_dim, num_heads, key_dim)    query bias (num_heads, key_dim)
    key kernel   (key_dim_in, num_heads, key_dim)   key bias   (num_heads, key_dim)
    value kernel (value_dim_in, num_heads, value_dim)  value bias (num_heads, value_dim)
    output kernel (num_heads, value_dim, output_dim)   output bias (output_dim,)

They are stored in the layout ``F.linear`` uses (``torch_perm``), so ``get_weights``/``set_weights``
move weights to and from Keras unchanged. The initializer sees the Keras shape, so a 3-D kernel's
Glorot fans are Keras's (receptive field = first axis).

Masks, as in Keras: ``attention_mask`` ``(B, T, S)`` (1/True = attend), ``query_mask`` ``(B, T)``,
``value_mask`` / ``key_mask`` ``(B, S)`` are combined with AND; ``use_causal_mask`` adds a lower
triangular mask aligned at the top left (Keras's). Like Keras, a query whose keys are all masked
attends to every key (Keras adds the same large negative number to the whole row), where the plain
``bigmodel.nn`` function would return zeros. Masks that earlier layers attached to the inputs
(``Embedding(mask_zero=True)``, ``Masking``; see ``symbolic.get_keras_mask``) serve as query / value /
key masks when none is passed, and the output carries the query's mask, as in Keras 3.

Inputs of rank > 3 (``(B, *T, dim)``) attend over all their middle axes jointly, which is Keras's
default ``attention_axes=None``; other ``attention_axes`` are not supported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import (
    cast_inputs,
    check_positive_int,
    is_int,
    reject_constraints,
    resolve,
)
from bigmodel.keras.layers.symbolic import KerasTensor, Shape, get_keras_mask, set_keras_mask
from bigmodel.nn.attention import scaled_dot_product_attention

__all__ = ["MultiHeadAttention"]


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


class MultiHeadAttention(Layer):
    """Multi-head attention (Keras 3 API).

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default ``key_dim``).
        dropout: dropout on the attention probabilities.
        use_bias: biases in the four dense projections.
        output_shape: size of the output's last axis (default: the query's last axis).
        attention_axes: only ``None`` (attend over every axis between batch and features).
        kernel_initializer / bias_initializer / kernel_regularizer / bias_regularizer: for the
            four projections.
        seed: accepted for compatibility (dropout uses the torch RNG).

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)``
    -> ``(B, T, output_dim)`` or ``(output, scores (B, num_heads, T, S))``.
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None,
                 dropout: float = 0.0, use_bias: bool = True,
                 output_shape: int | Sequence[int] | None = None,
                 attention_axes: Any = None, flash_attention: bool | None = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, seed: int | None = None,
                 functional_use_causal_mask: bool = False, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.num_heads = check_positive_int(self, "num_heads", num_heads)
        self.key_dim = check_positive_int(self, "key_dim", key_dim)
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(
            self, "value_dim", value_dim)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention): invalid value for "
                              f"argument `dropout`. Expected a float in [0, 1). "
                              f"Received: dropout={dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if output_shape is not None and not is_int(output_shape):
            shape = tuple(output_shape)
            if len(shape) != 1 or not is_int(shape[0]):
                raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention): only a single output "
                                  f"size is supported for `output_shape`. Received: "
                                  f"output_shape={output_shape!r}")
            output_shape = shape[0]
        self.output_size = None if output_shape is None else check_positive_int(
            self, "output_shape", output_shape)
        if attention_axes is not None:
            raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention): only "
                              f"attention_axes=None (attend over every non-batch, non-feature "
                              f"axis) is supported. Received: attention_axes={attention_axes!r}")
        reject_constraints(self, kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.flash_attention = flash_attention
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.seed = seed
        # use_causal_mask given when the layer was called on KerasTensors, replayed by the
        # functional model (and kept in the config so a saved model stays causal).
        self._symbolic_kwargs: dict[str, Any] = {"use_causal_mask": bool(functional_use_causal_mask)}
        for name in ("query_bias", "key_bias", "value_bias", "output_bias"):
            self.register_parameter(name, None)

    # ----------------------------------------------------------------------------- build
    def build(self, query_shape: Shape, value_shape: Shape | None = None,
              key_shape: Shape | None = None) -> None:
        value_shape = tuple(query_shape) if value_shape is None else tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        dims = {"query": query_shape[-1], "value": value_shape[-1], "key": key_shape[-1]}
        for role, size in dims.items():
            if size is None:
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): the last dimension of "
                                 f"the {role} must be defined; received shape "
                                 f"{ {'query': query_shape, 'value': value_shape, 'key': key_shape}[role]}")
        heads, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_size or dims["query"]
        # Keras shape (in, heads, dim) stored as (heads, dim, in) -> viewed as (heads*dim, in).
        for role, head_dim in (("query", kd), ("key", kd), ("value", vd)):
            self.add_weight(f"{role}_kernel", (dims[role], heads, head_dim), self.kernel_initializer,
                            self.kernel_regularizer, torch_perm=(1, 2, 0))
            if self.use_bias:
                self.add_weight(f"{role}_bias", (heads, head_dim), self.bias_initializer,
                                self.bias_regularizer)
        self.add_weight("output_kernel", (heads, vd, out), self.kernel_initializer,
                        self.kernel_regularizer, torch_perm=(2, 0, 1))
        if self.use_bias:
            self.add_weight("output_bias", (out,), self.bias_initializer, self.bias_regularizer)
        self._dims = dims
        self.built = True

    def compute_output_shape(self, query_shape: Shape, value_shape: Shape | None = None,
                             key_shape: Shape | None = None) -> Shape:
        if isinstance(query_shape, list) and query_shape and isinstance(query_shape[0], tuple):
            query_shape = query_shape[0]
        return (*tuple(query_shape)[:-1], self.output_size or query_shape[-1])

    # ----------------------------------------------------------------------------- calling
    def __call__(self, query: Any, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        if type(query) is torch.Tensor and type(value) is torch.Tensor and (
                key is None or type(key) is torch.Tensor):  # eager tensors: never symbolic
            # Layer's dispatch: an enclosing call's training mode (model(x, training=True) in a
            # custom loop) reaches the attention dropout, as in Keras
            return Layer.__call__(self, query, value, key, **kwargs)
        parts = list(query) if isinstance(query, (list, tuple)) else [query, value, key]
        if any(isinstance(p, KerasTensor) for p in parts):
            return self._symbolic(parts, **kwargs)
        return Layer.__call__(self, query, value, key, **kwargs)

    def _symbolic(self, parts: list[Any], **kwargs: Any) -> KerasTensor:
        query, value, key = (parts + [None, None])[:3]
        if value is None:
            raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention) needs `value` "
                              "(pass the query again for self-attention)")
        extra = set(kwargs) - {"use_causal_mask", "training"}
        if extra:
            raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention): in the functional API "
                              f"only use_causal_mask can be given at call time; received "
                              f"{sorted(extra)} (masks and attention scores need eager calls)")
        if "use_causal_mask" in kwargs:  # else keep the flag from the config (a rebuilt model)
            self._symbolic_kwargs = {"use_causal_mask": bool(kwargs["use_causal_mask"])}
        shapes = [p.shape for p in (query, value, key) if p is not None]
        if not self.built:
            self.build(*shapes)
        parents = [p for p in (query, value, key) if p is not None]
        return KerasTensor(self.compute_output_shape(query.shape), layer=self, parents=parents,
                           name=self.name)

    def forward(self, query: Any, value: Any = None, key: Any = None, query_mask: Any = None,
                value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
                return_attention_scores: bool = False, training: bool | None = None,
                use_causal_mask: bool | None = None) -> Any:
        if isinstance(query, (list, tuple)):  # replayed by a functional model
            query, value, key = (list(query) + [None, None])[:3]
            if use_causal_mask is None:
                use_causal_mask = self._symbolic_kwargs.get("use_causal_mask", False)
        if type(query) is not torch.Tensor or type(value) is not torch.Tensor or (
                key is not None and type(key) is not torch.Tensor):
            query, value, key = _as_tensor(query), _as_tensor(value), _as_tensor(key)
        if value is None:
            raise ConfigError(f"Layer '{self.name}' (MultiHeadAttention) needs `value`: call "
                              "layer(query, value) (pass the query twice for self-attention)")
        key = value if key is None else key
        for role, tensor in (("query", query), ("value", value), ("key", key)):
            if not isinstance(tensor, torch.Tensor) or tensor.dim() < 3:
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): {role} must be a "
                                 f"tensor of rank >= 3 (batch, ..., features); received "
                                 f"{getattr(tensor, 'shape', type(tensor).__name__)}")
        if not self.built:
            self._build_device = query.device
            with torch.inference_mode(False):  # ordinary weights (see Layer._maybe_build)
                self.build((None, *query.shape[1:]), (None, *value.shape[1:]),
                           (None, *key.shape[1:]))
            self._build_device = None
        for role, tensor in (("query", query), ("value", value), ("key", key)):
            if tensor.shape[-1] != self._dims[role]:
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): expected the {role}'s "
                                 f"last axis to be {self._dims[role]} (as built); received shape "
                                 f"{tuple(tensor.shape)}")
        if training is None:
            training = self.training
        # As Keras 3: masks attached by earlier layers (Embedding(mask_zero=True), Masking) are used
        # when no explicit mask is given, and the output carries the query's mask.
        query_mask = get_keras_mask(query) if query_mask is None else query_mask
        value_mask = get_keras_mask(value) if value_mask is None else value_mask
        if key_mask is None and key is not value:
            key_mask = get_keras_mask(key)
        outputs = self.call(query, value, key, query_mask, value_mask, key_mask, attention_mask,
                            return_attention_scores, training, bool(use_causal_mask))
        if query_mask is not None:
            set_keras_mask(outputs[0] if return_attention_scores else outputs,
                           _as_tensor(query_mask).to(query.device).bool())
        if self.activity_regularizer is not None:
            first = outputs[0] if return_attention_scores else outputs
            self._activity_loss = self.activity_regularizer(first) / first.shape[0]
        return outputs

    def _attention_mask(self, batch: int, tq: int, tv: int, query_mask: Any, value_mask: Any,
                        key_mask: Any, attention_mask: Any, causal: bool,
                        device: torch.device) -> torch.Tensor | None:
        """Keras's combined boolean mask ``(B, 1, T, S)``, or None."""
        mask = None

        def combine(current, extra):
            return extra if current is None else current & extra

        for role, given, length in (("query_mask", query_mask, tq), ("value_mask", value_mask, tv),
                                    ("key_mask", key_mask, tv)):
            if given is None:
                continue
            given = _as_tensor(given)
            if not torch.is_tensor(given) or given.numel() != batch * length:
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): {role} must have "
                                 f"shape (batch, length) = ({batch}, {length}); received "
                                 f"{getattr(given, 'shape', type(given).__name__)}")
            given = given.to(device).bool().reshape(batch, length)
            mask = combine(mask, given[:, None, :, None] if role == "query_mask"
                           else given[:, None, None, :])
        if attention_mask is not None:
            am = _as_tensor(attention_mask)
            if not torch.is_tensor(am):
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): attention_mask must "
                                 f"be an array; received {type(attention_mask).__name__}")
            am = am.to(device).bool()
            if am.dim() > 3 and am.shape[0] == batch:  # (B, *T, *S) for rank > 3 inputs
                am = am.reshape(batch, tq, tv)
            try:
                torch.broadcast_shapes(tuple(am.shape), (batch, tq, tv))
                ok = am.dim() <= 3
            except RuntimeError:
                ok = False
            if not ok:
                raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): attention_mask of "
                                 f"shape {tuple(am.shape)} does not broadcast to (batch, "
                                 f"query_len, value_len) = ({batch}, {tq}, {tv})")
            mask = combine(mask, am.unsqueeze(-3) if am.dim() == 3 else am)
        if causal:  # Keras: lower triangle aligned at the top left
            rows = torch.arange(tq, device=device).unsqueeze(1)
            mask = combine(mask, torch.arange(tv, device=device).unsqueeze(0) <= rows)
        if mask is None:
            return None
        mask = mask.expand(batch, 1, tq, tv)
        # Keras adds one large negative number to masked scores: a fully masked row stays a plain
        # softmax over every key.
        return mask | ~mask.any(dim=-1, keepdim=True)

    def call(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor,
             query_mask: Any = None, value_mask: Any = None, key_mask: Any = None,
             attention_mask: Any = None, return_attention_scores: bool = False,
             training: bool = False, use_causal_mask: bool = False) -> Any:
        batch = query.shape[0]
        query_axes = tuple(query.shape[1:-1])
        reference = self.query_kernel

        def flat(x):  # (B, *axes, F) -> (B, T, F); sequences (rank 3) as they are
            x = cast_inputs(x, reference)
            return x if x.dim() == 3 else x.reshape(batch, -1, x.shape[-1])

        q_in = flat(query)
        v_in = v_flat = flat(value)
        k_in = v_flat if key is value else flat(key)
        if v_in.shape[1] != k_in.shape[1]:
            raise ShapeError(f"Layer '{self.name}' (MultiHeadAttention): key and value must have "
                             f"the same length; received key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)}")
        tq, tv = q_in.shape[1], v_in.shape[1]
        heads = self.num_heads

        def project(x, role, head_dim):
            kernel = getattr(self, f"{role}_kernel").reshape(heads * head_dim, -1)
            bias = getattr(self, f"{role}_bias")
            out = F.linear(x, kernel, None if bias is None else bias.reshape(-1))
            return out.view(batch, -1, heads, head_dim).transpose(1, 2)  # (B, H, L, d)

        q = project(q_in, "query", self.key_dim)
        k = project(k_in, "key", self.key_dim)
        v = project(v_in, "value", self.value_dim)
        dropout_p = self.dropout if training else 0.0
        if (query_mask is None and value_mask is None and key_mask is None
                and attention_mask is None and not use_causal_mask
                and not return_attention_scores):
            # no mask, no scores: the fused kernel directly (the shapes are the projections')
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p,
                                                 scale=1.0 / math.sqrt(self.key_dim))
            scores = None
        else:
            mask = self._attention_mask(batch, tq, tv, query_mask, value_mask, key_mask,
                                        attention_mask, use_causal_mask, query.device)
            out, scores = scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p,
                scale=1.0 / math.sqrt(self.key_dim), return_weights=return_attention_scores)
        out = out.transpose(1, 2).reshape(batch, tq, heads * self.value_dim)
        kernel = self.output_kernel.reshape(self.output_kernel.shape[0], -1)
        out = F.linear(out, kernel, self.output_bias)
        if len(query_axes) != 1:
            out = out.reshape(batch, *query_axes, out.shape[-1])
        if return_attention_scores:
            return out, scores
        return out

    def get_config(self) -> dict[str, Any]:
        extra = {"functional_use_causal_mask": True} if self._symbolic_kwargs.get(
            "use_causal_mask") else {}
        return {**super().get_config(), **extra, "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_size, "attention_axes": None,
                "flash_attention": self.flash_attention,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": None, "bias_constraint": None, "seed": self.seed}
