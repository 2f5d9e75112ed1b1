"""The transfer benchmark scripts run end to end on a tiny setting (no timing or accuracy asserted:
this keeps them working as the library changes)."""

from __future__ import annotations

import importlib.util
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


def test_transfer_images_tiny():
    from bigmodel.keras.datasets import fashion_mnist

    try:
        fashion_mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - no data set on this machine: nothing to run
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    threads = torch.get_num_threads()
    try:
        result = _load("transfer_images").main([
            "--pretrain-samples", "256", "--pretrain-epochs", "1", "--epochs", "1", "--seeds", "0",
            "--test-samples", "64", "--per-class", "4"])
    finally:
        torch.set_num_threads(threads)
    experiment = result["experiments"][4]
    assert set(experiment["accuracy"]) == {"fine-tuning", "feature extraction", "scratch"}
    assert experiment["trainable"]["feature extraction"] < experiment["trainable"]["scratch"]
    assert all(0.0 <= v[0] <= 1.0 for v in experiment["accuracy"].values())
