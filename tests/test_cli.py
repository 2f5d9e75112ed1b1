"""The ``bigmodel`` command: train on tiny IDX files, then evaluate / predict from the run directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigmodel.cli.main import main
from bigmodel.data.datasets import DEBIAN_LOCATIONS
from bigmodel.data.idx import write_idx
from bigmodel.errors import ConfigError
from bigmodel.recipes.schema import OPTIMIZERS, load_recipe, recipe_from_dict
from bigmodel.recipes.training import kernel_l2_penalty, recipe_optimizer
from synthetic_images import synthetic_images

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
RUN_FILES = ("recipe.yaml", "model.json", "model.safetensors", "metrics.csv", "training_curves.png",
             "confusion_matrix.png", "report.md", "results.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A Fashion-MNIST-shaped data set directory: 320 training and 96 test images, gzip IDX."""
    directory = tmp_path_factory.mktemp("tiny-fashion")
    rng = np.random.default_rng(0)
    for split, count in (("train", 320), ("t10k", 96)):
        images, labels = synthetic_images(count, rng)
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")


def tiny_overrides(data_dir: Path, epochs: int = 2) -> list[str]:
    return ["--set", f"data.path={data_dir}", "--set", f"train.epochs={epochs}",
            "--set", "train.batch_size=32"]


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory) -> tuple[Path, str]:
    """One `bigmodel train` of the seed recipe on the tiny data; returns (run dir, its stdout)."""
    import contextlib
    import io

    run_dir = tmp_path_factory.mktemp("runs") / "seed"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("BIGMODEL_OFFLINE", "1")
        code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                     *tiny_overrides(tiny_data, epochs=3)])
    assert code == 0, out.getvalue()
    return run_dir, out.getvalue()


def test_train_writes_every_run_file(trained_run):
    run_dir, stdout = trained_run
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    for name in ("training_curves.png", "confusion_matrix.png"):
        assert (run_dir / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("epoch"))
    assert not list(run_dir.rglob(".*.tmp"))
    metrics = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 3 and "loss" in metrics[0] and "accuracy" in metrics[0]
    spec = json.loads((run_dir / "model.json").read_text())
    assert spec["name"] == "seed-cnn" and spec["config"]["num_classes"] == 10
    assert spec["metadata"]["class_names"][9] == "Ankle boot"
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", stdout).group(1))
    assert accuracy > 0.5  # the synthetic classes are easy: 3 epochs on 320 images learn them
    report = (run_dir / "report.md").read_text()
    assert "93,322 parameters" in report and "| test |" in report
    assert "![Training curves](training_curves.png)" in report


def test_resolved_recipe_is_saved(trained_run, tiny_data):
    run_dir, _ = trained_run
    recipe = load_recipe(run_dir / "recipe.yaml")
    assert recipe.train.epochs == 3 and recipe.data.path == str(tiny_data)
    assert "overrides" in (run_dir / "recipe.yaml").read_text()  # defaults written out


def test_evaluate_reproduces_the_test_accuracy(trained_run, capsys):
    run_dir, stdout = trained_run
    assert main(["evaluate", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    trained = re.search(r"test accuracy: ([0-9.]+)", stdout).group(1)
    assert f"test accuracy: {trained}" in printed and "test loss:" in printed
    results = json.loads((run_dir / "results.json").read_text())
    assert results["parameters"] == 93_322


def test_predict_prints_class_and_probability(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    images, labels = synthetic_images(4, np.random.default_rng(5))
    np.save(tmp_path / "x.npy", images)
    assert main(["predict", str(run_dir), str(tmp_path / "x.npy")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for row, line in enumerate(lines):
        match = re.fullmatch(rf"{row}: .+ \(class (\d)\) ([01]\.\d{{4}})", line)
        assert match, line
    # Channels-last floats in [0, 1] and a top-3 listing.
    np.save(tmp_path / "f.npy", images[..., None].astype(np.float32) / 255)
    assert main(["predict", str(run_dir), str(tmp_path / "f.npy"), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.count("(class") == 3 for line in lines)
    probabilities = [float(p) for p in re.findall(r"\) ([01]\.\d{4})", lines[0])]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 32, 32), np.uint8), r"expected images of shape \(N, 28, 28\).*shape=\(2, 32, 32\)"),
    (np.zeros((2, 3, 28, 28), np.uint8), r"expected images of shape"),
    (np.full((1, 28, 28), 255.0), r"scaled to \[0, 1\]"),
    (np.zeros((1, 28, 28), bool), r"integer .* or floating-point"),
    (np.array([None, 1], dtype=object), r"pickled object array"),
])
def test_predict_rejects_bad_input(trained_run, tmp_path, capsys, array, message):
    run_dir, _ = trained_run
    np.save(tmp_path / "bad.npy", array, allow_pickle=True)
    assert main(["predict", str(run_dir), str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err
    assert "Traceback" not in err


def test_predict_other_errors(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    assert main(["predict", str(run_dir), str(tmp_path / "none.npy")]) == 2
    assert "not found" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    assert main(["predict", str(run_dir), str(tmp_path / "x.npy"), "--top-k", "11"]) == 2
    assert "--top-k 11 exceeds" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(tmp_path / "x.npy")]) == 2
    assert "No model file" in capsys.readouterr().err


def test_train_errors_exit_2_without_traceback_or_run_dir(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                 "--set", "train.epoch=3"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key 'train.epoch'" in err and "Traceback" not in err
    assert not run_dir.exists()
    code = main(["train", str(tmp_path / "missing.yaml")])
    assert code == 2 and "Recipe file not found" in capsys.readouterr().err
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("x")
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                 *tiny_overrides(tiny_data)])
    assert code == 2 and "not empty" in capsys.readouterr().err


def test_trainer_config_error_leaves_no_run_dir(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "fp16"
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                 *tiny_overrides(tiny_data), "--set", "train.device=cpu",
                 "--set", "train.precision=fp16"])
    assert code == 2 and "fp16" in capsys.readouterr().err
    assert not run_dir.exists()


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(ConfigError):
        main(["--debug", "train", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError):
        main(["evaluate", str(tmp_path / "nowhere"), "--debug"])


def test_usage_errors_use_argparse_code(capsys):
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert "bigmodel" in capsys.readouterr().out


def test_regularized_recipe_on_tiny_data(tiny_data, tmp_path, capsys):
    """L2, dropout, augmentation, validation split and early stopping all run together."""
    run_dir = tmp_path / "reg"
    code = main(["train", str(CONFIGS / "fashion_cnn_regularized.yaml"), "--run-dir", str(run_dir),
                 *tiny_overrides(tiny_data, epochs=2), "--set", "train.early_stopping.patience=1",
                 "--set", "train.scheduler={name: cosine, args: {warmup_steps: 2}}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val_loss" in header and "val_accuracy" in header
    assert "| validation |" in (run_dir / "report.md").read_text()


def test_output_root_and_name(tiny_data, tmp_path, capsys):
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), *tiny_overrides(tiny_data, epochs=1),
                 "--set", f"output.root={tmp_path / 'runs'}", "--set", "data.train_subset=64"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("fashion_cnn-") and (run_dir / "model.json").is_file()


def test_python_dash_m_info():
    result = subprocess.run([sys.executable, "-m", "bigmodel", "info"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for label in ("bigmodel:", "torch:", "numpy:", "device:", "threads:", "fashion-mnist", "seed-cnn"):
        assert label in result.stdout


@pytest.mark.skipif(not (DEBIAN_LOCATIONS["fashion-mnist"] / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_subset(tmp_path, capsys):
    """The real data, 1,024 images, 2 epochs: well above chance (10%)."""
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(tmp_path / "real"),
                 "--set", "train.epochs=2", "--set", "data.train_subset=1024",
                 "--set", "data.test_subset=1000"])
    out = capsys.readouterr().out
    assert code == 0
    assert float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)) > 0.6


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_recipe_optimizer_builds(name):
    import torch

    recipe = recipe_from_dict({"train": {"optimizer": name, "momentum": 0.5, "lr": 0.01}})
    optimizer = recipe_optimizer(recipe.train, [torch.nn.Parameter(torch.zeros(2))])
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.5
    else:
        assert group["eps"] == 1e-7  # Keras's epsilon


def test_l2_penalty_is_keras_l2_on_kernels_only():
    import torch

    from bigmodel.models import create_model

    model = create_model("seed-cnn")
    expected = sum(float((layer.weight.detach().double() ** 2).sum()) for layer in (
        model.conv1, model.conv2, model.conv3, model.fc, model.classifier))
    assert kernel_l2_penalty(model, 0.01)().item() == pytest.approx(0.01 * expected, rel=1e-5)
    with torch.no_grad():
        model.fc.bias.fill_(100.0)  # biases are not penalized
    assert kernel_l2_penalty(model, 0.01)().item() == pytest.approx(0.01 * expected, rel=1e-5)
