"""Small int8 files and fused attention: int8 storage of leftover float weights (against a NumPy
reference), ONNX Runtime's fused QAttention for exported self-attention, a trained tiny ViT's int8
accuracy and file size, the compact attribute encoding, and files of format version 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from bigmodel.compress import load_int8, quantize_int8  # noqa: E402
from bigmodel.compress.attention_fusion import fuse_self_attention  # noqa: E402
from bigmodel.compress.int8_graph import (  # noqa: E402
    decode_attribute,
    encode_attribute,
    store_weights_int8,
)
from bigmodel.compress.prune import dense_size_bytes  # noqa: E402
from bigmodel.engine.trainer import Trainer  # noqa: E402
from bigmodel.errors import CheckpointError, ConfigError  # noqa: E402
from bigmodel.export.onnx import export_onnx, onnx_session, run_session  # noqa: E402
from bigmodel.models import create_model  # noqa: E402


def reference_int8(values: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel int8 round trip, written out from the equations."""
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    scale = np.abs(moved).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(moved / scale[:, None]), -127, 127)
    restored = (q * scale[:, None]).reshape(np.moveaxis(values, axis, 0).shape)
    return np.moveaxis(restored, 0, axis)


def test_leftover_float_weights_are_stored_int8_per_channel():
    rng = np.random.default_rng(0)
    conv_w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    conv_w[2] = 0.0  # an all-zero channel keeps scale 1 and dequantizes to zeros
    table = (rng.normal(size=(1, 20, 16)) * np.linspace(0.01, 3, 16)).astype(np.float32)
    small = rng.normal(size=(8,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("Add", ["t", "table"], ["y"]),
         helper.make_node("Add", ["c2", "small"], ["z"])],
        "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
              for n in ("x", "t", "c2")],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("c", "y", "z")],
        [numpy_helper.from_array(conv_w, "w"), numpy_helper.from_array(table, "table"),
         numpy_helper.from_array(small, "small")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert sorted(store_weights_int8(proto, min_elements=64)) == ["table", "w"]
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert inits["w_q8"].dtype == np.int8 and inits["w_s8"].shape == (6,)  # output channels
    assert inits["table_s8"].shape == (16,)  # last axis: one scale per feature
    assert "small" in inits and inits["small"].dtype == np.float32  # below the threshold
    session = onnx_session(proto.SerializeToString(), threads=1)
    x = rng.normal(size=(1, 2, 5, 5)).astype(np.float32)
    t = np.zeros((1, 20, 16), np.float32)
    c, y, _ = session.run(None, {"x": x, "t": t, "c2": np.zeros(8, np.float32)})
    np.testing.assert_allclose(y, reference_int8(table, 2), rtol=0, atol=1e-6)
    expected_c = F.conv2d(torch.from_numpy(x), torch.from_numpy(reference_int8(conv_w, 0)))
    np.testing.assert_allclose(c, expected_c.numpy(), rtol=1e-5, atol=1e-5)
    error = np.abs(reference_int8(table, 2) - table).max(axis=(0, 1))
    assert np.all(error <= np.abs(table).max(axis=(0, 1)) / 254 + 1e-7)  # half a step


class SelfAttention(nn.Module):
    """One packed-projection self-attention block over (B, S, d); causal or not."""

    def __init__(self, d: int = 16, heads: int = 2, causal: bool = False) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.in_proj, self.out_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.in_proj(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, d))


def test_exported_self_attention_fuses_exactly_and_quantizes_to_qattention(tmp_path):
    torch.manual_seed(0)
    model = SelfAttention().eval()
    x = torch.randn(3, 7, 16)
    export_onnx(model, tmp_path / "a.onnx", x[:1], opset=23, check=False)
    proto = onnx.load(str(tmp_path / "a.onnx"))
    assert fuse_self_attention(proto) == 1
    ops = [n.op_type for n in proto.graph.node]
    assert "Split" not in ops and "Transpose" not in ops
    fused = onnx_session(proto.SerializeToString(), threads=1)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(run_session(fused, x)[0], expected, atol=1e-5, rtol=0)
    int8 = quantize_int8(model, x[:1], mode="dynamic")
    assert int8.info["fused_attention"] == 1
    assert "QAttention" in {n.op_type for n in int8.proto.graph.node}
    assert "in_proj (Linear)" in int8.info["layers"]["quantized"]
    got = int8(x).numpy()
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_causal_attention_is_left_unfused_and_still_quantizes():
    torch.manual_seed(0)
    model = SelfAttention(causal=True).eval()
    x = torch.randn(2, 5, 16)
    int8 = quantize_int8(model, x[:1], mode="dynamic")
    assert int8.info["fused_attention"] == 0
    assert "QAttention" not in {n.op_type for n in int8.proto.graph.node}
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(int8(x).numpy() - expected).max() < 0.05 * np.abs(expected).max()


def stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 images: class k has a bright horizontal band in row pair k, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.rand(n, 1, 8, 8, generator=gen) * 0.5
    for i, k in enumerate(y.tolist()):
        x[i, 0, 2 * k: 2 * k + 2] += 0.8
    return x, y


@pytest.fixture(scope="module")
def trained_vit():
    torch.manual_seed(0)
    model = create_model("vit", image_size=8, patch_size=2, num_classes=4, d_model=64,
                         num_heads=4, num_layers=2, dff=128, dropout=0.0)
    x, y = stripes(384, 0)
    Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-3, verbose=0, seed=0).fit(
        (x, y), epochs=8, batch_size=32)
    return model.eval()


def test_trained_vit_int8_keeps_accuracy_and_is_small(trained_vit, tmp_path):
    x, y = stripes(256, 1)
    with torch.no_grad():
        fp32 = trained_vit(x)
    int8 = quantize_int8(trained_vit, x[:1], mode="dynamic", keep_fp32=["patch_embedding"])
    assert int8.info["fused_attention"] == 2
    assert int8.info["layers"]["unsupported"] == []
    assert int8.info["layers"]["int8_storage"] == ["position (ViT)", "patch_embedding (Conv2d)"]
    got = int8.predict(x, batch_size=100)
    fp32_acc = (fp32.argmax(1) == y).float().mean().item()
    int8_acc = (got.argmax(1) == y).float().mean().item()
    assert fp32_acc > 0.9
    assert abs(int8_acc - fp32_acc) <= 0.01
    assert (got - fp32).abs().max().item() < 0.05 * fp32.abs().max().item()
    int8.save(tmp_path / "q")
    size = sum(p.stat().st_size for p in (tmp_path / "q").iterdir())
    # Everything needed to load and run it. 3.3x at this toy size (2 layers; biases and norms
    # are a larger share); the 4-layer Fashion-MNIST ViT reaches 3.7x (BENCHMARKS.md).
    assert dense_size_bytes(trained_vit) / size >= 3.3
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "q" / "model.safetensors"))
    assert max((a.size for a in tensors.values() if a.dtype == np.float32), default=0) < 256
    assert any(a.dtype == np.float16 for a in tensors.values())
    loaded = load_int8(tmp_path / "q")  # float16 tensors back to the exact float32 values
    np.testing.assert_array_equal(loaded.predict(x, batch_size=100).numpy(), got.numpy())
    # Without int8 storage the position table and patch convolution stay fp32: a larger file.
    plain = quantize_int8(trained_vit, x[:1], mode="dynamic", keep_fp32=["patch_embedding"],
                          weight_storage="fp32")
    plain.save(tmp_path / "plain")
    assert (tmp_path / "plain" / "model.safetensors").stat().st_size > \
        (tmp_path / "q" / "model.safetensors").stat().st_size + 3 * 17 * 64
    with pytest.raises(ConfigError, match="weight_storage"):
        quantize_int8(trained_vit, x[:1], weight_storage="int4")


def test_attributes_round_trip_and_version_1_files_still_load(trained_vit, tmp_path):
    from google.protobuf import json_format

    attributes = [helper.make_attribute("i", 3), helper.make_attribute("f", 0.25),
                  helper.make_attribute("s", b"NOTSET"), helper.make_attribute("ints", [1, -2]),
                  helper.make_attribute("floats", [0.5, 2.0]),
                  helper.make_attribute("strings", [b"a", b"bc"]),
                  helper.make_attribute("empty", [], attr_type=onnx.AttributeProto.INTS),
                  helper.make_attribute("t", numpy_helper.from_array(np.arange(3, dtype=np.int64)))]
    for attribute in attributes:
        encoded = json.loads(json.dumps(encode_attribute(attribute)))
        restored = onnx.AttributeProto()
        decode_attribute(encoded, restored)
        assert restored == attribute, attribute.name
    with pytest.raises(ValueError, match="kind"):
        decode_attribute(["x", "weird", 1], onnx.AttributeProto())
    x, _ = stripes(4, 2)
    int8 = quantize_int8(trained_vit, x[:1])  # auto: a Transformer gets dynamic int8 + QAttention
    assert int8.info["mode"] == "dynamic" and int8.info["fused_attention"] == 2
    assert int8.info["layers"]["fp32"] == ["patch_embedding (Conv2d)"]
    int8.save(tmp_path / "v2")
    spec = json.loads((tmp_path / "v2" / "model.json").read_text())
    assert spec["format_version"] == 2
    assert spec["float16_to_float32"]  # biases and norms, exactly representable in float16
    bad = dict(spec, float16_to_float32=spec["float16_to_float32"] + ["no_such_tensor"])
    (tmp_path / "v2" / "model.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="no_such_tensor"):
        load_int8(tmp_path / "v2")
    for node in spec["nodes"]:  # rewrite as a version-1 file: attributes as protobuf JSON dicts
        restored = []
        for encoded in node[3]:
            attribute = onnx.AttributeProto()
            decode_attribute(encoded, attribute)
            restored.append(json_format.MessageToDict(attribute))
        node[3] = restored
    spec["format_version"] = 1
    (tmp_path / "v2" / "model.json").write_text(json.dumps(spec))
    np.testing.assert_array_equal(load_int8(tmp_path / "v2")(x).numpy(), int8(x).numpy())


def test_vectors_are_rounded_to_float16_and_never_stored_per_element():
    from bigmodel.compress.int8_graph import fp16_exact, round_vectors_fp16

    rng = np.random.default_rng(1)
    bias = rng.normal(size=(1, 300)).astype(np.float32)  # an LSTM-style (1, n) bias
    matrix = rng.normal(size=(20, 30)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "bias"], ["y"]), helper.make_node("Add", ["b", "m"], ["z"])],
        "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in "ab"],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in "yz"],
        [numpy_helper.from_array(bias, "bias"), numpy_helper.from_array(matrix, "m")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert round_vectors_fp16(proto) == 1  # before quantizing, as quantize_int8 does
    assert store_weights_int8(proto) == ["m"]  # the (1, 300) vector is not a matrix
    rounded = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == "bias"))
    np.testing.assert_array_equal(rounded, bias.astype(np.float16).astype(np.float32))
    assert np.abs(rounded - bias).max() <= np.abs(bias).max() * 2.0 ** -11
    assert fp16_exact(rounded) and not fp16_exact(bias)
    assert not fp16_exact(rounded[:, :8])  # too small to bother


class ResidualNorm(nn.Module):
    """``LayerNorm(x + Linear(x))``: the Add + LayerNormalization pair ONNX Runtime would fuse."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.norm = nn.Linear(16, 16), nn.LayerNorm(16)
        with torch.no_grad():  # a norm that is not the identity, so a wrong fusion would show
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.norm(x + self.linear(x))


def test_skip_layer_norm_fusion_stays_off_in_saved_graphs_and_sessions(tmp_path, monkeypatch):
    # ORT's SkipLayerNormalization CPU kernel was 4.4x slower than Add + LayerNormalization
    # (export.onnx.DISABLED_FUSIONS); neither the stored int8 graph nor a session may use it.
    torch.manual_seed(0)
    model = ResidualNorm().eval()
    x = torch.randn(4, 5, 16)
    int8 = quantize_int8(model, x[:1], mode="dynamic")
    ops = {n.op_type for n in int8.proto.graph.node}
    assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(int8(x).numpy() - expected).max() < 0.05 * np.abs(expected).max()
    export_onnx(model, tmp_path / "r.onnx", x[:1])
    import onnxruntime as ort

    session = onnx_session(str(tmp_path / "r.onnx"), threads=1)
    np.testing.assert_allclose(run_session(session, x)[0], expected, atol=1e-5, rtol=0)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "session.onnx")
    ort.InferenceSession(str(tmp_path / "r.onnx"), options, providers=["CPUExecutionProvider"])
    fused_by_default = {n.op_type for n in onnx.load(str(tmp_path / "session.onnx")).graph.node}
    assert "SkipLayerNormalization" in fused_by_default  # so the check above is not vacuous
    seen = []  # and every session bigmodel opens asks ONNX Runtime to leave the fusion off
    real = ort.InferenceSession

    def recording(*args, **kwargs):
        seen.append(kwargs.get("disabled_optimizers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    onnx_session(str(tmp_path / "r.onnx"), threads=1)
    assert seen and "SkipLayerNormFusion" in seen[0]
