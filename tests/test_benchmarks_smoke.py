"""The benchmark scripts in benchmarks/ run end to end on a tiny setting and write their JSON.

No timing is asserted: these only keep the scripts working as the library changes. Each script's
``main(argv)`` is called in-process with a tiny configuration and an output folder under tmp_path.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _fashion_and_threads():
    """Skip without Fashion-MNIST; restore torch's thread count (the scripts may set it)."""
    from bigmodel.keras.datasets import fashion_mnist

    try:
        fashion_mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any failure to find the data set means "skip"
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _json(out: Path, name: str) -> dict:
    path = out / name
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def test_fit_throughput_smoke(tmp_path):
    bench = _load("fit_throughput")
    result = bench.main(["--samples", "64", "--predict-samples", "64", "--repeats", "1",
                         "--predict-repeats", "1", "--warmup-batches", "1", "--no-tf",
                         "--threads", "1", "--out", str(tmp_path)])
    data = _json(tmp_path, "fit_throughput.json")
    assert data == json.loads(json.dumps(result))
    for key in ("benchmark", "date", "machine", "command", "config", "fit", "predict",
                "tensorflow", "peak_rss_mib"):
        assert key in data
    for key in ("keras_samples_per_s", "torch_samples_per_s", "ratio", "ratio_cpu_time",
                "target_ratio", "target_met", "keras_seconds", "torch_seconds",
                "torch_fused_samples_per_s", "ratio_vs_fused_reference"):
        assert key in data["fit"]
    assert data["fit"]["torch_fused_samples_per_s"] > 0
    for key in ("keras_samples_per_s", "torch_samples_per_s", "ratio"):
        assert key in data["predict"]
    assert data["fit"]["keras_samples_per_s"] > 0 and data["fit"]["torch_samples_per_s"] > 0
    assert data["predict"]["outputs"]["keras_shape"] == [64, 10]
    assert data["predict"]["outputs"]["torch_shape"] == [64, 10]
    assert data["tensorflow"]["status"] == "skipped"
    assert data["machine"]["torch_threads"] == 1
    assert data["peak_rss_mib"]["process"] > 0


def test_fashion_accuracy_smoke(tmp_path):
    bench = _load("fashion_accuracy")
    bench.main(["--samples", "256", "--test-samples", "128", "--epochs", "1", "--threads", "1",
                "--out", str(tmp_path)])
    data = _json(tmp_path, "fashion_accuracy.json")
    for key in ("benchmark", "date", "machine", "command", "config", "keras", "cli",
                "peak_rss_mib"):
        assert key in data
    keras = data["keras"]
    for key in ("test_accuracy", "test_loss", "epoch_seconds", "history", "target_accuracy",
                "target_met", "params"):
        assert key in keras
    assert len(keras["epoch_seconds"]) == 1
    assert 0.0 <= keras["test_accuracy"] <= 1.0
    assert keras["params"] == 93322  # the seed CNN, as in Keras
    assert data["cli"]["status"] == "not run"


def test_overfitting_smoke(tmp_path):
    bench = _load("overfitting")
    bench.main(["--samples", "128", "--val-samples", "64", "--test-samples", "128", "--epochs", "2",
                "--threads", "1", "--out", str(tmp_path), "--docs-img", "none"])
    data = _json(tmp_path, "overfitting.json")
    for key in ("benchmark", "date", "machine", "command", "config", "plain", "remedied",
                "gap_reduction", "test_accuracy_change", "png"):
        assert key in data
    for model in ("plain", "remedied"):
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "gap", "epochs_run",
                    "history"):
            assert key in data[model]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert key in data[model]["history"]
    assert "best_epoch" in data["remedied"]
    assert (tmp_path / "overfitting.png").stat().st_size > 0
    assert "docs_png" not in data


def test_profile_fit_overhead_smoke(tmp_path):
    bench = _load("profile_fit_overhead")
    bench.main(["--iters", "2", "--repeats", "1", "--big-iters", "1", "--big-repeats", "1",
                "--samples", "64", "--threads", "1", "--out", str(tmp_path)])
    data = _json(tmp_path, "profile_fit_overhead.json")
    for key in ("step", "model_fwd_bwd", "permutes_fwd_bwd", "model_dispatch", "loss",
                "label_check", "metric_update", "batching"):
        assert key in data["per_step_us"]


def test_seed_cnn_runs_channels_last_for_grayscale_inputs():
    """The premise of fit_throughput: every Conv2D kernel is truly channels_last (also the first
    one, whose single input channel makes the layout ambiguous), so oneDNN keeps the activations
    channels_last even for inputs with ambiguous strides (a NumPy ``x[..., None]`` slice)."""
    from bigmodel import keras
    from bigmodel.keras import layers

    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
    ])
    for conv in (model.layers[0], model.layers[2]):
        kernel = conv.kernel
        expected = torch.empty_like(kernel, memory_format=torch.channels_last).stride()
        assert kernel.stride() == expected
    import numpy as np

    x = torch.from_numpy(np.zeros((4, 28, 28), np.float32)[..., None])  # stride 0 on the last axis
    seen = []
    model.layers[0].register_forward_hook(lambda m, i, o: seen.append(o))
    model.predict(x.numpy(), verbose=0)
    out = seen[0]  # NHWC view of the conv output: contiguous when the conv ran channels_last
    assert out.is_contiguous()


@pytest.mark.full  # ~8 s: three paths of four models
def test_keras_speed_smoke(tmp_path):
    """All four corpus models on all three paths (real Keras only where installed), tiny; the three
    parameter counts must agree (the same architecture is what makes the ratios meaningful)."""
    real_keras = importlib.util.find_spec("keras") is not None
    bench = _load("keras_speed")
    result = bench.main(["--quick", "--steps", "2", "--predict-samples", "32", "--out",
                         str(tmp_path)] + ([] if real_keras else ["--no-keras"]))
    data = _json(tmp_path, "keras_speed.json")
    assert data == json.loads(json.dumps(result))
    assert set(data["results"]) == {"cnn@1", "lstm@1", "resnet@1", "transformer@1"}
    for entry in data["results"].values():
        assert entry["params_agree"], entry["params"]
        assert len(entry["params"]) == (3 if real_keras else 2)
        for task in ("fit", "predict"):
            assert all(v > 0 for v in entry[task]["samples_per_s"].values())
            assert entry[task]["ratio_vs_torch"] > 0
            assert ("ratio_vs_keras" in entry[task]) == real_keras
