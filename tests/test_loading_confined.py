"""Loading is confined and bounded: crafted files of every kind give a BigModelError naming the file.

Each loader (registry model dirs, checkpoints, LoRA adapters, int8 and pruned models, recipes,
vocabularies) is fed files a user or attacker could plant: names that leave the folder (``..``,
absolute paths, symlinks out), truncated files, wrong JSON types, declared shapes far larger than
the weights file, ONNX external data, YAML alias bombs and 100,000-deep JSON. The memory bound is
measured in a child process (peak RSS), the YAML bomb's with tracemalloc; no wall-clock asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
import torch
from torch import nn

from bigmodel.engine import checkpoint
from bigmodel.errors import BigModelError, CheckpointError, ConfigError, DataFileError
from bigmodel.models.registry import create_model, load_model, save_model
from bigmodel.utils.loading import (
    confined_path,
    loads_json,
    parse_yaml,
    read_json,
    read_safetensors_header,
    read_yaml,
)

# 9 levels of 9 aliases: 9**9 ≈ 387 million strings once expanded, from ~340 bytes.
ALIAS_BOMB = "".join(
    [f"a: &a [{','.join(['lol'] * 9)}]\n"]
    + [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")])
DEEP_JSON = "[" * 100_000 + "]" * 100_000


def small_model_dir(root: Path, name: str = "m", **config) -> Path:
    torch.manual_seed(0)
    config = {"input_size": 3, "hidden_size": 8, "num_classes": 2, **config}
    save_model(create_model("rnn-classifier", **config), root / name)
    return root / name


def edit_json(path: Path, **changes) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


# --- confined_path ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a\\..\\x", "C:\\x", "C:x",
                                  "\\\\server\\share", "", None, 5, ["x"], "a\x00b"])
def test_confined_path_refuses_names_that_leave_the_folder(tmp_path, name):
    (tmp_path / "x").write_text("x")
    with pytest.raises(CheckpointError, match="weights"):
        confined_path(tmp_path, name, "weights")


def test_confined_path_refuses_symlinks_out_and_accepts_symlinks_inside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_text("secret")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "real.bin").write_text("ok")
    (folder / "link-out.bin").symlink_to(outside / "secret.bin")
    (folder / "dir-out").symlink_to(outside, target_is_directory=True)
    (folder / "link-in.bin").symlink_to(folder / "sub" / "real.bin")
    for name in ("link-out.bin", "dir-out/secret.bin"):
        with pytest.raises(CheckpointError, match="outside"):
            confined_path(folder, name, "file")
    with pytest.raises(CheckpointError, match="outside"):
        confined_path(folder, "dir-out", "dir", kind="dir")
    assert confined_path(folder, "link-in.bin", "file").read_text() == "ok"
    assert confined_path(folder, "sub/real.bin", "file") == folder / "sub" / "real.bin"
    with pytest.raises(CheckpointError, match="missing"):
        confined_path(folder, "absent.bin", "file")
    assert confined_path(folder, "absent.bin", "file", kind=None) == folder / "absent.bin"


# --- bounded JSON / YAML ------------------------------------------------------------------------

def test_read_json_bounds(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(DEEP_JSON)
    with pytest.raises(CheckpointError, match="doc.json is nested too deeply"):
        read_json(path, "Model file")
    path.write_text("[" * 101 + "]" * 101)  # parses, but deeper than the bound
    with pytest.raises(CheckpointError, match="nested 101 levels deep"):
        read_json(path, "Model file")
    assert read_json(path, "Model file", max_depth=101) is not None
    path.write_text('{"a": [1, 2')
    with pytest.raises(CheckpointError, match="doc.json is not valid JSON"):
        read_json(path, "Model file")
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(CheckpointError, match="not UTF-8"):
        read_json(path, "Model file")
    path.write_bytes(b"\x80\x04\x95" + b"x" * 20)
    with pytest.raises(CheckpointError, match="Refusing to unpickle"):
        read_json(path, "Model file")
    path.write_text(json.dumps({"a": "x" * 2000}))
    with pytest.raises(CheckpointError, match="at most 1000 are read"):
        read_json(path, "Model file", max_bytes=1000)
    with pytest.raises(DataFileError, match="does not exist"):
        read_json(tmp_path / "absent.json", "Vocabulary", error=DataFileError)
    assert loads_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}


def test_yaml_alias_bomb_fails_fast_with_little_memory():
    assert len(ALIAS_BOMB) < 400
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="bomb.yaml: the YAML expands to more than"):
            parse_yaml(ALIAS_BOMB, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak


@pytest.mark.parametrize("text, message", [
    ("a: &a [*a]", "recursive alias"),
    ("[" * 100_000 + "]" * 100_000, "more than 100 levels deep"),
    ("a: [1\n", "invalid YAML"),
    ("a: 1\n---\nb: 2\n", "invalid YAML"),
    ("a: " + "x" * 2_000_000, "at most"),
])
def test_parse_yaml_refuses(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_yaml(text, "recipe.yaml")


def test_parse_yaml_keeps_ordinary_aliases_and_quoted_brackets():
    text = 'base: &b {lr: 0.1, tags: ["[[[[", "x"]}\nrun: *b\nn: 3\n'
    assert parse_yaml(text) == {"base": {"lr": 0.1, "tags": ["[[[[", "x"]},
                                "run": {"lr": 0.1, "tags": ["[[[[", "x"]}, "n": 3}


def test_read_yaml_refuses_a_large_file_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" * 300_000)
    with pytest.raises(ConfigError, match="big.yaml is .* bytes; at most"):
        read_yaml(path, "Recipe")


def test_recipe_with_an_alias_bomb_in_model_overrides_is_a_config_error(tmp_path):
    from bigmodel.recipes.schema import load_recipe

    path = tmp_path / "recipe.yaml"
    bomb = textwrap.indent(ALIAS_BOMB, "    ")
    path.write_text(f"model:\n  name: seed-cnn\n  overrides:\n{bomb}")
    with pytest.raises(ConfigError, match="recipe.yaml: the YAML expands"):
        load_recipe(path)
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  name: seed-cnn\n")
    with pytest.raises(ConfigError, match="--set model.overrides: the YAML expands to more than"):
        load_recipe(good, ["model.overrides=" + _flow_bomb()])


def _flow_bomb() -> str:
    """The alias bomb as one flow mapping, as a ``--set`` value would carry it."""
    parts = [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    parts += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "{" + ", ".join(parts) + "}"


# --- registry model directories -----------------------------------------------------------------

@pytest.mark.parametrize("weights", ["../other/model.safetensors", "/tmp/model.safetensors",
                                     "sub/../../other/model.safetensors", 7, ["model.safetensors"]])
def test_model_json_weights_outside_the_folder_are_refused(tmp_path, weights):
    directory = small_model_dir(tmp_path)
    other = small_model_dir(tmp_path, "other")
    assert (other / "model.safetensors").is_file()
    edit_json(directory / "model.json", weights=weights)
    with pytest.raises(CheckpointError, match="Model weights"):
        load_model(directory)


def test_symlinked_model_files_out_of_the_folder_are_refused(tmp_path):
    directory = small_model_dir(tmp_path)
    other = small_model_dir(tmp_path, "other")
    # Same bytes, so the recorded checksum matches: only confinement can refuse it.
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors").symlink_to(other / "model.safetensors")
    with pytest.raises(CheckpointError, match="outside"):
        load_model(directory)
    (directory / "model.safetensors").unlink()
    shutil.copy(other / "model.safetensors", directory / "model.safetensors")
    assert isinstance(load_model(directory), nn.Module)
    (directory / "model.json").unlink()
    (directory / "model.json").symlink_to(other / "model.json")
    with pytest.raises(CheckpointError, match="outside"):
        load_model(directory)


def test_model_json_declaring_huge_shapes_is_refused_before_building(tmp_path):
    directory = small_model_dir(tmp_path)
    spec = json.loads((directory / "model.json").read_text())
    edit_json(directory / "model.json", config={**spec["config"], "num_classes": 6_000_000})
    with pytest.raises(CheckpointError, match=r"model.safetensors does not fit model "
                                              r"'rnn-classifier'.*shape mismatch classifier.bias: "
                                              r"file \(2,\) vs model \(6000000,\)"):
        load_model(directory)


@pytest.mark.parametrize("changes, error, message", [
    ({"config": []}, CheckpointError, "lacks a model 'name'"),
    ({"name": 5}, CheckpointError, "lacks a model 'name'"),
    ({"format_version": "x"}, CheckpointError, "format_version must be an integer"),
    ({"config": {"num_classes": "x"}}, ConfigError, "num_classes"),
    ({"config": {"num_classes": -3}}, BigModelError, "num_classes|cannot be built"),
    ({"config": {"no_such_argument": 1}}, ConfigError, "no_such_argument"),
    ({"aliases": ["x"]}, CheckpointError, "aliases"),
    ({"name": "resnet9000"}, ConfigError, "resnet9000"),
])
def test_model_json_with_wrong_types_is_a_clear_error(tmp_path, changes, error, message):
    directory = small_model_dir(tmp_path)
    edit_json(directory / "model.json", **changes)
    with pytest.raises(error, match=message):
        load_model(directory)


@pytest.mark.parametrize("content", [DEEP_JSON, '{"format": "bigmodel-model", "name": "rnn-',
                                     "\x80\x05junk", "[]"])
def test_truncated_deep_or_foreign_model_json_is_a_checkpoint_error(tmp_path, content):
    directory = small_model_dir(tmp_path)
    (directory / "model.json").write_text(content, encoding="latin-1")
    with pytest.raises(CheckpointError, match="model.json"):
        load_model(directory)


def test_truncated_weights_are_a_checkpoint_error(tmp_path):
    directory = small_model_dir(tmp_path)
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(data[: len(data) // 2])
    edit_json(directory / "model.json", weights_sha256=None)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(directory)


# --- checkpoints --------------------------------------------------------------------------------

def write_small_checkpoint(path: Path, documents=None) -> Path:
    tensors = {"model": {"w": torch.arange(6.0).reshape(2, 3)}}
    return checkpoint.write_checkpoint(path, tensors, documents or {"trainer": {"epoch": 1}})


def test_checkpoint_file_symlinked_out_is_refused(tmp_path):
    directory = write_small_checkpoint(tmp_path / "run" / "checkpoints" / "epoch-0001")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(directory / "model.safetensors", elsewhere / "model.safetensors")
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors").symlink_to(elsewhere / "model.safetensors")  # same sha256
    with pytest.raises(CheckpointError, match="model.safetensors resolves to .* outside"):
        checkpoint.read_checkpoint(directory)


def test_epoch_directory_symlinked_out_is_not_a_checkpoint_of_the_run(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    write_small_checkpoint(root / "epoch-0001")
    foreign = write_small_checkpoint(tmp_path / "foreign" / "epoch-0009")
    (root / "epoch-0009").symlink_to(foreign, target_is_directory=True)
    assert checkpoint.latest_checkpoint(root) == root / "epoch-0001"
    assert [path.name for _, path in checkpoint.find_checkpoints(root)] == ["epoch-0001"]


def test_checkpoint_manifest_with_wrong_types_or_deep_documents(tmp_path):
    directory = write_small_checkpoint(tmp_path / "epoch-0001")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = ["not", "a", "dict"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="invalid file name"):
        checkpoint.read_checkpoint(directory)
    (directory / "manifest.json").write_text(DEEP_JSON)
    with pytest.raises(CheckpointError, match="manifest.json is nested too deeply"):
        checkpoint.read_checkpoint(directory)
    nested: list = []
    for _ in range(150):
        nested = [nested]
    deep = write_small_checkpoint(tmp_path / "epoch-0002", {"trainer": nested})
    with pytest.raises(CheckpointError, match="trainer.json is nested 151 levels deep"):
        checkpoint.read_checkpoint(deep)


# --- LoRA adapters ------------------------------------------------------------------------------

def lora_dir(tmp_path: Path) -> tuple[nn.Module, Path]:
    pytest.importorskip("peft")
    from bigmodel.transfer.lora import add_lora, save_lora

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    add_lora(model, ["0"], rank=2)
    save_lora(model, tmp_path / "adapter")
    return model, tmp_path / "adapter"


def fresh_base() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))


@pytest.mark.parametrize("changes, message", [
    ({"rank": 10_000_000}, "declares rank 10000000, but .*adapter.safetensors holds"),
    ({"rank": "x"}, "'rank' must be an int >= 1; received 'x'"),
    ({"rank": None}, "'rank' must be an int"),
    ({"target": None}, "'target' must be a module name"),
    ({"trainable": [1]}, "'trainable' must be a module name"),
    ({"target": ["2"]}, "does not fit this model: unknown"),
    ({"target": ["1"]}, "does not describe adapters for this model"),
    ({"target": ["no_such_layer"]}, "matches no module"),
    ({"alpha": "big"}, "'alpha' must be a number"),
])
def test_crafted_adapter_json_is_refused_before_add_lora(tmp_path, changes, message):
    from bigmodel.transfer.lora import load_lora

    _, directory = lora_dir(tmp_path)
    edit_json(directory / "adapter.json", **changes)
    base = fresh_base()
    with pytest.raises(CheckpointError, match=message):
        load_lora(base, directory)


def test_adapter_missing_keys_truncated_or_symlinked_out(tmp_path):
    from bigmodel.transfer.lora import load_lora

    _, directory = lora_dir(tmp_path)
    spec = json.loads((directory / "adapter.json").read_text())
    del spec["rank"]
    (directory / "adapter.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="lacks 'rank'"):
        load_lora(fresh_base(), directory)
    (directory / "adapter.json").write_text('{"format": "bigmodel-lo')
    with pytest.raises(CheckpointError, match="adapter.json is not valid JSON"):
        load_lora(fresh_base(), directory)
    _, good = lora_dir(tmp_path / "good")
    shutil.copy(good / "adapter.json", directory / "adapter.json")
    (directory / "adapter.safetensors").unlink()
    (directory / "adapter.safetensors").symlink_to(good / "adapter.safetensors")
    with pytest.raises(CheckpointError, match="outside"):
        load_lora(fresh_base(), directory)


# --- int8 models --------------------------------------------------------------------------------

def int8_dir(tmp_path: Path) -> Path:
    """A hand-made one-node int8-format model (y = x + b), saved by Int8Model.save."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import numpy as np
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
    Int8Model(proto).save(tmp_path / "int8")
    return tmp_path / "int8"


def test_int8_round_trip_of_the_hand_made_model(tmp_path):
    from bigmodel.compress.quantize import load_int8

    model = load_int8(int8_dir(tmp_path))
    expected = torch.tensor([[0.25, 1.25, 2.25, 3.25]] * 2)  # x + bias
    torch.testing.assert_close(model(torch.zeros(2, 4)), expected)


def test_int8_initializer_with_external_data_is_refused(tmp_path):
    from bigmodel.compress.quantize import load_int8

    directory = int8_dir(tmp_path)
    spec = json.loads((directory / "model.json").read_text())
    spec["graph"]["graph"]["initializer"] = [{
        "name": "stolen", "dims": ["4"], "dataType": 1, "dataLocation": "EXTERNAL",
        "externalData": [{"key": "location", "value": "secret.bin"}]}]
    (directory / "model.json").write_text(json.dumps(spec))
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 16)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError, match=r"'stolen' stores its data in an external file "
                                                  r"\('secret.bin'\)"):
            load_int8(directory)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("changes, message", [
    ({"weights": "../int8/model.safetensors"}, "leaves the folder"),
    ({"weights": "/etc/hosts"}, "absolute path"),
    ({"initializer_order": ["bias", "nonexistent"]}, r"names tensors \['nonexistent'\]"),
    ({"float16_to_float32": 5}, "does not hold a valid int8 graph"),
    ({"nodes": [[1]]}, "does not hold a valid int8 graph"),
    ({"graph": []}, "does not hold a valid int8 graph"),
    ({"nodes": [["NoSuchOp", ["x"], ["z"], [], ""]]}, "ONNX Runtime refuses"),
])
def test_crafted_int8_model_json_is_a_checkpoint_error(tmp_path, changes, message):
    from bigmodel.compress.quantize import load_int8

    directory = int8_dir(tmp_path)
    edit_json(directory / "model.json", **changes)
    with pytest.raises(CheckpointError, match=message):
        load_int8(directory)


# --- pruned models, explanations, vocabularies --------------------------------------------------

def test_pruned_structure_larger_than_the_weights_is_refused(tmp_path):
    from bigmodel.compress.saving import load_any

    directory = small_model_dir(tmp_path)
    spec = json.loads((directory / "model.json").read_text())
    edit_json(directory / "model.json", metadata={**spec.get("metadata", {}),
                                                 "structure": {"classifier": {"in": 6}}})
    with pytest.raises(CheckpointError, match="does not fit the pruned model"):
        load_any(directory)
    edit_json(directory / "model.json", metadata={"structure": {"classifier": [1, 2]}})
    with pytest.raises(CheckpointError, match="metadata.structure must map"):
        load_any(directory)


def test_explanation_with_a_crafted_info_is_a_checkpoint_error(tmp_path):
    from safetensors.torch import save_file

    from bigmodel.explain.explanation import FORMAT_NAME, Explanation

    path = tmp_path / "explanation.safetensors"
    for info, message in ((DEEP_JSON, "nested too deeply"), ('{"no_such_field": 1}', "not a valid"),
                          ("[]", "must be a JSON object")):
        save_file({"inputs": torch.zeros(1)}, str(path), metadata={"format": FORMAT_NAME,
                                                                  "info": info})
        with pytest.raises(CheckpointError, match=message):
            Explanation.load(path)


def test_run_vocabulary_outside_the_run_dir_is_refused(tmp_path):
    from bigmodel.data.text import WordVocabulary
    from bigmodel.recipes.text_data import load_vocabulary

    WordVocabulary(["a", "b"]).save(tmp_path / "vocabulary.json")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("../vocabulary.json", str(tmp_path / "vocabulary.json")):
        with pytest.raises(DataFileError, match="Vocabulary"):
            load_vocabulary(run, {"tokenizer": "word", "vocabulary": name})
    (run / "vocabulary.json").symlink_to(tmp_path / "vocabulary.json")
    with pytest.raises(DataFileError, match="outside"):
        load_vocabulary(run, {"tokenizer": "word", "vocabulary": "vocabulary.json"})


# --- the memory bound, measured in a fresh process ----------------------------------------------

MEMORY_SCRIPT = r"""
import json, resource, sys
from pathlib import Path
from torch import nn
from bigmodel.errors import CheckpointError
from bigmodel.models.registry import load_model
from bigmodel.transfer.lora import load_lora

root = Path(sys.argv[1])
base = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
refused = 0
for attempt in (lambda: load_model(root / "m"), lambda: load_lora(base, root / "adapter")):
    try:
        attempt()
    except CheckpointError:
        refused += 1
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"refused": refused, "extra_kib": after - before}))
"""


def test_oversized_declared_shapes_allocate_under_100_mb(tmp_path):
    directory = small_model_dir(tmp_path, hidden_size=64)
    spec = json.loads((directory / "model.json").read_text())
    # 6e6 x 64 float32 head = 1.5 GB if built
    edit_json(directory / "model.json", config={**spec["config"], "num_classes": 6_000_000})
    _, adapter = lora_dir(tmp_path)
    edit_json(adapter / "adapter.json", rank=10_000_000)  # 2 x 64 x 1e7 float32 = 5 GB if built
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"] == 2, report
    assert report["extra_kib"] < 100 * 1024, report  # ru_maxrss is in KiB on Linux


def test_weights_header_reader_still_refuses_pickles(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x80\x04" + b"\x00" * 64)
    with pytest.raises(CheckpointError, match="Refusing to unpickle"):
        read_safetensors_header(path)


def test_every_registered_model_builds_on_the_meta_device():
    """load_model checks shapes on a meta-device build first, so every factory must support it."""
    from bigmodel.models.registry import list_models
    from bigmodel.utils.loading import meta_shapes

    for name in list_models():
        shapes = meta_shapes(lambda name=name: create_model(name), name)
        assert shapes and all(all(d >= 0 for d in shape) for shape in shapes.values()), name
    real = {k: tuple(v.shape) for k, v in create_model("speech-cnn").state_dict().items()}
    assert meta_shapes(lambda: create_model("speech-cnn"), "speech-cnn") == real


def test_cli_prints_the_loader_error_without_a_traceback(tmp_path, capsys):
    from bigmodel.cli import main as cli_main

    directory = small_model_dir(tmp_path, "run")
    (directory / "recipe.yaml").write_text("model:\n  name: rnn-classifier\n")
    edit_json(directory / "model.json", weights="../../etc/passwd")
    for command in ("evaluate", "export"):
        assert cli_main.main([command, str(directory)]) == 2
        err = capsys.readouterr().err
        assert "'../../etc/passwd' leaves the folder" in err and "Traceback" not in err


@pytest.mark.parametrize("trainer_state", [
    {"epoch": "x", "global_step": 0}, {"epoch": 1}, [],
    {"epoch": 1, "global_step": 2, "position": {"__tensor__": "x"}}])
def test_crafted_trainer_state_rehashed_into_the_manifest_is_a_checkpoint_error(tmp_path,
                                                                                 trainer_state):
    from bigmodel.engine.trainer import Trainer
    from bigmodel.utils.io import sha256_file

    def trainer():
        torch.manual_seed(0)
        return Trainer(nn.Linear(3, 2), "mse", optimizer="sgd", lr=0.1, verbose=0)

    path = trainer().save_checkpoint(tmp_path / "ckpt")
    (path / "trainer.json").write_text(json.dumps(trainer_state))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["trainer.json"] = {"sha256": sha256_file(path / "trainer.json"),
                                         "bytes": (path / "trainer.json").stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="ckpt"):
        trainer().load_checkpoint(path)


# --- fuzz: truncations and byte flips of every JSON record ---------------------------------------

def _mutations(data: bytes, seed: int) -> list[bytes]:
    """12 truncations spread over the file and 12 single-byte flips (seeded)."""
    import random

    rng = random.Random(seed)
    cuts = sorted({len(data) * i // 12 for i in range(12)})
    flips = []
    for _ in range(12):
        position = rng.randrange(len(data))
        flips.append(data[:position] + bytes([rng.choice(b'{}[]",:0x\\\xff')]) + data[position + 1:])
    return [data[:cut] for cut in cuts] + flips


def test_fuzzed_model_adapter_int8_and_manifest_files_give_only_bigmodel_errors(tmp_path):
    from bigmodel.compress.quantize import load_int8
    from bigmodel.transfer.lora import load_lora

    model_dir = small_model_dir(tmp_path)
    _, adapter = lora_dir(tmp_path)
    int8 = int8_dir(tmp_path)
    ckpt = write_small_checkpoint(tmp_path / "epoch-0001")
    cases = [(model_dir / "model.json", lambda: load_model(model_dir)),
             (adapter / "adapter.json", lambda: load_lora(fresh_base(), adapter)),
             (int8 / "model.json", lambda: load_int8(int8)),
             (ckpt / "manifest.json", lambda: checkpoint.read_checkpoint(ckpt))]
    for seed, (path, load) in enumerate(cases):
        original = path.read_bytes()
        for mutated in _mutations(original, seed):
            path.write_bytes(mutated)
            try:
                load()
            except BigModelError:
                pass  # refused, as expected
            # anything else (KeyError, TypeError, ...) fails the test with its traceback
        path.write_bytes(original)
        load()  # the untouched file still loads


@pytest.mark.parametrize("content, message", [(DEEP_JSON, "nested too deeply"),
                                              ('{"format": "bigmodel-tok', "not valid JSON"),
                                              ("\x80\x04junk", "Refusing to unpickle")])
def test_crafted_tokenizer_and_vocabulary_files_are_data_file_errors(tmp_path, content, message):
    from bigmodel.data.text import WordVocabulary
    from bigmodel.data.tokenizers import load_tokenizer

    path = tmp_path / "tokenizer.json"
    path.write_text(content, encoding="latin-1")
    for load in (load_tokenizer, WordVocabulary.load):
        with pytest.raises(DataFileError, match=message):
            load(path)
