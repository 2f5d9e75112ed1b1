"""Structured pruning of attention heads (MultiHeadAttention in every Transformer model) and of the
hidden units of bigmodel's recurrent layers: outputs unchanged when the removed heads / units were
already zero, parameter counts, FLOPs targets, save/load, gradients, bad input."""

from __future__ import annotations

import copy

import pytest
import torch

from bigmodel.compress import load_any, save_compressed, structured_prune
from bigmodel.compress.units import head_scores, prune_heads
from bigmodel.errors import ConfigError
from bigmodel.models import create_model
from bigmodel.nn.attention import MultiHeadAttention


def zero_head_outputs(m: MultiHeadAttention, heads: list[int]) -> None:
    """Zero the output-projection columns of ``heads``: they then add nothing to the output."""
    with torch.no_grad():
        for h in heads:
            m.out_proj.weight[:, h * m.value_dim:(h + 1) * m.value_dim] = 0


def test_removing_zeroed_heads_keeps_the_classifier_outputs_and_counts_parameters():
    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=50, d_model=32, num_heads=4,
                         num_layers=2, dff=64).eval()
    zero_head_outputs(model.encoder.layers[0].self_attn, [1, 2])
    zero_head_outputs(model.encoder.layers[1].self_attn, [0])
    ids = torch.randint(1, 50, (3, 9))
    ids[1, 6:] = 0  # padding takes the masked paths too
    expected = model(ids)
    params = sum(p.numel() for p in model.parameters())
    structure = prune_heads(model, {"encoder.layers.0.self_attn": [1, 2],
                                    "encoder.layers.1.self_attn": [0]})
    assert structure == {"encoder.layers.0.self_attn": {"heads": 2},
                         "encoder.layers.1.self_attn": {"heads": 3}}
    torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=0)
    # Each removed head: key_dim rows of q and k and value_dim rows of v (weights + biases) and
    # value_dim columns of the output projection.
    per_head = 3 * (8 * 32 + 8) + 32 * 8
    assert sum(p.numel() for p in model.parameters()) == params - 3 * per_head
    attn = model.encoder.layers[0].self_attn
    assert attn.num_heads == 2 and attn.in_proj.weight.shape == (48, 32)
    assert model.attention_maps(ids)[0].shape == (3, 2, 9, 9)


def test_head_scores_find_the_zeroed_heads_and_structured_prune_removes_them():
    torch.manual_seed(0)
    model = create_model("vit", d_model=32, num_heads=4, num_layers=1, dff=64).eval()
    attn = model.encoder.layers[0].self_attn
    zero_head_outputs(attn, [0, 3])
    x = torch.rand(4, 1, 28, 28)
    for scores in (head_scores(model, x), head_scores(model)):
        s = scores["encoder.layers.0.self_attn"]
        assert s[0] == 0 and s[3] == 0 and (s[[1, 2]] > 0).all()
    expected = model(x)
    pruned = copy.deepcopy(model)
    result = structured_prune(pruned, x[:1], channel_ratio=0.5, heads=True)
    assert result.structure["encoder.layers.0.self_attn"] == {"heads": 2}
    assert result.params_after < result.params_before
    # FFN hidden units went too, so compare the heads alone on another copy.
    heads_only = copy.deepcopy(model)
    prune_heads(heads_only, {"encoder.layers.0.self_attn": [0, 3]})
    torch.testing.assert_close(heads_only(x), expected, atol=1e-5, rtol=0)


def test_cross_attention_with_separate_projections_and_seq2seq_flops_target(tmp_path):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, kdim=12, vdim=10)  # separate q/k/v projections
    zero_head_outputs(mha, [2])
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    v = torch.randn(2, 7, 10)
    expected, _ = mha(q, kv, v)
    wrapper = torch.nn.ModuleDict({"attn": mha})
    prune_heads(wrapper, {"attn": [2]})
    assert mha.q_proj.out_features == mha.k_proj.out_features == 12 and mha.num_heads == 3
    torch.testing.assert_close(mha(q, kv, v)[0], expected, atol=1e-5, rtol=0)

    model = create_model("transformer", d_model=32, num_layers=1, dff=64, input_vocab_size=40,
                         target_vocab_size=30).eval()
    example = (torch.randint(3, 40, (1, 7)), torch.randint(3, 30, (1, 5)))
    result = structured_prune(model, example, flops_ratio=0.5, heads=True)
    assert 0.4 <= result.macs_ratio <= 0.5
    assert {"encoder.layers.0.self_attn", "decoder.layers.0.self_attn",
            "decoder.layers.0.cross_attn"} <= set(result.structure)
    save_compressed(model, tmp_path / "pruned", structure=result.structure)
    loaded = load_any(tmp_path / "pruned")
    source, target = torch.randint(3, 40, (2, 7)), torch.randint(3, 30, (2, 5))
    torch.testing.assert_close(loaded(source, target), model(source, target))
    assert loaded.translate(source[:1], max_new_tokens=3) is not None  # decoding (KV cache) runs


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_removing_zeroed_recurrent_units_keeps_the_outputs(cell):
    torch.manual_seed(0)
    model = create_model("rnn-classifier", input_size=6, hidden_size=8, num_layers=2, cell=cell,
                         num_classes=3).eval()
    rnn = model.encoder.rnn
    gates = {"lstm": 4, "gru": 3, "simple": 1}[cell]
    dead = [1, 4]  # units whose every incoming weight and bias is zero stay at zero
    rows = [g * 8 + u for g in range(gates) for u in dead]
    with torch.no_grad():
        for layer in range(2):
            getattr(rnn, f"kernel_l{layer}")[rows] = 0
            getattr(rnn, f"recurrent_kernel_l{layer}")[rows] = 0
            getattr(rnn, f"bias_l{layer}")[..., rows] = 0
    x = torch.randn(5, 7, 6)
    expected = model(x)
    params = sum(p.numel() for p in model.parameters())
    result = structured_prune(model, x[:1], channel_ratio=0.25)
    assert result.structure == {"encoder.rnn": {"out": 6}, "classifier": {"in": 6}}
    assert rnn.hidden_size == 6 and rnn.kernel_l1.shape == (gates * 6, 6)
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)
    # The pruned stack has exactly the parameters of one built with 6 units.
    expected_params = sum(p.numel() for p in create_model(
        "rnn-classifier", input_size=6, hidden_size=6, num_layers=2, cell=cell,
        num_classes=3).parameters())
    assert sum(p.numel() for p in model.parameters()) == expected_params < params


def test_seed_rnn_half_the_flops_trains_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed-rnn", hidden_size=16)
    x = torch.rand(8, 28, 28)
    result = structured_prune(model, x[:1], flops_ratio=0.5)
    assert result.macs_ratio <= 0.5 and result.structure["encoder.rnn"]["out"] < 16
    loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 10, (8,)))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    save_compressed(model.eval(), tmp_path / "rnn", structure=result.structure)
    torch.testing.assert_close(load_any(tmp_path / "rnn")(x), model(x))


def test_bad_head_requests_are_refused():
    model = create_model("gpt", vocab_size=50, d_model=32, num_heads=4, num_layers=1)
    with pytest.raises(ConfigError, match="no MultiHeadAttention named 'nowhere'"):
        prune_heads(model, {"nowhere": [0]})
    with pytest.raises(ConfigError, match=r"heads 0\.\.3; received \[4\]"):
        prune_heads(model, {"blocks.layers.0.self_attn": [4]})
    with pytest.raises(ConfigError, match="all 4 heads"):
        prune_heads(model, {"blocks.layers.0.self_attn": [0, 1, 2, 3]})
    with pytest.raises(ConfigError, match="no removable channel group"):
        structured_prune(create_model("rnn-tagger", vocab_size=20, embedding_dim=4,
                                      hidden_size=4), torch.randint(1, 20, (1, 5)),
                         channel_ratio=0.5)


def test_prune_to_widths_keeps_the_strongest_channels_and_refuses_bad_names():
    from bigmodel.compress.structured import prune_to_widths

    torch.manual_seed(0)
    model = create_model("seed-cnn").eval()
    with torch.no_grad():
        model.conv1.weight[12:] *= 1e-3  # the 20 weakest channels of conv1
    strong = model.conv1.weight[:12].detach().clone()
    x = torch.rand(2, 1, 28, 28)
    result = prune_to_widths(model, x[:1], {"conv1": 12, "fc": 32})
    assert result.structure["conv1"] == {"out": 12} and result.structure["conv2"]["in"] == 12
    assert result.structure["fc"] == {"out": 32} and result.structure["classifier"] == {"in": 32}
    torch.testing.assert_close(model.conv1.weight, strong)  # the strong channels are kept
    assert model(x).shape == (2, 10) and result.macs_after < result.macs_before
    with pytest.raises(ConfigError, match="'classifier' is not a prunable layer"):
        prune_to_widths(model, x[:1], {"classifier": 5})
    with pytest.raises(ConfigError, match=r"width of 'conv2' must be an int in \[1, 64\]"):
        prune_to_widths(model, x[:1], {"conv2": 65})


def test_channel_multiple_keeps_blocks_of_eight_channels():
    model = create_model("seed-cnn")
    result = structured_prune(model, torch.rand(1, 1, 28, 28), flops_ratio=0.5,
                              channel_multiple=8)
    assert result.macs_ratio <= 0.5
    for name in ("conv1", "conv2", "conv3", "fc"):
        assert result.structure[name]["out"] % 8 == 0, result.structure
    with pytest.raises(ConfigError, match="'channel_multiple' must be a positive int"):
        structured_prune(create_model("seed-cnn"), torch.rand(1, 1, 28, 28), flops_ratio=0.5,
                         channel_multiple=0)
