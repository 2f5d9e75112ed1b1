"""Model registry: names, overrides, errors, and the JSON + safetensors model files."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bigmodel.errors import CheckpointError, ConfigError, UnknownNameError
from bigmodel.models import (
    create_model,
    example_input,
    list_models,
    load_model,
    model_name_and_config,
    read_model_spec,
    register_model,
    save_model,
)
from bigmodel.models import registry as registry_module


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test models without leaking them into other tests."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def test_list_models_and_pattern():
    assert "seed-cnn" in list_models()
    assert list_models("*cnn") == [n for n in list_models() if n.endswith("cnn")]
    assert list_models("no-such-*") == []


def test_unknown_name_lists_known_models():
    with pytest.raises(UnknownNameError, match=r"Unknown model 'resnet9000'.*seed-cnn") as info:
        create_model("resnet9000")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ConfigError)


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match=r"no argument 'dropout'.*dropout_rate"):
        create_model("seed-cnn", dropout=0.1)


def test_wrong_type_override_is_named():
    with pytest.raises(ConfigError, match=r"argument 'num_classes' expects int; received 'ten'"):
        create_model("seed-cnn", num_classes="ten")


def test_factory_rules(scratch_registry):
    @register_model("test-duplicate")
    def first(width: int = 2) -> nn.Module:
        return nn.Linear(width, 1)

    with pytest.raises(ConfigError, match="already registered"):
        @register_model("test-duplicate")
        def second(width: int = 2) -> nn.Module:
            return nn.Linear(width, 1)

    with pytest.raises(ConfigError, match="'width' needs a default"):
        @register_model("test-no-default")
        def third(width: int) -> nn.Module:
            return nn.Linear(width, 1)


def test_every_registered_model_builds_and_round_trips(tmp_path):
    for name in list_models():
        model = create_model(name)
        save_model(model, tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert type(loaded) is type(model)
        assert loaded.state_dict().keys() == model.state_dict().keys()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
        if hasattr(model, "num_classes"):  # the classifier surface every classifier offers
            for method in ("forward_features", "forward_head", "reset_classifier"):
                assert callable(getattr(model, method)), (name, method)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_on_its_example_input(name):
    batch = example_input(name, batch_size=3)
    if batch is None:
        pytest.skip(f"{name} registers no example_input")
    torch.manual_seed(0)
    model = create_model(name).train()
    outputs = model(batch)
    assert torch.isfinite(outputs).all() and outputs.shape[0] == 3
    if hasattr(model, "num_classes"):
        assert outputs.shape[-1] == model.num_classes
    outputs.float().square().mean().backward()
    for key, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), key


def test_save_load_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed-cnn", dropout_rate=0.2, num_classes=7)
    model.reset_classifier(3)  # the saved config must follow the live model
    path = save_model(model, tmp_path, metadata={"class_names": ["a", "b", "c"]})
    spec = json.loads(path.read_text())
    assert spec["name"] == "seed-cnn"
    assert spec["config"]["num_classes"] == 3 and spec["config"]["dropout_rate"] == 0.2
    assert read_model_spec(tmp_path)["metadata"]["class_names"] == ["a", "b", "c"]
    loaded = load_model(tmp_path)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert not loaded.training


def test_channels_last_weights_save(tmp_path):
    model = create_model("seed-cnn").to(memory_format=torch.channels_last)
    save_model(model, tmp_path)
    torch.testing.assert_close(load_model(tmp_path).conv2.weight, model.conv2.weight)


def test_tied_weights_round_trip(tmp_path, scratch_registry):
    class Tied(nn.Module):
        def __init__(self, size: int):
            super().__init__()
            self.encode = nn.Linear(size, size, bias=False)
            self.decode = nn.Linear(size, size, bias=False)
            self.decode.weight = self.encode.weight

    @register_model("test-tied")
    def tied(size: int = 3) -> nn.Module:
        return Tied(size)

    model = create_model("test-tied", size=4)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    torch.testing.assert_close(loaded.decode.weight, model.encode.weight)
    assert read_model_spec(tmp_path)["aliases"] == {"encode.weight": "decode.weight"}


def test_model_not_from_registry_cannot_be_saved(tmp_path):
    with pytest.raises(ConfigError, match="not built by create_model"):
        model_name_and_config(nn.Linear(2, 2))


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No model file"):
        load_model(tmp_path / "missing")
    save_model(create_model("seed-cnn"), tmp_path)
    weights = tmp_path / "model.safetensors"

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(tmp_path)

    torch.save({"x": torch.zeros(1)}, weights)  # a pickle-based file under the expected name
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(tmp_path)

    save_model(create_model("seed-cnn"), tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    spec["config"]["num_classes"] = 5  # weights no longer fit the described model
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"shape mismatch .*classifier.weight: file \(10, 64\) vs model \(5, 64\)"):
        load_model(tmp_path)

    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path)
