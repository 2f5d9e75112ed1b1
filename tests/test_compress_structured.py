"""Structured pruning: channel groups found by probing, exact removal of zero channels (plain CNN,
Keras-surface CNN, LSTM stack, batch norm, residual coupling), FLOPs targets, save/load."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.compress import count_macs, load_any, save_compressed, structured_prune
from bigmodel.compress.structured import find_channel_groups
from bigmodel.errors import ConfigError
from bigmodel.models import create_model


def zero_channels(producer: nn.Module, channels: list[int], weight: str = "weight") -> None:
    with torch.no_grad():
        getattr(producer, weight)[channels] = 0
        if getattr(producer, "bias", None) is not None:
            producer.bias[channels] = 0


def test_seed_cnn_groups_and_the_flatten_footprint_in_keras_order():
    model = create_model("seed-cnn").eval()
    groups = find_channel_groups(model, torch.rand(1, 1, 28, 28))
    by_member = {g.members[0]: g for g in groups}
    assert all(len(g.members) == 1 for g in groups)  # no coupling in a plain chain
    # conv3 channel c lands at Keras (H, W, C) flatten positions (h * 3 + w) * 64 + c of fc.
    for channel in (0, 5, 63):
        footprint = by_member[("conv3", channel)].footprint
        assert footprint == {"fc": {(h * 3 + w) * 64 + channel for h in range(3) for w in range(3)}}
    assert by_member[("conv1", 7)].footprint == {"conv2": {7}}
    assert by_member[("classifier", 0)].blocked == "reaches the model output"
    assert by_member[("fc", 3)].blocked is None


def test_count_macs_matches_the_hand_count_of_the_seed_cnn():
    model = create_model("seed-cnn")
    expected = (26 * 26 * 32 * 9 + 11 * 11 * 64 * 32 * 9 + 3 * 3 * 64 * 64 * 9 + 576 * 64 + 64 * 10)
    assert count_macs(model, torch.rand(1, 1, 28, 28)) == expected


def test_removing_zeroed_channels_keeps_the_seed_cnn_outputs():
    torch.manual_seed(0)
    model = create_model("seed-cnn").eval()
    zero_channels(model.conv1, list(range(0, 32, 2)))  # half of conv1
    zero_channels(model.conv2, list(range(0, 64, 2)))
    zero_channels(model.conv3, list(range(1, 64, 2)))
    zero_channels(model.fc, list(range(0, 64, 2)))
    x = torch.rand(5, 1, 28, 28)
    expected = model(x)
    pruned = copy.deepcopy(model)
    result = structured_prune(pruned, x[:1], channel_ratio=0.5)
    assert result.structure["conv1"] == {"out": 16}
    assert result.structure["conv2"] == {"out": 32, "in": 16}
    assert result.structure["fc"] == {"out": 32, "in": 32 * 9}
    assert result.structure["classifier"] == {"in": 32}
    torch.testing.assert_close(pruned(x), expected, atol=1e-5, rtol=1e-5)
    assert result.params_after < result.params_before / 2.5
    assert result.blocked == {"classifier": "reaches the model output"}


def test_keras_channels_last_cnn_prunes_exactly():
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(0)
    model = keras.Sequential([
        layers.Conv2D(8, 3, activation="relu", input_shape=(12, 12, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(8, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(16, activation="relu"),
        layers.Dense(4),
    ])
    x = torch.rand(3, 12, 12, 1)
    model(x)
    first, second, dense = model.layers[0], model.layers[2], model.layers[4]
    zero_channels(first, [1, 4, 6], "kernel")
    zero_channels(second, [0, 3], "kernel")
    zero_channels(dense, [2, 5, 7, 9], "kernel")
    expected = model(x)
    result = structured_prune(model, x[:1], channel_ratio=0.25)
    assert (first.filters, second.filters, dense.units) == (6, 6, 12)
    assert first.kernel.shape == (6, 1, 3, 3) and second.kernel.shape == (6, 6, 3, 3)
    assert dense.kernel.shape == (12, 6 * 9)  # 3x3 map, 6 channels, flattened channels-last
    assert sorted(v.get("in", 0) for v in result.structure.values())[-1] == 54
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


class LSTMClassifier(nn.Module):
    def __init__(self, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 12, num_layers=layers, batch_first=True)
        self.hidden = nn.Linear(12, 10)
        self.head = nn.Linear(10, 3)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(F.relu(self.hidden(out[:, -1])))


def test_lstm_hidden_units_are_removed_exactly_when_their_weights_are_zero():
    torch.manual_seed(0)
    model = LSTMClassifier(layers=1).eval()
    dead = [0, 3, 7, 8]
    with torch.no_grad():  # a dead unit: all gate rows zero -> c = 0, h = o * tanh(0) = 0
        for gate in range(4):
            for unit in dead:
                model.lstm.weight_ih_l0[gate * 12 + unit] = 0
                model.lstm.weight_hh_l0[gate * 12 + unit] = 0
                model.lstm.bias_ih_l0[gate * 12 + unit] = 0
                model.lstm.bias_hh_l0[gate * 12 + unit] = 0
    zero_channels(model.hidden, [1, 4, 6])  # the ratio applies to every family: 3 of 10 here
    tokens = torch.randint(0, 20, (4, 7))
    expected = model(tokens)
    result = structured_prune(model, tokens[:1], channel_ratio=4 / 12)
    assert model.lstm.hidden_size == 8 and model.hidden.in_features == 8
    assert model.hidden.out_features == 7 and model.head.in_features == 7
    assert result.structure["lstm"] == {"out": 8}
    torch.testing.assert_close(model(tokens), expected, atol=1e-5, rtol=1e-5)


def test_two_layer_lstm_and_gradients_after_pruning():
    torch.manual_seed(0)
    model = LSTMClassifier(layers=2)
    tokens = torch.randint(0, 20, (4, 7))
    structured_prune(model, tokens[:1], channel_ratio=0.5)
    assert model.lstm.weight_hh_l1.shape == (4 * 6, 6) and model.lstm.weight_ih_l1.shape == (24, 6)
    model.train()
    model(tokens).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


class ResidualNet(nn.Module):
    """conv_a and conv_b are added: their channels are coupled; batch norm follows conv_a."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv_a = nn.Conv2d(6, 8, 3, padding=1)
        self.conv_b = nn.Conv2d(6, 8, 1)
        self.conv_c = nn.Conv2d(8, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = F.relu(self.conv_a(x) + self.conv_b(x))
        return self.head(self.conv_c(x).mean(dim=(2, 3)))


def test_residual_channels_are_coupled_and_batch_norm_is_sliced():
    torch.manual_seed(0)
    model = ResidualNet().eval()
    groups = find_channel_groups(model, torch.rand(1, 1, 8, 8))
    coupled = [g for g in groups if g.family == ("conv_a", "conv_b")]
    assert len(coupled) == 8 and all(len(g.members) == 2 for g in coupled)
    assert {m for g in coupled for m in g.members} >= {("conv_a", 3), ("conv_b", 3)}
    stem_group = next(g for g in groups if g.members == [("stem", 2)])
    assert stem_group.footprint == {"bn": {2}, "conv_a": {2}, "conv_b": {2}}
    zero_channels(model.stem, [1, 4])
    with torch.no_grad():  # bn(0) = beta - mean * gamma / std: make it 0 for exactness
        model.bn.bias[[1, 4]] = 0
        model.bn.running_mean[[1, 4]] = 0
    zero_channels(model.conv_c, [2])  # 0.25 of conv_c's 4 channels: one goes
    zero_channels(model.conv_a, [0, 5])
    zero_channels(model.conv_b, [0, 5])
    x = torch.rand(3, 1, 8, 8)
    expected = model(x)
    structured_prune(model, x[:1], channel_ratio=0.25)
    # 0.25 of 6 stem channels rounds down to 1 (a zeroed one: lowest norm), 2 of the 8 pairs.
    assert model.stem.out_channels == model.bn.num_features == model.conv_a.in_channels == 5
    assert model.conv_a.out_channels == model.conv_b.out_channels == model.conv_c.in_channels == 6
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_flops_target_halves_the_multiply_adds():
    torch.manual_seed(0)
    model = create_model("seed-cnn")
    x = torch.rand(1, 1, 28, 28)
    result = structured_prune(model, x, flops_ratio=0.5)
    assert result.macs_after <= 0.5 * result.macs_before
    assert result.macs_after >= 0.4 * result.macs_before
    assert count_macs(model, x) == result.macs_after
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_layer_norm_blocks_every_group_with_a_clear_error():
    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 8)
            self.norm = nn.LayerNorm(8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(self.norm(self.proj(x)))

    with pytest.raises(ConfigError, match="norm"):
        structured_prune(Mixer(), torch.rand(1, 4), channel_ratio=0.5)


@pytest.mark.parametrize("kwargs", [{}, {"flops_ratio": 0.5, "channel_ratio": 0.5},
                                    {"flops_ratio": 1.0}, {"flops_ratio": 0.0},
                                    {"channel_ratio": 1.0}, {"channel_ratio": -0.2}])
def test_bad_ratios_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        structured_prune(create_model("seed-cnn"), torch.rand(1, 1, 28, 28), **kwargs)


def test_pruned_model_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed-cnn").eval()
    result = structured_prune(model, torch.rand(1, 1, 28, 28), flops_ratio=0.5)
    save_compressed(model, tmp_path / "pruned", result.structure)
    assert (tmp_path / "pruned" / "model.safetensors").read_bytes()[:2] != b"\x80\x04"
    loaded = load_any(tmp_path / "pruned")
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert sum(p.numel() for p in loaded.parameters()) == result.params_after
