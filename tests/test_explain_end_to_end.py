"""End to end: a small CNN that must learn where the evidence is, then attributions that find it;
Explanation files and pictures; the ``bigmodel explain`` command on a run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.explain import Explanation, explain
from bigmodel.explain.metrics import deletion_insertion

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def quadrant_data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 images with two random 3x3 blobs elsewhere; class 1 also has a blob in the top-left
    8x8 quadrant -- the only evidence for the label."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.15, (count, 1, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 2, count)
    for i in range(count):
        for _ in range(2):  # distractors in the other quadrants
            row, col = rng.integers(0, 13, 2)
            if row < 8 and col < 8:
                row += 8
            images[i, 0, row: row + 3, col: col + 3] = 1.0
        if labels[i]:
            row, col = rng.integers(0, 6, 2)
            images[i, 0, row: row + 3, col: col + 3] = 1.0
    return torch.from_numpy(images), torch.from_numpy(labels)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    x, y = quadrant_data(256, seed=0)
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(7):
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start: start + 64]), y[start: start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    x_test, y_test = quadrant_data(64, seed=1)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return model, x_test, y_test, accuracy


def test_the_model_learns_and_attributions_find_the_evidence(trained):
    model, x, y, accuracy = trained
    assert accuracy > 0.9
    positives = x[y == 1][:6]
    # (Grad-CAM is left out: its channel weights are global, so distractor blobs that excite the
    # same channels light up too; tests/test_explain_gradcam.py checks it on a quadrant model.)
    for method, options in (("integrated_gradients", {}), ("gradient_shap", {}),
                            ("kernel_shap", {"n_samples": 100, "segmentation": "patches"})):
        result = explain(model, positives, target=1, method=method, **options)
        heat = result.position_map().clamp_min(0)
        share = heat[:, :8, :8].sum(dim=(1, 2)) / heat.sum(dim=(1, 2))
        assert share.mean() > 0.6, (method, share)
        curves = deletion_insertion(model, result, steps=8, n_random=4)
        summary = curves.summary()
        assert summary["deletion_gain"] > 0.1 and summary["insertion_gain"] > 0.05, (method, summary)


@pytest.mark.parametrize("kind", ["image", "sequence", "tokens", "vector"])
def test_save_load_and_plot_every_input_kind(kind, tmp_path, trained):
    if kind == "image":
        model, inputs = trained[0], trained[1][:2]
        method = "gradcam"
    elif kind == "sequence":
        model, inputs, method = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.rand(2, 4, 3), \
            "integrated_gradients"
    elif kind == "tokens":
        model = nn.Sequential(nn.Embedding(9, 4), nn.Flatten(), nn.Linear(20, 3))
        inputs, method = torch.randint(1, 9, (2, 5)), "integrated_gradients"
    else:
        model, inputs, method = nn.Linear(6, 3), torch.rand(2, 6), "kernel_shap"
    result = explain(model, inputs, method=method, labels=[0, 1], class_names=["a", "b", "c"],
                     tokens=[list("abcde"), list("vwxyz")] if kind == "tokens" else None)
    path = result.save(tmp_path / "explanation.safetensors")
    loaded = Explanation.load(path)
    assert torch.equal(loaded.attributions, result.attributions)
    assert torch.equal(loaded.inputs, result.inputs) and loaded.method == method
    assert loaded.input_type == kind and loaded.class_names == ["a", "b", "c"]
    if kind == "image":
        torch.testing.assert_close(loaded.extras["layer_map"], result.extras["layer_map"])
    result.plot(1, path=tmp_path / "example.png")
    assert (tmp_path / "example.png").read_bytes().startswith(PNG_MAGIC)
    numbers = result.to_dict()
    assert numbers["examples"][1]["label_name"] == "b"
    json.dumps(numbers)
    if kind == "tokens":
        page = result.html()
        assert page.count('class="token"') == 10 and "title=" in page and ">v<" in page


def test_explanation_file_errors(tmp_path):
    from bigmodel.errors import CheckpointError

    with pytest.raises(CheckpointError, match="No explanation file"):
        Explanation.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a bigmodel explanation file"):
        Explanation.load(tmp_path / "other.safetensors")


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as `bigmodel train` leaves it (untrained seed CNN, tiny IDX data set)."""
    from bigmodel.data.idx import write_idx
    from bigmodel.models import create_model, save_model
    from bigmodel.recipes.schema import recipe_from_dict, save_recipe

    root = tmp_path_factory.mktemp("explain-run")
    data = root / "data"
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("t10k", 12)):
        write_idx(data / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, (count, 28, 28)).astype(np.uint8))
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, count).astype(np.uint8))
    run = root / "run"
    torch.manual_seed(0)
    save_model(create_model("seed-cnn"), run, metadata={
        "class_names": [f"class{k}" for k in range(10)], "data": "fashion_mnist",
        "input": {"channels": 1, "height": 28, "width": 28, "scale": 1 / 255}})
    save_recipe(recipe_from_dict({"data": {"name": "fashion_mnist", "path": str(data)}}),
                run / "recipe.yaml")
    return run


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")


def test_cli_writes_pictures_and_numbers(run_dir, capsys):
    from bigmodel.cli.main import main

    code = main(["explain", str(run_dir), "--method", "integrated_gradients", "--index", "0", "3",
                 "--steps", "16", "--curve-steps", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = run_dir / "explain" / "integrated_gradients"
    for name in ("example_0.png", "example_3.png", "faithfulness_curves.png"):
        assert (folder / name).read_bytes().startswith(PNG_MAGIC)
    numbers = json.loads((folder / "integrated_gradients.json").read_text())
    assert [e["index"] for e in numbers["examples"]] == [0, 3]
    first = numbers["examples"][0]
    assert {"label", "predicted", "deletion_auc", "random_deletion_auc", "completeness_error",
            "attributions"} <= set(first)
    assert first["predicted_name"].startswith("class") and first["completeness_error"] < 0.05
    assert len(first["attributions"]) == 28 and numbers["options"]["n_steps"] == 16
    assert Explanation.load(folder / "explanation.safetensors").inputs.shape == (2, 1, 28, 28)
    assert "example 3: predicted class" in out and "deletion AUC" in out


def test_cli_other_methods_and_input_file(run_dir, tmp_path, capsys):
    from bigmodel.cli.main import main

    images = np.random.default_rng(1).integers(0, 255, (3, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    code = main(["explain", str(run_dir), "--method", "kernel_shap", "--index", "2", "--input",
                 str(tmp_path / "images.npy"), "--samples", "40", "--segmentation", "patches",
                 "--patch-size", "7", "--output-dir", str(tmp_path / "out"), "--curve-steps", "4"])
    assert code == 0, capsys.readouterr()
    numbers = json.loads((tmp_path / "out" / "kernel_shap.json").read_text())
    assert numbers["examples"][0]["index"] == 2 and "label" not in numbers["examples"][0]
    assert (tmp_path / "out" / "example_2.png").is_file()
    code = main(["explain", str(run_dir), "--method", "gradcam", "--index", "1", "--curve-steps",
                 "0", "--output-dir", str(tmp_path / "cam")])
    assert code == 0
    cam = json.loads((tmp_path / "cam" / "gradcam.json").read_text())
    assert cam["extras"]["layer"] == "conv3" and "faithfulness" not in cam


@pytest.mark.parametrize("arguments, message", [
    (["--index", "12"], "--index 12 is out of range: the test set has 12 examples"),
    (["--method", "attention"], "'attention' does not apply to SeedCNN .* Methods that apply: "),
    (["--samples", "10"], "--samples does not apply to --method integrated_gradients"),
    (["--baseline", "grey"], "unknown baseline 'grey'"),
    (["--method", "gradcam", "--layer", "conv7"], "has no layer named 'conv7'"),
])
def test_cli_errors_leave_nothing_behind(run_dir, tmp_path, capsys, arguments, message):
    import re

    from bigmodel.cli.main import main

    out_dir = tmp_path / "never"
    code = main(["explain", str(run_dir), "--output-dir", str(out_dir), *arguments])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out_dir.exists()


def test_benchmark_script_runs_on_a_tiny_setting(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    from bigmodel.errors import DataFileError

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location("_bench_explain", bench / "explain_faithfulness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        result = module.main(["--images", "2", "--samples", "20", "--segments", "9", "--steps", "8",
                              "--curve-steps", "3", "--random-orders", "1", "--repeats", "1",
                              "--train-images", "64", "--epochs", "1", "--methods",
                              "integrated_gradients", "kernel_shap", "--out", str(tmp_path)])
    except DataFileError as exc:  # no Fashion-MNIST on this machine: nothing to run on
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "explain_faithfulness.json").read_text())
    assert saved["families"]["cnn"]["rows"][0]["method"] == "integrated_gradients"
    assert set(saved["checks"]["cnn"]) >= {"ig_seconds_per_image", "ig_completeness_error",
                                           "kernel_shap_seconds_per_image"}
    assert result["config"]["images"] == 2


def test_cli_text_run_writes_coloured_tokens(tmp_path, capsys):
    from bigmodel.cli.main import main
    from bigmodel.models import create_model, list_models, save_model

    if "text-rcnn" not in list_models():
        pytest.skip("the text-rcnn model is not registered")
    torch.manual_seed(0)
    words = ["<pad>", "the", "cat", "sat", "<b>mat</b>"]
    model = create_model("text-rcnn", vocab_size=5, num_classes=3, embedding_dim=4,
                         context_size=4, hidden_size=8)
    save_model(model, tmp_path / "run", metadata={"class_names": ["x", "y", "z"],
                                                  "vocabulary": words})
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 3, 1, 4], [4, 3, 2, 0, 0]]))
    code = main(["explain", str(tmp_path / "run"), "--input", str(tmp_path / "ids.npy"),
                 "--index", "0", "1", "--steps", "8", "--curve-steps", "5"])
    assert code == 0, capsys.readouterr()
    folder = tmp_path / "run" / "explain" / "integrated_gradients"
    page = (folder / "tokens.html").read_text()
    # the two <pad> tokens of the second text are not shown (#17): 10 ids, 8 spans
    assert page.count('class="token"') == 8 and "&lt;b&gt;mat&lt;/b&gt;" in page
    assert "&lt;pad&gt;" not in page
    numbers = json.loads((folder / "integrated_gradients.json").read_text())
    assert numbers["input_type"] == "tokens" and len(numbers["examples"][0]["attributions"]) == 5
    assert numbers["examples"][0]["completeness_error"] < 0.05
    assert (folder / "example_1.png").read_bytes().startswith(PNG_MAGIC)
