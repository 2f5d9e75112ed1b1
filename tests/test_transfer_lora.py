"""LoRA through PEFT: the update against its equation, merging, adapter files, bad targets, and a
tiny run that learns with only the adapters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("peft", reason="LoRA needs the 'peft' package (transfer extra)")

from bigmodel import transfer  # noqa: E402
from bigmodel.engine import Trainer  # noqa: E402
from bigmodel.errors import CheckpointError, ConfigError  # noqa: E402
from bigmodel.models import create_model  # noqa: E402
from bigmodel.nn.attention import MultiHeadAttention  # noqa: E402


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.proj = nn.Linear(3, 5)
        self.norm = nn.LayerNorm(5)
        self.rnn = nn.GRU(5, 5, batch_first=True)
        self.classifier = nn.Linear(5, 2)

    def forward(self, x):
        h = self.conv(x).mean(dim=(2, 3))
        return self.classifier(self.norm(self.proj(h)))


def _randomize_b(model):
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)


def test_linear_update_matches_the_lora_equation():
    torch.manual_seed(0)
    model = Small()
    x = torch.randn(4, 3)
    base = model.proj(x).detach()
    transfer.add_lora(model, "proj", rank=2, alpha=6)
    torch.testing.assert_close(model.proj(x), base)  # B = 0: unchanged at the start
    _randomize_b(model)
    a = model.proj.lora_A["default"].weight.detach().numpy()  # (r, in)
    b = model.proj.lora_B["default"].weight.detach().numpy()  # (out, r)
    w = model.proj.base_layer.weight.detach().numpy()
    bias = model.proj.base_layer.bias.detach().numpy()
    expected = x.numpy() @ w.T + bias + (6 / 2) * (x.numpy() @ a.T @ b.T)
    np.testing.assert_allclose(model.proj(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_conv_update_matches_the_lora_equation_and_merges():
    torch.manual_seed(0)
    model = Small()
    x = torch.randn(2, 2, 6, 6)
    transfer.add_lora(model, "conv", rank=2, alpha=4)
    _randomize_b(model)
    a = model.conv.lora_A["default"].weight.detach()  # (r, in, 3, 3)
    b = model.conv.lora_B["default"].weight.detach()  # (out, r, 1, 1)
    base = model.conv.base_layer
    expected = F.conv2d(x, base.weight, base.bias, padding=1) + 2.0 * F.conv2d(
        F.conv2d(x, a, padding=1), b)
    torch.testing.assert_close(model.conv(x), expected, rtol=1e-5, atol=1e-5)
    out = model(x).detach()
    transfer.merge_lora(model)
    assert type(model.conv) is nn.Conv2d
    torch.testing.assert_close(model(x), out, rtol=1e-5, atol=1e-5)
    assert sorted(model.state_dict()) == sorted(Small().state_dict())  # plain module again


def test_only_adapters_and_extra_modules_train_and_get_gradients():
    torch.manual_seed(0)
    model = Small()
    transfer.add_lora(model, ["conv", "proj"], rank=2, trainable="classifier")
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["classifier.bias", "classifier.weight", "conv.lora_A.default.weight",
                         "conv.lora_B.default.weight", "proj.lora_A.default.weight",
                         "proj.lora_B.default.weight"]
    model(torch.randn(3, 2, 5, 5)).sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
        else:
            assert param.grad is None, name
    transfer.merge_lora(model)
    assert all(p.requires_grad for p in model.parameters())  # as before add_lora


def test_fused_attention_projection_takes_the_adapter_in_self_and_cross_attention():
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2)
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 3, 8)
    holder = nn.Module()
    holder.attn = attention
    transfer.add_lora(holder, "attn.in_proj", rank=2)
    _randomize_b(holder)
    self_out, _ = attention(x)
    cross_out, _ = attention(x, memory)
    merged = MultiHeadAttention(8, 2)
    transfer.merge_lora(holder)
    merged.load_state_dict(attention.state_dict())
    torch.testing.assert_close(merged(x)[0], self_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(merged(x, memory)[0], cross_out, rtol=1e-5, atol=1e-5)


def test_bad_targets_name_the_problem():
    model = Small()
    with pytest.raises(ConfigError, match=r"target 'prj' matches no module.*did you mean 'proj'"):
        transfer.add_lora(model, "prj")
    with pytest.raises(ConfigError, match="'norm' of type LayerNorm, which LoRA does not support"):
        transfer.add_lora(model, "norm")
    with pytest.raises(ConfigError, match="type GRU"):
        transfer.add_lora(model, ["proj", "rnn"])
    with pytest.raises(ConfigError, match="'rank' must be an int >= 1"):
        transfer.add_lora(model, "proj", rank=0)
    with pytest.raises(ConfigError, match="'dropout' must be in"):
        transfer.add_lora(model, "proj", dropout=1.0)
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        transfer.merge_lora(model)
    transfer.add_lora(model, "proj")
    with pytest.raises(ConfigError, match="already has LoRA"):
        transfer.add_lora(model, "conv")


def test_adapter_files_hold_only_adapters_and_reload(tmp_path):
    torch.manual_seed(0)
    model = create_model("bert-classifier", num_layers=2)
    transfer.add_lora(model, ["*.self_attn.in_proj", "*.ffn.linear1"], rank=4,
                      trainable="classifier")
    _randomize_b(model)
    ids = torch.randint(1, 1000, (3, 7))
    model.eval()
    expected = model(ids).detach()
    spec_path = transfer.save_lora(model, tmp_path / "adapter")
    spec = json.loads(spec_path.read_text())
    assert spec["rank"] == 4 and spec["target"] == ["*.self_attn.in_proj", "*.ffn.linear1"]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter.safetensors"))
    assert all(".lora_" in k or k.startswith("classifier.") for k in saved)
    assert sum(v.numel() for v in saved.values()) == transfer.summary(model).trainable
    # a fresh copy of the same base model + the adapter file = the adapted model
    fresh = create_model("bert-classifier", num_layers=2)
    base_state = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items()
                  if ".lora_" not in k}
    fresh.load_state_dict(base_state)
    transfer.load_lora(fresh, tmp_path / "adapter")
    fresh.eval()
    torch.testing.assert_close(fresh(ids), expected)
    other = create_model("bert-classifier", num_layers=2, d_model=32)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        transfer.load_lora(other, tmp_path / "adapter")
    (tmp_path / "adapter" / "adapter.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="pickle|checksum"):
        transfer.load_lora(create_model("bert-classifier", num_layers=2), tmp_path / "adapter")
    with pytest.raises(CheckpointError, match="No LoRA adapter"):
        transfer.load_lora(fresh, tmp_path / "missing")


def test_lora_alone_learns_a_task():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 2))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    transfer.add_lora(model, ["0", "2"], rank=4, alpha=8, trainable="4")
    frozen = model[0].base_layer.weight.detach().clone()
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), lr=2e-2, device="cpu", verbose=0, seed=0,
                      metrics=["accuracy"])
    history = trainer.fit((x, y), epochs=30, batch_size=64)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert torch.equal(model[0].base_layer.weight, frozen)
