"""int8 quantization through ONNX Runtime: accuracy close to fp32 on a trained CNN, dynamic int8
for LSTM/Linear, safetensors + JSON round trip, unsupported layers listed, QAT, weight-only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bigmodel.compress import load_int8, quantize_int8  # noqa: E402
from bigmodel.compress.qat import prepare_qat, quantize_weight_only  # noqa: E402
from bigmodel.engine.trainer import Trainer  # noqa: E402
from bigmodel.errors import CheckpointError, ConfigError  # noqa: E402


def squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """12x12 images: class k has a bright 4x4 square in quadrant k, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.rand(n, 1, 12, 12, generator=gen) * 0.4
    for i, k in enumerate(y.tolist()):
        r, c = 6 * (k // 2) + 1, 6 * (k % 2) + 1
        x[i, 0, r: r + 4, c: c + 4] += 0.8
    return x, y


def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(),
                         nn.Linear(32, 4))


@pytest.fixture(scope="module")
def trained_cnn():
    x, y = squares(256, 0)
    torch.manual_seed(0)
    model = small_cnn()
    Trainer(model, loss="cross_entropy", optimizer="adam", lr=5e-3, verbose=0, seed=0).fit(
        (x, y), epochs=5, batch_size=32)
    return model.eval()


@pytest.fixture(scope="module")
def int8_cnn(trained_cnn):
    x, _ = squares(128, 2)
    return quantize_int8(trained_cnn, x[:1], calibration=x)


def test_static_int8_cnn_keeps_the_fp32_accuracy(trained_cnn, int8_cnn):
    x_test, y_test = squares(256, 1)
    with torch.no_grad():
        fp32 = trained_cnn(x_test)
    int8 = int8_cnn.predict(x_test, batch_size=100)
    fp32_acc = (fp32.argmax(1) == y_test).float().mean().item()
    int8_acc = (int8.argmax(1) == y_test).float().mean().item()
    assert fp32_acc > 0.9
    assert abs(int8_acc - fp32_acc) <= 0.02
    assert (int8.argmax(1) == fp32.argmax(1)).float().mean().item() >= 0.97
    assert 0 < (int8 - fp32).abs().max().item() < 0.1 * fp32.abs().max().item()
    ops = {node.op_type for node in int8_cnn.proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert int8_cnn.info["mode"] == "static"
    assert int8_cnn.info["layers"]["unsupported"] == []
    assert {"0 (Conv2d)", "3 (Conv2d)", "6 (Linear)", "8 (Linear)"} <= set(
        int8_cnn.info["layers"]["quantized"])


def test_int8_model_round_trips_through_safetensors_and_json(int8_cnn, tmp_path):
    from safetensors.numpy import load_file

    int8_cnn.save(tmp_path / "q", metadata={"data": "squares"})
    weights = tmp_path / "q" / "model.safetensors"
    tensors = load_file(str(weights))
    int8_weights = [t for t in tensors.values() if t.dtype == np.int8]
    assert sum(t.size for t in int8_weights) >= 8 * 9 + 16 * 8 * 9 + 144 * 32 + 32 * 4
    assert not any(t.dtype == np.float32 and t.size > 64 for t in tensors.values())
    spec = json.loads((tmp_path / "q" / "model.json").read_text())
    assert spec["format"] == "bigmodel-onnx-int8" and spec["metadata"] == {"data": "squares"}
    loaded = load_int8(tmp_path / "q")
    x, _ = squares(16, 3)
    np.testing.assert_array_equal(loaded(x).numpy(), int8_cnn(x).numpy())
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(CheckpointError, match="checksum"):
        load_int8(tmp_path / "q")
    with pytest.raises(CheckpointError):
        load_int8(tmp_path / "missing")


class LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


def test_dynamic_int8_for_lstm_and_linear_layers():
    torch.manual_seed(0)
    model = LSTMClassifier().eval()
    tokens = torch.randint(0, 50, (8, 12))
    int8 = quantize_int8(model, tokens[:1])
    assert int8.info["mode"] == "dynamic"
    assert {"lstm (LSTM)", "head (Linear)"} <= set(int8.info["layers"]["quantized"])
    assert int8.info["layers"]["unsupported"] == []
    ops = {node.op_type for node in int8.proto.graph.node}
    assert "DynamicQuantizeLSTM" in ops
    with torch.no_grad():
        expected = model(tokens)
    got = int8(tokens)
    assert got.shape == (8, 5)
    assert (got - expected).abs().max().item() < 0.05 * expected.abs().max().item() + 1e-3


def test_int8_file_is_at_least_three_and_a_half_times_smaller_for_a_dense_model(tmp_path):
    from bigmodel.compress.prune import dense_size_bytes

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).eval()
    int8 = quantize_int8(model, torch.randn(1, 64), mode="dynamic")
    int8.save(tmp_path / "mlp")
    size = sum(p.stat().st_size for p in (tmp_path / "mlp").iterdir())
    assert dense_size_bytes(model) / size >= 3.5
    x = torch.randn(4, 64)
    assert (int8(x) - model(x)).abs().max().item() < 0.05


def test_keras_model_quantizes_statically():
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(0)
    model = keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                              layers.Flatten(), layers.Dense(3)])
    x = torch.rand(64, 8, 8, 1)
    with torch.no_grad():
        expected = model(x)
    int8 = quantize_int8(model, x[:1], calibration=x)
    assert int8.info["mode"] == "static"
    assert (int8(x) - expected).abs().max().item() < 0.05 * expected.abs().max().item()


class Scaled(nn.Module):
    """A parameter used directly in forward: no int8 kernel knows it."""

    def __init__(self, recurrent: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.gru = nn.GRU(4, 4, batch_first=True) if recurrent else None
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = x * self.scale
        return self.head(self.gru(x)[0][:, -1] if self.gru is not None else x)


def test_unsupported_layers_are_listed_by_name():
    with pytest.raises(ConfigError) as info:
        quantize_int8(Scaled(recurrent=True), torch.rand(1, 3, 4))
    message = str(info.value)
    assert "gru (GRU)" in message and "keep_fp32=['gru']" in message
    int8 = quantize_int8(Scaled(recurrent=True), torch.rand(1, 3, 4), keep_fp32=["gru"])
    assert int8.info["layers"]["quantized"] == ["head (Linear)"]
    assert int8.info["layers"]["fp32"] == ["gru (GRU)"]
    # A parameter that only scales (no matrix product) is not a problem: nothing to list.
    int8 = quantize_int8(Scaled(), torch.rand(1, 4))
    assert int8.info["layers"]["unsupported"] == int8.info["layers"]["fp32"] == []


def test_bad_arguments_are_rejected(trained_cnn):
    x = torch.rand(1, 1, 12, 12)
    with pytest.raises(ConfigError, match="calibration"):
        quantize_int8(trained_cnn, x, mode="static")
    with pytest.raises(ConfigError, match="mode"):
        quantize_int8(trained_cnn, x, mode="int4")
    with pytest.raises(ConfigError, match="calibration_method"):
        quantize_int8(trained_cnn, x, calibration=x, calibration_method="entropyish")
    with pytest.raises(ConfigError, match="no weight that dynamic int8 quantizes"):
        quantize_int8(nn.Sequential(nn.ReLU()), x)


def test_quantization_aware_training_rounds_weights_to_the_int8_grid():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    handle = prepare_qat(model)
    weight = model[0].weight  # the parametrized (fake-quantized) view
    scale = weight.detach().abs().amax(dim=1, keepdim=True) / 127
    steps = weight.detach() / scale
    torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    handle.remove()
    assert sorted(model.state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    int8 = quantize_int8(model.eval(), x[:1], mode="dynamic")
    assert (int8(x) - model(x)).abs().max().item() < 0.1
    with pytest.raises(ConfigError):
        prepare_qat(nn.Sequential(nn.ReLU()))


def test_weight_only_quantization():
    pytest.importorskip("torchao")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 8))
    x = torch.randn(4, 128)
    expected = model(x)
    quantize_weight_only(model, bits=8)
    with torch.no_grad():
        assert (model(x) - expected).abs().max().item() < 0.02
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            quantize_weight_only(nn.Linear(128, 8), bits=4)
    with pytest.raises(ConfigError, match="bits"):
        quantize_weight_only(nn.Linear(128, 8), bits=3)
