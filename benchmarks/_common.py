"""Helpers shared by the seed-CNN benchmark scripts: the seed CNN (Keras surface and plain PyTorch), data,
machine description, peak memory, JSON output and Markdown tables.

The scripts live outside the package on purpose: they measure the package, they are not part of it.
Each script has ``main(argv) -> dict`` (the JSON it wrote), so ``tests/test_benchmarks_smoke.py``
can run it on a tiny setting.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "out"


# ------------------------------------------------------------------------------ data
def load_fashion(path: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray],
                                                    tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST through the Keras surface, exactly as a user loads it (uint8, (N, 28, 28))."""
    from bigmodel.keras.datasets import fashion_mnist

    return fashion_mnist.load_data(path) if path else fashion_mnist.load_data()


# ------------------------------------------------------------------------------ models
def seed_cnn_keras(kernel_regularizer: Any = None, dropout: float = 0.0,
                   augment: Sequence[Any] = ()) -> Any:
    """The seed program's CNN (seed-examples/seed_cnn.py), optionally with remedies.

    ``augment`` layers go first (identity at inference), a ``Dropout(dropout)`` before each of the
    two Dense layers, ``kernel_regularizer`` on every Conv2D/Dense kernel.
    """
    from bigmodel import keras
    from bigmodel.keras import layers

    reg = kernel_regularizer
    stack: list[Any] = [keras.Input(shape=(28, 28, 1)), *augment] if augment else []
    first_kwargs = {} if augment else {"input_shape": (28, 28, 1)}
    stack += [
        layers.Conv2D(32, (3, 3), activation="relu", kernel_regularizer=reg, **first_kwargs),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", kernel_regularizer=reg),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", kernel_regularizer=reg),
        layers.Flatten(),
    ]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(64, activation="relu", kernel_regularizer=reg))
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(10, activation="softmax", kernel_regularizer=reg))
    return keras.Sequential(stack)


class TorchSeedCNN(nn.Module):
    """The same CNN as plain ``nn.Module``s; takes NHWC images, returns logits.

    Channels-last throughout: the NHWC batch is viewed as NCHW (``permute``, no copy), the model is
    kept in ``torch.channels_last``, and the last feature map is flattened in (H, W, C) order, which
    for a channels_last tensor is a free view -- the hand-written equivalent of the Keras layers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(576, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x = x_nhwc.permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))

    def load_keras_weights(self, weights: Sequence[np.ndarray]) -> TorchSeedCNN:
        """Copy the Keras model's weights (Keras shapes and order) so both start identically."""
        convs, dense = (self.conv1, self.conv2, self.conv3), (self.fc1, self.fc2)
        it = iter(weights)
        with torch.no_grad():
            for conv in convs:
                conv.weight.copy_(torch.from_numpy(next(it)).permute(3, 2, 0, 1))
                conv.bias.copy_(torch.from_numpy(next(it)))
            for lin in dense:
                lin.weight.copy_(torch.from_numpy(next(it)).T)
                lin.bias.copy_(torch.from_numpy(next(it)))
        return self.to(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------ machine / memory
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "gpu": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size (``ru_maxrss`` is in KiB on Linux)."""
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def today() -> str:
    return _dt.date.today().isoformat()


# ------------------------------------------------------------------------------ output
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def write_json(result: dict[str, Any], out_dir: str | Path, name: str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))


def log(*parts: Any) -> None:
    print(*parts, flush=True, file=sys.stderr)
