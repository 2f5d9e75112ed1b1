"""The one model-file reader/writer (``bigmodel.models.model_files``) and ``load_any``, which loads
every model directory bigmodel writes by the format its ``model.json`` names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.models import create_model, save_model
from bigmodel.models.model_files import (
    FileFormat,
    read_model_document,
    read_weights,
    write_model_files,
)

TOY = FileFormat("toy-format", 3, "a toy file", what="Toy file", weights_what="Toy weights",
                 noun="toy", json_name="toy.json", weights_name="toy.safetensors")


def test_round_trip_records_format_version_and_the_weights_sha256(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    path = write_model_files(tmp_path / "m", TOY, {"config": {"size": 3}}, tensors)
    assert path == tmp_path / "m" / "toy.json"
    raw = json.loads(path.read_text())
    weights = tmp_path / "m" / "toy.safetensors"
    assert raw["format"] == "toy-format" and raw["format_version"] == 3
    assert raw["weights"] == "toy.safetensors" and raw["config"] == {"size": 3}
    assert raw["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["toy.json", "toy.safetensors"]
    document, found = read_model_document(
        tmp_path / "m", [FileFormat("other", 1, "x", json_name="toy.json"), TOY])
    assert found is TOY and document == raw
    with pytest.raises(ConfigError, match="sharing one document name"):
        read_model_document(tmp_path / "m", [FileFormat("other", 1, "x"), TOY])
    seen = []
    loaded = read_weights(tmp_path / "m", document, TOY, check=lambda header: seen.append(
        {name: info.shape for name, info in header.tensors.items()}))
    assert seen == [{"w": (2, 3), "b": (2,)}]  # shapes handed over before the tensors are read
    for key, value in tensors.items():
        torch.testing.assert_close(loaded[key], value)
    arrays = read_weights(tmp_path / "m", document, TOY, numpy=True)
    np.testing.assert_array_equal(arrays["w"], np.arange(6.0, dtype=np.float32).reshape(2, 3))


def test_numpy_tensors_and_compact_json(tmp_path):
    compact = FileFormat("np-format", 1, "a numpy file", compact_json=True)
    arrays = {"q": np.arange(4, dtype=np.int8), "s": np.array(0.5, dtype=np.float16)}
    path = write_model_files(tmp_path, compact, {"graph": {"a": [1, 2]}}, arrays)
    assert "\n" not in path.read_text().strip() and " " not in path.read_text()
    document, _ = read_model_document(tmp_path, compact)
    loaded = read_weights(tmp_path, document, compact, numpy=True)
    assert loaded["q"].dtype == np.int8 and loaded["s"].shape == ()
    np.testing.assert_array_equal(loaded["q"], arrays["q"])


def test_writer_refuses_reserved_keys_and_non_json(tmp_path):
    with pytest.raises(ConfigError, match=r"must not set \['format', 'weights_sha256'\]"):
        write_model_files(tmp_path, TOY, {"format": "x", "weights_sha256": "y"}, {})
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        write_model_files(tmp_path / "bad", TOY, {"config": object()}, {"w": torch.zeros(1)})
    assert not (tmp_path / "bad" / "toy.json").exists()  # no half-written document


def test_reader_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match=r"No toy at .*toy.json \(expected toy.json \+ "
                                              r"toy.safetensors written by bigmodel\)"):
        read_model_document(tmp_path, TOY)
    write_model_files(tmp_path, TOY, {}, {"w": torch.zeros(2)})
    path = tmp_path / "toy.json"
    good = json.loads(path.read_text())
    cases = [({"format": "nope"}, r"toy.json is not a toy file \(expected \"format\": "
                                  r"\"toy-format\"; received 'nope'\)"),
             ({"format_version": 4}, "has format_version 4; this bigmodel reads up to 3"),
             ({"format_version": "2"}, "format_version must be an integer; received '2'")]
    for change, message in cases:
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(CheckpointError, match=message):
            read_model_document(tmp_path, TOY)
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="is not a toy file"):
        read_model_document(tmp_path, TOY)
    path.write_text(json.dumps(good))
    with pytest.raises(CheckpointError, match="Toy weights .* leaves the folder"):
        read_weights(tmp_path, {**good, "weights": "../toy.safetensors"}, TOY)
    with pytest.raises(CheckpointError, match="weights_sha256 must be a hex string"):
        read_weights(tmp_path, {**good, "weights_sha256": 5}, TOY)
    (tmp_path / "toy.safetensors").write_bytes((tmp_path / "toy.safetensors").read_bytes()[:-4]
                                               + b"\x00\x00\x80\x3f")
    with pytest.raises(CheckpointError, match=r"toy.safetensors does not match the checksum "
                                              r"recorded in .*toy.json \(modified or truncated\)"):
        read_weights(tmp_path, good, TOY)


def test_files_of_before_format_version_still_load(tmp_path):
    """Today's registry files and LoRA adapters of before ``format_version`` existed load."""
    from bigmodel.models import load_model
    from bigmodel.transfer.lora import add_lora, load_lora, save_lora

    torch.manual_seed(0)
    model = create_model("rnn-classifier", input_size=3, hidden_size=8, num_classes=2).eval()
    save_model(model, tmp_path / "model")
    spec = json.loads((tmp_path / "model" / "model.json").read_text())
    del spec["format_version"]
    (tmp_path / "model" / "model.json").write_text(json.dumps(spec))
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(load_model(tmp_path / "model")(x), model(x))

    adapted = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    add_lora(adapted, ["0"], rank=2)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a non-zero update, so loading it shows
    save_lora(adapted, tmp_path / "adapter")
    spec = json.loads((tmp_path / "adapter" / "adapter.json").read_text())
    assert spec["format"] == "bigmodel-lora" and spec["format_version"] == 1
    del spec["format_version"]
    (tmp_path / "adapter" / "adapter.json").write_text(json.dumps(spec))
    base = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    base.load_state_dict({k.replace(".base_layer", ""): v for k, v in adapted.state_dict().items()
                          if "lora_" not in k})
    load_lora(base, tmp_path / "adapter")
    x = torch.randn(3, 4)
    torch.testing.assert_close(base.eval()(x), adapted.eval()(x))


# -- load_any -----------------------------------------------------------------------------------


def _int8_dir(directory: Path) -> Path:
    """A hand-made one-node int8-format model (y = x + b), saved by Int8Model.save."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from bigmodel.compress.quantize import Int8Model

    bias = numpy_helper.from_array(np.arange(4, dtype=np.float32) + 0.25, "bias")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
                              [bias])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 9
    onnx.checker.check_model(proto)
    Int8Model(proto).save(directory)
    return directory


def test_load_any_dispatches_on_the_format(tmp_path):
    from bigmodel.compress import Int8Model, load_any, save_compressed, structured_prune

    torch.manual_seed(0)
    model = create_model("seed-cnn", num_classes=3).eval()
    x = torch.rand(2, 1, 28, 28)
    save_model(model, tmp_path / "plain")
    plain = load_any(tmp_path / "plain")
    assert isinstance(plain, nn.Module) and not plain.training
    torch.testing.assert_close(plain(x), model(x))

    result = structured_prune(model, x[:1], channel_ratio=0.5)
    assert result.structure  # layer sizes changed: a plain load would not fit
    save_compressed(model, tmp_path / "pruned", structure=result.structure)
    pruned = load_any(tmp_path / "pruned")
    assert sum(p.numel() for p in pruned.parameters()) == sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(pruned(x), model(x))

    int8 = load_any(_int8_dir(tmp_path / "int8"))
    assert isinstance(int8, Int8Model)
    torch.testing.assert_close(int8(torch.zeros(2, 4)), torch.tensor([[0.25, 1.25, 2.25, 3.25]] * 2))

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.json").write_text(json.dumps({"format": "bigmodel-lora"}))
    with pytest.raises(CheckpointError, match=r"expected \"format\": \"bigmodel-model\" or "
                                              r"\"bigmodel-onnx-int8\"; received 'bigmodel-lora'"):
        load_any(tmp_path / "other")
    with pytest.raises(CheckpointError, match="No model file at"):
        load_any(tmp_path / "missing")
