"""bigmodel.nn attention, positional encodings and Transformer layers against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.nn.attention import KVCache, MultiHeadAttention, scaled_dot_product_attention
from bigmodel.nn.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)
from bigmodel.nn.transformer import (
    TransformerDecoder,
    TransformerEncoder,
    TransformerEncoderLayer,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The machine is shared: one thread avoids OpenMP oversubscription (and is faster here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ NumPy references
def np_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v with a boolean mask (True = attend); masked rows -> zeros."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(scores - top)
    total = e.sum(-1, keepdims=True)
    weights = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return weights @ v, weights


def np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_mha(mha: MultiHeadAttention, query, key, value, mask=None):
    """Multi-head attention from the equations, with the module's weights as NumPy arrays."""
    w = {n: p.detach().double().numpy() for n, p in mha.named_parameters()}
    qk, _, vv = mha._sizes
    if mha.fused:
        wq, wk, wv = w["in_proj.weight"][:qk], w["in_proj.weight"][qk:2 * qk], w["in_proj.weight"][2 * qk:]
        bq, bk, bv = w["in_proj.bias"][:qk], w["in_proj.bias"][qk:2 * qk], w["in_proj.bias"][2 * qk:]
    else:
        wq, wk, wv = w["q_proj.weight"], w["k_proj.weight"], w["v_proj.weight"]
        bq, bk, bv = w["q_proj.bias"], w["k_proj.bias"], w["v_proj.bias"]
    heads = mha.num_heads

    def split(x, d):  # (B, L, H*d) -> (B, H, L, d)
        return x.reshape(x.shape[0], x.shape[1], heads, d).transpose(0, 2, 1, 3)

    q = split(query @ wq.T + bq, mha.key_dim)
    k = split(key @ wk.T + bk, mha.key_dim)
    v = split(value @ wv.T + bv, mha.value_dim)
    out, weights = np_attention(q, k, v, mask)
    out = out.transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], -1)
    return out @ w["out_proj.weight"].T + w["out_proj.bias"], weights


def causal(lq, lk):
    return np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)


# ------------------------------------------------------------------------------ scaled dot product
@pytest.mark.parametrize("return_weights", [False, True])
def test_sdpa_matches_numpy_with_padding_and_causal_masks(return_weights):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.float64) for _ in range(3))
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    for is_causal in (False, True):
        out, weights = scaled_dot_product_attention(q, k, v, key_mask=key_mask, is_causal=is_causal,
                                                    return_weights=return_weights)
        mask = key_mask.numpy()[:, None, None, :]
        if is_causal:
            mask = mask & causal(5, 5)
        ref, ref_w = np_attention(q.numpy(), k.numpy(), v.numpy(), mask)
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)
        if return_weights:
            np.testing.assert_allclose(weights.numpy(), ref_w, atol=1e-12)
            np.testing.assert_allclose(weights.sum(-1).numpy(), 1.0)
        else:
            assert weights is None


def test_sdpa_causal_rectangular_is_bottom_right_aligned_and_float_masks_add():
    torch.manual_seed(1)
    q = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    k, v = torch.randn(1, 2, 7, 4, dtype=torch.float64), torch.randn(1, 2, 7, 6, dtype=torch.float64)
    for weights in (False, True):
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=weights)
        ref, _ = np_attention(q.numpy(), k.numpy(), v.numpy(), causal(3, 7))
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)
    bias = torch.randn(3, 7, dtype=torch.float64)
    out, _ = scaled_dot_product_attention(q, k, v, attn_mask=bias)
    scores = q.numpy() @ k.numpy().swapaxes(-1, -2) / 2.0 + bias.numpy()
    w = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(out.numpy(), (w / w.sum(-1, keepdims=True)) @ v.numpy(), atol=1e-10)


@pytest.mark.parametrize("return_weights", [False, True])
def test_fully_masked_query_gives_zeros_not_nan(return_weights):
    q, k, v = (torch.randn(1, 1, 3, 4, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    out, _ = scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=return_weights)
    assert torch.equal(out[0, 0, 1], torch.zeros(4))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_sdpa_bad_masks_and_shapes_are_named():
    q = torch.randn(2, 2, 4, 8)
    with pytest.raises(ShapeError, match=r"attn_mask of shape \(3, 5\) does not broadcast.*\(2, 2, 4, 4\)"):
        scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"key_mask must have shape \(batch, key_len\) = \(2, 4\)"):
        scaled_dot_product_attention(q, q, q, key_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match="head dims"):
        scaled_dot_product_attention(q, torch.randn(2, 2, 4, 6), q)
    with pytest.raises(ShapeError, match="key sequence is empty"):
        scaled_dot_product_attention(q, q[:, :, :0], q[:, :, :0])


# ------------------------------------------------------------------------------ multi-head attention
def test_mha_self_and_cross_attention_match_numpy_and_torch():
    torch.manual_seed(2)
    mha = MultiHeadAttention(12, 3).double().eval()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    out, weights = mha(x, key_mask=key_mask, is_causal=True, need_weights=True)
    mask = key_mask.numpy()[:, None, None, :] & causal(5, 5)
    ref, ref_w = np_mha(mha, x.numpy(), x.numpy(), x.numpy(), mask)
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, atol=1e-12)
    # torch.nn.MultiheadAttention with the same weights (its key_padding_mask: True = ignore).
    reference = nn.MultiheadAttention(12, 3, batch_first=True).double().eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(mha.in_proj.weight)
        reference.in_proj_bias.copy_(mha.in_proj.bias)
        reference.out_proj.weight.copy_(mha.out_proj.weight)
        reference.out_proj.bias.copy_(mha.out_proj.bias)
    memory = torch.randn(2, 7, 12, dtype=torch.float64)
    out, _ = mha(x, memory)
    ref, _ = reference(x, memory, memory)
    torch.testing.assert_close(out, ref)


def test_mha_separate_key_value_dims_match_numpy():
    torch.manual_seed(3)
    mha = MultiHeadAttention(6, num_heads=2, key_dim=5, value_dim=3, kdim=4, vdim=7,
                             output_dim=9).double()
    assert not mha.fused
    q, k, v = (torch.randn(2, 3, 6, dtype=torch.float64), torch.randn(2, 4, 4, dtype=torch.float64),
               torch.randn(2, 4, 7, dtype=torch.float64))
    out, _ = mha(q, k, v)
    assert out.shape == (2, 3, 9)
    ref, _ = np_mha(mha, q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)
    params = sum(p.numel() for p in mha.parameters())
    assert params == (6 * 10 + 10) + (4 * 10 + 10) + (7 * 6 + 6) + (6 * 9 + 9)


def test_mha_bad_arguments():
    with pytest.raises(ConfigError, match="divisible by num_heads.*embed_dim=10, num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ConfigError, match="'num_heads' must be a positive int"):
        MultiHeadAttention(8, 0)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ShapeError, match=r"query must be \(batch, length, 8\)"):
        mha(torch.randn(2, 3, 6))
    with pytest.raises(ShapeError, match="key/value must be"):
        mha(torch.randn(2, 3, 8), torch.randn(3, 4, 8))


def test_kv_cache_grows_and_reorders():
    cache = KVCache()
    for step in range(40):
        key, value = cache.append(torch.full((2, 1, 1, 3), float(step)), torch.zeros(2, 1, 1, 3))
    assert key.shape == (2, 1, 40, 3) and torch.equal(key[0, 0, :, 0], torch.arange(40.0))
    cache.reorder(torch.tensor([1, 1]))
    assert cache.key.shape == (2, 1, 40, 3)


# ------------------------------------------------------------------------------ positions
def test_sinusoidal_table_is_the_paper_formula():
    table = sinusoidal_encoding(50, 7).numpy()
    pos = np.arange(50)[:, None]
    for i in range(7):
        angle = pos[:, 0] / 10000 ** (2 * (i // 2) / 7)
        expected = np.sin(angle) if i % 2 == 0 else np.cos(angle)
        np.testing.assert_allclose(table[:, i], expected, atol=1e-6)
    module = SinusoidalPositionalEncoding(7, max_length=50)
    x = torch.zeros(1, 4, 7)
    np.testing.assert_allclose(module(x, offset=3)[0].numpy(), table[3:7], atol=1e-7)
    assert "table" not in module.state_dict()
    with pytest.raises(ShapeError, match="length 48 at offset 3.*maximum length 50"):
        module(torch.zeros(1, 48, 7), offset=3)


def test_rotary_matches_formula_and_depends_on_distance_only():
    rope = RotaryEmbedding(6, max_length=32).double()
    x = torch.randn(2, 1, 5, 6, dtype=torch.float64)
    out = rope(x, offset=2).numpy()
    for m in range(5):
        pos = m + 2
        for i in range(3):
            theta = 10000 ** (-2 * i / 6)
            c, s = np.cos(pos * theta), np.sin(pos * theta)
            a, b = x[..., m, 2 * i].numpy(), x[..., m, 2 * i + 1].numpy()
            np.testing.assert_allclose(out[..., m, 2 * i], a * c - b * s, atol=1e-6)
            np.testing.assert_allclose(out[..., m, 2 * i + 1], a * s + b * c, atol=1e-6)
    q, k = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)

    def dot(m, n):
        return float(rope(q.view(1, 1, 6), m) @ rope(k.view(1, 1, 6), n).view(6))

    assert dot(3, 1) == pytest.approx(dot(10, 8), abs=1e-5)
    assert dot(3, 1) != pytest.approx(dot(3, 2), abs=1e-3)
    with pytest.raises(ConfigError, match="even"):
        RotaryEmbedding(5)
    with pytest.raises(ShapeError, match="maximum length 32"):
        rope(torch.zeros(1, 1, 4, 6), offset=30)


def test_learned_positions_are_trainable_and_checked():
    module = LearnedPositionalEmbedding(8, 4)
    module(torch.zeros(2, 8, 4)).sum().backward()
    assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="length 9 at offset 0"):
        module(torch.zeros(1, 9, 4))


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_numpy(norm_first):
    torch.manual_seed(4)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first).double().eval()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    key_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    out, _ = layer(x, key_mask=key_mask)
    w = {n: p.detach().numpy() for n, p in layer.named_parameters()}
    mask = key_mask.numpy()[:, None, None, :]

    def attn(h):
        return np_mha(layer.self_attn, h, h, h, mask)[0]

    def ffn(h):
        hidden = np.maximum(h @ w["ffn.linear1.weight"].T + w["ffn.linear1.bias"], 0)
        return hidden @ w["ffn.linear2.weight"].T + w["ffn.linear2.bias"]

    def ln(h, i):
        return np_layer_norm(h, w[f"norm{i}.weight"], w[f"norm{i}.bias"], 1e-5)

    h = x.numpy()
    if norm_first:
        h = h + attn(ln(h, 1))
        h = h + ffn(ln(h, 2))
    else:
        h = ln(h + attn(h), 1)
        h = ln(h + ffn(h), 2)
    np.testing.assert_allclose(out.detach().numpy(), h, atol=1e-10)


def test_no_information_flows_from_future_positions():
    torch.manual_seed(5)
    encoder = TransformerEncoder(2, 8, 2, 16, dropout=0.0, norm_first=True)
    x = torch.randn(1, 6, 8, requires_grad=True)
    out, _ = encoder(x, is_causal=True)
    probe = torch.randn(8)  # a LayerNorm output sums to a constant: project on a random vector
    for t in range(6):
        (grad,) = torch.autograd.grad(out[0, t] @ probe, x, retain_graph=True)
        assert grad[0, t + 1:].abs().sum() == 0, t
        assert grad[0, : t + 1].abs().sum(-1).min() > 0, t
    decoder = TransformerDecoder(2, 8, 2, 16, dropout=0.0)
    y = torch.randn(1, 5, 8, requires_grad=True)
    out, _ = decoder(y, torch.randn(1, 3, 8))
    (grad,) = torch.autograd.grad(out[0, 2] @ probe, y)
    assert grad[0, 3:].abs().max() == 0 and grad[0, :3].abs().sum() > 0


def test_kv_cache_decoding_equals_full_forward():
    torch.manual_seed(6)
    encoder = TransformerEncoder(2, 8, 2, 16, dropout=0.0, norm_first=True).eval()
    rope = RotaryEmbedding(4, max_length=16)
    x = torch.randn(2, 7, 8)
    full, _ = encoder(x, is_causal=True, rotary=rope)
    caches = [KVCache() for _ in range(2)]
    pieces = [encoder(x[:, :3], is_causal=True, caches=caches, rotary=rope)[0]]  # a prompt block
    for t in range(3, 7):
        pieces.append(encoder(x[:, t: t + 1], is_causal=True, caches=caches, rotary=rope)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)

    decoder = TransformerDecoder(2, 8, 2, 16, dropout=0.0).eval()
    memory, memory_mask = torch.randn(2, 5, 8), torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]).bool()
    y = torch.randn(2, 4, 8)
    full, _ = decoder(y, memory, memory_key_mask=memory_mask)
    caches = decoder.new_caches()
    steps = [decoder(y[:, t: t + 1], memory if t == 0 else None, memory_key_mask=memory_mask,
                     caches=caches)[0] for t in range(4)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_padded_and_unpadded_batches_agree():
    torch.manual_seed(7)
    encoder = TransformerEncoder(2, 8, 2, 16, dropout=0.0).eval()
    short, long = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    padded = torch.cat([torch.cat([short, torch.randn(1, 3, 8)], dim=1), long])
    key_mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6]).bool()
    batch_out, _ = encoder(padded, key_mask=key_mask)
    torch.testing.assert_close(batch_out[0, :3], encoder(short)[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch_out[1], encoder(long)[0][0], atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient():
    decoder = TransformerDecoder(1, 8, 2, 16, norm_first=True)
    out, _ = decoder(torch.randn(2, 3, 8), torch.randn(2, 4, 8))
    out.pow(2).sum().backward()
    missing = [n for n, p in decoder.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_layer_bad_arguments():
    with pytest.raises(ConfigError, match="'dropout' must be in \\[0, 1\\)"):
        TransformerEncoderLayer(8, 2, 16, dropout=1.5)
    with pytest.raises(ConfigError, match="Unknown activation 'swishy'"):
        TransformerEncoderLayer(8, 2, 16, activation="swishy")
    with pytest.raises(ConfigError, match="'num_layers' must be a positive int"):
        TransformerEncoder(0, 8, 2, 16)
