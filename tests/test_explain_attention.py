"""Attention maps: hand-built attention patterns with known rollout, a NumPy rollout reference, the
three ways a module can show its weights, image patch tokens, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.explain import explain
from bigmodel.explain.attention import attention_rollout, fuse_heads


class FixedAttention(nn.Module):
    """Mixes tokens with a fixed pattern (H, T, T); shows it through store_attention_weights."""

    store_attention_weights = False

    def __init__(self, pattern: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pattern", pattern)

    def forward(self, x):  # (B, T, D)
        weights = self.pattern.expand(len(x), -1, -1, -1)
        if self.store_attention_weights:
            self.last_attention_weights = weights
        return x + torch.einsum("bhts,bsd->btd", weights, x) / weights.shape[1]


class TokenClassifier(nn.Module):
    def __init__(self, patterns, pool: str = "cls") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([FixedAttention(p) for p in patterns])
        self.head = nn.Linear(4, 2)
        self.pool = pool

    def forward(self, ids):
        h = self.embedding(ids)
        for block in self.blocks:
            h = block(h)
        return self.head(h[:, 0] if self.pool == "cls" else h.mean(dim=1))


def attend_to(token: int, length: int, heads: int = 1) -> torch.Tensor:
    pattern = torch.zeros(heads, length, length)
    pattern[:, :, token] = 1.0
    return pattern


def test_rollout_of_a_hand_built_pattern():
    # every position attends to token 2: one layer gives row 0 = (I + A)/2 = [.5, 0, .5, 0, 0],
    # two layers (A @ A = A) give 0.25 (I + 3A) -> [.25, 0, .75, 0, 0]
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    one = explain(TokenClassifier([attend_to(2, 5)]), ids, method="attention", query=0)
    torch.testing.assert_close(one.attributions, torch.tensor([[0.5, 0.0, 0.5, 0.0, 0.0]]))
    two = explain(TokenClassifier([attend_to(2, 5)] * 2), ids, method="attention", query=0)
    torch.testing.assert_close(two.attributions, torch.tensor([[0.25, 0.0, 0.75, 0.0, 0.0]]))
    assert two.extras["rollout_layers"] == ["blocks.0", "blocks.1"]
    torch.testing.assert_close(two.extras["attention"]["blocks.1"], attend_to(2, 5)[None])
    identity = torch.eye(5)[None]
    self_only = explain(TokenClassifier([identity, identity], pool="mean"), ids,
                        method="attention")
    torch.testing.assert_close(self_only.extras["rollout"][0], torch.eye(5))
    torch.testing.assert_close(self_only.attributions, torch.full((1, 5), 0.2))


def numpy_rollout(maps, fusion):
    result = None
    for weights in maps:
        fused = {"mean": weights.mean(axis=1), "max": weights.max(axis=1),
                 "min": weights.min(axis=1)}[fusion]
        fused = fused + np.eye(fused.shape[-1])
        fused = fused / fused.sum(axis=-1, keepdims=True)
        result = fused if result is None else np.einsum("bij,bjk->bik", fused, result)
    return result


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_matches_numpy(fusion):
    generator = torch.Generator().manual_seed(4)
    maps = [torch.softmax(torch.randn(2, 3, 6, 6, generator=generator), dim=-1) for _ in range(3)]
    got = attention_rollout(maps, head_fusion=fusion)
    expected = numpy_rollout([m.double().numpy() for m in maps], fusion)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(dim=-1).numpy(), 1.0, rtol=1e-5)
    assert fuse_heads(maps[0], fusion).shape == (2, 6, 6)


def test_torch_multihead_attention_is_recorded_without_changing_outputs():
    torch.manual_seed(0)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(10, 8)
            layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(8, 3)

        def forward(self, ids):
            return self.head(self.encoder(self.embedding(ids)).mean(dim=1))

    model = Encoder().eval()
    ids = torch.randint(0, 10, (2, 7))
    before = model(ids)
    result = explain(model, ids, method="attention", head_fusion="max")
    assert list(result.extras["attention"]) == ["encoder.layers.0.self_attn",
                                                "encoder.layers.1.self_attn"]
    first = result.extras["attention"]["encoder.layers.0.self_attn"]
    h = model.embedding(ids)
    _, expected = model.encoder.layers[0].self_attn(h, h, h, need_weights=True,
                                                   average_attn_weights=False)
    torch.testing.assert_close(first, expected.detach())
    torch.testing.assert_close(model(ids), before)
    assert result.attributions.shape == (2, 7)


class NeedWeightsAttention(nn.Module):
    """Single-head attention returning ``(out, weights or None)`` (torch / bigmodel.nn style)."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(4, 4)

    def weights(self, x):
        return torch.softmax(self.query(x) @ x.transpose(1, 2), dim=-1)

    def forward(self, x, need_weights=False):
        weights = self.weights(x)
        return weights @ x, (weights.unsqueeze(1) if need_weights else None)


class ScoresAttention(NeedWeightsAttention):
    """Returns ``out`` or ``(out, scores)`` (Keras style)."""

    def forward(self, x, return_attention_scores=False):
        weights = self.weights(x)
        return (weights @ x, weights.unsqueeze(1)) if return_attention_scores else weights @ x


@pytest.mark.parametrize("flag", ["need_weights", "return_attention_scores"])
def test_modules_with_a_weights_flag(flag):
    torch.manual_seed(1)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(10, 4)
            self.attention = (NeedWeightsAttention() if flag == "need_weights"
                              else ScoresAttention())
            self.head = nn.Linear(4, 2)

        def forward(self, ids):
            out = self.attention(self.embedding(ids))
            if flag == "need_weights":  # the caller gets what it asked for
                assert isinstance(out, tuple) and out[1] is None
                out = out[0]
            assert isinstance(out, torch.Tensor)
            return self.head(out.mean(dim=1))

    ids = torch.randint(0, 10, (3, 5))
    model = Model()
    result = explain(model, ids, method="attention", residual=False)
    h = model.embedding(ids)
    expected = model.attention.weights(h)
    torch.testing.assert_close(result.extras["attention"]["attention"][:, 0], expected.detach())
    torch.testing.assert_close(result.attributions, expected.detach().mean(dim=1))


class PatchModel(nn.Module):
    """8x8 images -> four 4x4 patch tokens + a class token; every token attends to patch 3."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, 4, kernel_size=4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.block = FixedAttention(attend_to(4, 5))  # token 4 = patch 3 (bottom-right)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, 4, 4)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.block(tokens)[:, 0])


def test_image_patch_tokens_map_back_to_pixels():
    result = explain(PatchModel(), torch.rand(2, 1, 8, 8), method="attention", query=0)
    heat = result.position_map()
    assert result.attributions.shape == (2, 1, 8, 8)
    torch.testing.assert_close(heat[:, 4:, 4:], torch.full((2, 4, 4), 0.5))
    assert heat[:, :4, :].abs().max() == 0 and heat[:, 4:, :4].abs().max() == 0


def test_attention_errors():
    ids = torch.tensor([[1, 2, 3]])
    model = TokenClassifier([attend_to(1, 3)])
    with pytest.raises(ConfigError, match="query=5 is out of range for 3 tokens"):
        explain(model, ids, method="attention", query=5)
    with pytest.raises(ConfigError, match=r"layers \[3\] out of range; the model has 1"):
        explain(model, ids, method="attention", layers=[3])
    with pytest.raises(ConfigError, match="unknown head_fusion 'median'"):
        explain(model, ids, method="attention", head_fusion="median")
    silent = TokenClassifier([attend_to(1, 3)])
    silent.blocks[0].forward = lambda x: x  # claims the hook but never stores weights
    with pytest.raises(ConfigError, match="gave no attention weights"):
        explain(silent, ids, method="attention")
    from bigmodel.explain.plots import plot_attention

    result = explain(model, ids, method="attention")
    with pytest.raises(ConfigError, match=r"heads \[4\] out of range"):
        plot_attention(result, 0, heads=[4])
    figure = plot_attention(result, 0)
    assert len(figure.axes) >= 2
