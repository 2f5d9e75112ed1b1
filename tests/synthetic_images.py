"""Learnable Fashion-MNIST-shaped data for the CLI tests: class k is a bright 6x6 square at one of
10 places on a noisy 28x28 uint8 image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bigmodel.data.idx import write_idx


def synthetic_images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(images (count, 28, 28) uint8, labels (count,) uint8)``."""
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        row, col = 3 + 13 * (label // 5), 2 + 5 * (label % 5)
        images[index, row: row + 6, col: col + 6] = 230
    return images, labels


def write_fashion_like(directory: Path, train: int, test: int, seed: int = 0) -> Path:
    """Write ``train``/``t10k`` IDX files (gzip) as the Fashion-MNIST loader expects them."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("t10k", test)):
        images, labels = synthetic_images(count, rng)
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory
