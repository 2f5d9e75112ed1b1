"""Scaled dot-product attention and multi-head attention, with masks and a key/value cache.

``softmax(Q K^T / sqrt(d_k)) V`` (Vaswani et al., 2017, eq. 1). Tensors are laid out
``(batch, heads, length, head_dim)``; any leading axes work for the function.

Masks follow one convention everywhere in bigmodel (and in Keras and ``torch``'s SDPA): a boolean
``True`` means *may attend*. ``attn_mask`` broadcasts to ``(batch, heads, query_len, key_len)`` (a
float mask is added to the scores instead); ``key_mask`` ``(batch, key_len)`` marks real (non-pad)
keys; ``is_causal`` lets query ``i`` see keys ``j <= i + (key_len - query_len)`` -- aligned at the
bottom right, so a query block that continues a cached prefix sees the whole prefix. A query whose
every key is masked gets an output of zeros (and zero attention weights), not NaN.

The computation runs on :func:`torch.nn.functional.scaled_dot_product_attention` (fused flash /
memory-efficient kernels where the hardware has them: no ``L x L`` matrix is kept) unless the
attention weights are requested, in which case an explicit path computes and returns them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError

__all__ = ["KVCache", "MultiHeadAttention", "causal_mask", "merge_masks",
           "scaled_dot_product_attention"]


def causal_mask(query_len: int, key_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(query_len, key_len)`` mask, True where query ``i`` may see key ``j``.

    Aligned at the bottom right: query ``i`` sits at absolute position ``key_len - query_len + i``.
    """
    offset = key_len - query_len
    rows = torch.arange(query_len, device=device).unsqueeze(1) + offset
    return torch.arange(key_len, device=device).unsqueeze(0) <= rows


def _check_broadcast(mask: torch.Tensor, target: tuple[int, ...], what: str) -> None:
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), target)
    except RuntimeError:
        shape = None
    if shape != target:
        raise ShapeError(f"scaled_dot_product_attention: {what} of shape {tuple(mask.shape)} does "
                         f"not broadcast to the attention scores' shape {target} "
                         "(batch, heads, query_len, key_len)")


def merge_masks(scores_shape: tuple[int, ...], attn_mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, is_causal: bool = False,
                device: torch.device | None = None) -> torch.Tensor | None:
    """One mask (bool, True = attend; or float, added to the scores) from the three kinds.

    Args:
        scores_shape: ``(..., query_len, key_len)`` of the attention scores.
        attn_mask: broadcastable to ``scores_shape``; bool or float.
        key_mask: ``(batch, key_len)`` bool, True for real keys.
        is_causal: add a bottom-right aligned causal mask.

    Returns:
        ``None`` when no mask applies, else a tensor broadcastable to ``scores_shape``.

    Raises:
        ShapeError: a mask does not broadcast to the scores / does not match batch and key length.
    """
    query_len, key_len = scores_shape[-2], scores_shape[-1]
    mask = None
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise ShapeError(f"attn_mask must be a tensor; received {type(attn_mask).__name__}")
        _check_broadcast(attn_mask, tuple(scores_shape), "attn_mask")
        mask = attn_mask if attn_mask.dtype == torch.bool or attn_mask.is_floating_point() \
            else attn_mask.bool()
    if key_mask is not None:
        if key_mask.dim() != 2 or key_mask.shape[0] not in (1, scores_shape[0]) \
                or key_mask.shape[1] != key_len:
            raise ShapeError(f"key_mask must have shape (batch, key_len) = ({scores_shape[0]}, "
                             f"{key_len}); received {tuple(key_mask.shape)}")
        km = key_mask.bool().reshape(key_mask.shape[0], *([1] * (len(scores_shape) - 2)), key_len)
        mask = km if mask is None else _and(mask, km)
    if is_causal:
        cm = causal_mask(query_len, key_len, device)
        mask = cm if mask is None else _and(mask, cm)
    return mask


def _and(mask: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """Combine a bool/float mask with a boolean one."""
    if mask.dtype == torch.bool:
        return mask & extra
    return mask.masked_fill(~extra, float("-inf"))


def scaled_dot_product_attention(
        query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
        attn_mask: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
        is_causal: bool = False, dropout_p: float = 0.0, scale: float | None = None,
        return_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(query @ key^T * scale + mask) @ value``.

    Args:
        query: ``(..., query_len, d_k)``; usually ``(batch, heads, query_len, d_k)``.
        key: ``(..., key_len, d_k)``.
        value: ``(..., key_len, d_v)``.
        attn_mask: bool (True = attend) or float (added), broadcastable to
            ``(..., query_len, key_len)``.
        key_mask: ``(batch, key_len)`` bool, True for real (non-padding) keys.
        is_causal: query ``i`` sees keys ``j <= i + key_len - query_len``.
        dropout_p: dropout on the attention weights (pass 0 at inference).
        scale: defaults to ``1 / sqrt(d_k)``.
        return_weights: also return the attention weights (explicit path).

    Returns:
        ``(output (..., query_len, d_v), weights (..., query_len, key_len) or None)``. The weights
        are those before dropout (as Keras returns them).

    Raises:
        ShapeError: mismatched head dims / lengths, or masks that do not broadcast.
    """
    if query.dim() < 2 or key.dim() != query.dim() or value.dim() != query.dim():
        raise ShapeError(f"scaled_dot_product_attention: query, key and value must have the same "
                         f"rank >= 2; received {tuple(query.shape)}, {tuple(key.shape)}, "
                         f"{tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query/key head dims and key/value lengths "
                         f"must agree; received query {tuple(query.shape)}, key {tuple(key.shape)}, "
                         f"value {tuple(value.shape)}")
    query_len, key_len = query.shape[-2], key.shape[-2]
    batch_shape = query.shape[:-2]
    if key.shape[:-2] != batch_shape:  # (torch.broadcast_shapes costs ~10 us per call)
        batch_shape = torch.broadcast_shapes(batch_shape, key.shape[:-2])
    scores_shape = (*batch_shape, query_len, key_len)
    if key_len == 0:
        raise ShapeError("scaled_dot_product_attention: the key sequence is empty (key_len=0)")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if is_causal and query_len == 1:
        is_causal = False  # a single (last) query sees every key: no mask needed
    # The fused kernel's own causal mask is top-left aligned: use it only for square attention.
    fused_causal = is_causal and query_len == key_len and attn_mask is None and key_mask is None
    mask = None if fused_causal else merge_masks(scores_shape, attn_mask, key_mask, is_causal,
                                                 query.device)
    if not return_weights:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=dropout_p, is_causal=fused_causal,
                                             scale=scale)
        return out, None
    if fused_causal:
        mask = causal_mask(query_len, key_len, query.device)
    # Softmax in at least float32 (bf16/fp16 inputs), in float64 for float64 inputs.
    compute_dtype = torch.promote_types(query.dtype, torch.float32)
    scores = torch.matmul(query, key.transpose(-2, -1)).to(compute_dtype) * scale
    valid_rows = None
    if mask is not None:
        if mask.dtype == torch.bool:
            valid_rows = mask.any(dim=-1, keepdim=True)
            scores = scores.masked_fill(~(mask | ~valid_rows), float("-inf"))
        else:
            scores = scores + mask.to(compute_dtype)
    weights = torch.softmax(scores, dim=-1)
    if valid_rows is not None:
        weights = weights * valid_rows  # fully masked queries: zero weights and output
    weights = weights.to(query.dtype)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return torch.matmul(dropped, value), weights


class KVCache:
    """Keys and values of earlier positions, for incremental decoding.

    ``append(k, v)`` adds ``(batch, heads, new_len, d)`` blocks and returns every key and value so
    far (views of a buffer that doubles when full: appending one token is not a copy of the whole
    history). A *static* cache (cross-attention) is filled once, from the encoder output, and reused.
    ``reorder(indices)`` selects batch rows (beam search).
    """

    def __init__(self, static: bool = False) -> None:
        self.static = static
        self._key: torch.Tensor | None = None
        self._value: torch.Tensor | None = None
        self.length = 0

    @property
    def key(self) -> torch.Tensor | None:
        return None if self._key is None else self._key[:, :, : self.length]

    @property
    def value(self) -> torch.Tensor | None:
        return None if self._value is None else self._value[:, :, : self.length]

    def append(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = key.shape[2]
        if self._key is None:
            capacity = new if self.static else max(16, 2 * new)
            self._key = key.new_empty(*key.shape[:2], capacity, key.shape[3])
            self._value = value.new_empty(*value.shape[:2], capacity, value.shape[3])
        elif key.shape[:2] != self._key.shape[:2]:
            raise ShapeError(f"KVCache: appended keys of shape {tuple(key.shape)} do not match the "
                             f"cached (batch, heads) {tuple(self._key.shape[:2])}")
        end = self.length + new
        if end > self._key.shape[2]:
            capacity = max(end, 2 * self._key.shape[2])
            self._key = _grow(self._key, capacity, self.length)
            self._value = _grow(self._value, capacity, self.length)
        self._key[:, :, self.length: end] = key
        self._value[:, :, self.length: end] = value
        self.length = end
        return self.key, self.value

    def reorder(self, indices: torch.Tensor) -> None:
        if self._key is not None:
            self._key = self._key.index_select(0, indices)
            self._value = self._value.index_select(0, indices)


def _grow(buffer: torch.Tensor, capacity: int, used: int) -> torch.Tensor:
    grown = buffer.new_empty(*buffer.shape[:2], capacity, buffer.shape[3])
    grown[:, :, :used] = buffer[:, :, :used]
    return grown


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., 2017, section 3.2.2) for self- and cross-attention.

    ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)``; ``MultiHead = Concat(head_1..h) W^O``.

    Args:
        embed_dim: size of the query vectors (and of the output unless ``output_dim``).
        num_heads: number of heads ``h``.
        key_dim: per-head size of queries and keys; default ``embed_dim // num_heads``.
        value_dim: per-head size of values; default ``key_dim``.
        kdim, vdim: sizes of the key / value source vectors (cross-attention); default ``embed_dim``.
        output_dim: size of the output; default ``embed_dim``.
        dropout: dropout on the attention weights (training only).
        bias: biases in the four projections.

    When ``kdim == vdim == embed_dim`` the three input projections are one fused ``in_proj`` matrix
    (one matmul for self-attention), as in ``torch.nn.MultiheadAttention``; otherwise they are
    separate ``q_proj``, ``k_proj``, ``v_proj``.

    Raises:
        ConfigError: ``embed_dim`` not divisible by ``num_heads`` (without ``key_dim``), or a size
            that is not a positive integer, or ``dropout`` outside ``[0, 1)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, key_dim: int | None = None,
                 value_dim: int | None = None, kdim: int | None = None, vdim: int | None = None,
                 output_dim: int | None = None, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        for name, size in (("embed_dim", embed_dim), ("num_heads", num_heads), ("key_dim", key_dim),
                           ("value_dim", value_dim), ("kdim", kdim), ("vdim", vdim),
                           ("output_dim", output_dim)):
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
                raise ConfigError(f"MultiHeadAttention: '{name}' must be a positive int; "
                                  f"received {size!r}")
        if key_dim is None and embed_dim % num_heads:
            raise ConfigError(f"MultiHeadAttention: embed_dim (d_model) must be divisible by "
                              f"num_heads; received embed_dim={embed_dim}, num_heads={num_heads} "
                              f"(or pass key_dim)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MultiHeadAttention: 'dropout' must be in [0, 1); received {dropout!r}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.key_dim = key_dim or embed_dim // num_heads
        self.value_dim = value_dim or self.key_dim
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.output_dim = output_dim or embed_dim
        self.dropout = float(dropout)
        qk, vv = num_heads * self.key_dim, num_heads * self.value_dim
        self._sizes = (qk, qk, vv)
        self.fused = self.kdim == self.vdim == embed_dim
        if self.fused:
            self.in_proj = nn.Linear(embed_dim, 2 * qk + vv, bias=bias)
        else:
            self.q_proj = nn.Linear(embed_dim, qk, bias=bias)
            self.k_proj = nn.Linear(self.kdim, qk, bias=bias)
            self.v_proj = nn.Linear(self.vdim, vv, bias=bias)
        self.out_proj = nn.Linear(vv, self.output_dim, bias=bias)

    def _project(self, query: torch.Tensor, key: torch.Tensor | None, value: torch.Tensor | None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(q, k, v)`` before the head split; ``k``/``v`` are None when ``key`` is None."""
        qk, _, vv = self._sizes
        if not self.fused:
            q = self.q_proj(query)
            if key is None:
                return q, None, None
            return q, self.k_proj(key), self.v_proj(value)
        if key is query and value is query:  # self-attention: one matmul
            # Called as a module (not F.linear on its weight) so a wrapper such as a LoRA adapter
            # around ``in_proj`` takes part.
            q, k, v = self.in_proj(query).split(self._sizes, dim=-1)
            return q, k, v
        if type(self.in_proj) is not nn.Linear:  # wrapped (LoRA): project whole, keep the slices
            q = self.in_proj(query)[..., :qk]
            if key is None:
                return q, None, None
            return q, self.in_proj(key)[..., qk: 2 * qk], self.in_proj(value)[..., 2 * qk:]
        weight, bias = self.in_proj.weight, self.in_proj.bias
        b = (None, None, None) if bias is None else (bias[:qk], bias[qk: 2 * qk], bias[2 * qk:])
        q = F.linear(query, weight[:qk], b[0])
        if key is None:
            return q, None, None
        if value is key:
            k, v = F.linear(key, weight[qk:], None if bias is None else bias[qk:]).split(
                (qk, vv), dim=-1)
            return q, k, v
        return q, F.linear(key, weight[qk: 2 * qk], b[1]), F.linear(value, weight[2 * qk:], b[2])

    def _heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        batch, length = x.shape[0], x.shape[1]
        return x.view(batch, length, self.num_heads, head_dim).transpose(1, 2)  # (B, H, L, d)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None, *, attn_mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False, cache: KVCache | None = None,
                rotary: nn.Module | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: ``(B, Lq, embed_dim)``.
            key: ``(B, Lk, kdim)``; ``None`` for self-attention (key = value = query).
            value: ``(B, Lk, vdim)``; default ``key``.
            attn_mask: bool/float mask broadcastable to ``(B, heads, Lq, Lk_total)``.
            key_mask: ``(B, Lk_total)`` bool, True for real keys (covering cached keys too).
            is_causal: causal self-attention (bottom-right aligned with a cache).
            need_weights: also return the weights ``(B, heads, Lq, Lk_total)`` (explicit path).
            cache: a :class:`KVCache`. Self-attention appends this call's keys/values and attends
                over all cached ones; a static cache (cross-attention) is filled on the first call
                and then reused (``key``/``value`` may then be None).
            rotary: a rotary position embedding (``bigmodel.nn.positional.RotaryEmbedding``)
                applied to queries and keys at positions ``cache.length + i``.

        Returns:
            ``(output (B, Lq, output_dim), weights or None)``.

        Raises:
            ShapeError: wrong ranks or feature sizes, or masks that do not broadcast.
        """
        if query.dim() != 3 or query.shape[-1] != self.embed_dim:
            raise ShapeError(f"MultiHeadAttention: query must be (batch, length, {self.embed_dim}); "
                             f"received {tuple(query.shape)}")
        self_attention = key is None and not (cache is not None and cache.static)
        if self_attention:
            key = value = query
        elif value is None:
            value = key
        reuse = cache is not None and cache.static and cache.length > 0
        if not reuse and key is not None and (key.dim() != 3 or key.shape[-1] != self.kdim
                                              or value.shape[-1] != self.vdim
                                              or key.shape[:2] != value.shape[:2]
                                              or key.shape[0] != query.shape[0]):
            raise ShapeError(f"MultiHeadAttention: key/value must be (batch, length, {self.kdim}) / "
                             f"(batch, length, {self.vdim}) with the query's batch "
                             f"{query.shape[0]}; received {tuple(key.shape)} and "
                             f"{tuple(value.shape)}")
        q, k, v = self._project(query, None if reuse else key, None if reuse else value)
        q = self._heads(q, self.key_dim)
        offset = cache.length if (cache is not None and not cache.static) else 0
        if reuse:
            k, v = cache.key, cache.value
        else:
            k, v = self._heads(k, self.key_dim), self._heads(v, self.value_dim)
            if rotary is not None:
                k = rotary(k, offset)
            if cache is not None:
                k, v = cache.append(k, v)
        if rotary is not None:
            q = rotary(q, offset)
        out, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, key_mask=key_mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0, return_weights=need_weights)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)  # (B, Lq, H*dv)
        return self.out_proj(out), weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, key_dim={self.key_dim}, "
                f"value_dim={self.value_dim}, kdim={self.kdim}, vdim={self.vdim}, "
                f"output_dim={self.output_dim}, dropout={self.dropout}")
