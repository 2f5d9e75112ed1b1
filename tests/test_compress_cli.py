"""``bigmodel compress`` on a run trained on tiny IDX files: stages, report, files, errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.compress import load_any, model_sparsity  # noqa: E402
from bigmodel.compress.quantize import Int8Model  # noqa: E402
from bigmodel.models import create_model, save_model  # noqa: E402
from synthetic_images import write_fashion_like

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """The seed recipe trained 2 epochs on 320 learnable 28x28 images (class = square position)."""
    data = write_fashion_like(tmp_path_factory.mktemp("squares"), 320, 128)
    run_dir = tmp_path_factory.mktemp("runs") / "seed"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIGMODEL_OFFLINE", "1")
        code, out, err = run_cli("train", CONFIGS / "fashion_cnn.yaml", "--run-dir", run_dir,
                                 "--set", f"data.path={data}", "--set", "train.epochs=2")
    assert code == 0, err
    return run_dir


def test_structured_prune_then_int8_writes_every_stage_and_the_report(trained_run, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("compress", trained_run, "--prune", "0.5", "--quantize", "int8",
                                "--fine-tune-epochs", "1", "--calibration-size", "128",
                                "--speed-rounds", "1", "--out", out)
    assert code == 0, err
    assert "| original |" in stdout and "| int8 |" in stdout
    for name in ("report.md", "compression.png", "results.json", "pruned/model.json",
                 "pruned/model.safetensors", "int8/model.json", "int8/model.safetensors"):
        assert (out / name).is_file(), name
    assert (out / "compression.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stages = {s["name"]: s for s in json.loads((out / "results.json").read_text())}
    assert list(stages) == ["original", "pruned", "int8"]
    assert stages["pruned"]["macs"] <= 0.5 * stages["original"]["macs"]
    assert stages["pruned"]["size_bytes"] < 0.6 * stages["original"]["size_bytes"]
    assert stages["int8"]["size_bytes"] < stages["pruned"]["size_bytes"] / 3
    assert stages["original"]["accuracy"] > 0.8
    assert stages["int8"]["accuracy"] >= stages["pruned"]["accuracy"] - 0.05
    for stage in stages.values():
        assert stage["latency_ms"] > 0 and stage["throughput"] > 0
    report = (out / "report.md").read_text()
    assert "| stage | accuracy |" in report and "compression.png" in report

    pruned = load_any(out / "pruned")
    assert sum(p.numel() for p in pruned.parameters()) == stages["pruned"]["params"]
    int8 = load_any(out / "int8")
    assert isinstance(int8, Int8Model)
    assert int8(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    code, stdout, err = run_cli("export", out / "int8", "--format", "onnx", "--out",
                                tmp_path / "int8.onnx")
    assert code == 0, err
    from bigmodel.export import onnx_session

    session = onnx_session(tmp_path / "int8.onnx")
    assert session.run(None, {session.get_inputs()[0].name:
                              np.random.rand(3, 1, 28, 28).astype(np.float32)})[0].shape == (3, 10)


def test_unstructured_prune_with_distillation(trained_run, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("compress", trained_run, "--prune", "0.8", "--prune-mode",
                                "unstructured", "--distill-from", trained_run,
                                "--fine-tune-epochs", "1", "--speed-rounds", "1", "--out", out)
    assert code == 0, err
    stages = {s["name"]: s for s in json.loads((out / "results.json").read_text())}
    assert list(stages) == ["original", "teacher", "pruned"]
    assert "distilled" in stages["pruned"]["note"]
    model = load_any(out / "pruned")
    assert model_sparsity(model) == pytest.approx(0.8, abs=0.01)
    assert stages["pruned"]["size_bytes"] < 0.45 * stages["original"]["size_bytes"]


def test_compress_errors(trained_run, tmp_path):
    code, _, err = run_cli("compress", trained_run, "--prune", "1.0")
    assert code == 2 and "--prune" in err and "[0, 1)" in err
    code, _, err = run_cli("compress", trained_run)
    assert code == 2 and "nothing to do" in err
    code, _, err = run_cli("compress", trained_run, "--prune", "0")
    assert code == 2 and "removes nothing" in err
    teacher = tmp_path / "teacher"
    save_model(create_model("seed-cnn", num_classes=5), teacher)
    code, _, err = run_cli("compress", trained_run, "--distill-from", teacher)
    assert code == 2 and "same classes" in err
    code, _, err = run_cli("compress", tmp_path / "missing", "--quantize", "int8")
    assert code == 2 and "not found" in err
