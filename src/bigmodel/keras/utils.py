"""``keras.utils``: small helpers."""

from __future__ import annotations

from typing import Any

import numpy as np

from bigmodel.errors import DataError


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer labels: shape ``(..., num_classes)``, float32."""
    labels = np.asarray(x)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"to_categorical needs integer labels; received dtype {labels.dtype}")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"to_categorical: labels must lie in [0, {num_classes - 1}]; received "
                        f"[{labels.min()}, {labels.max()}]")
    return np.eye(num_classes, dtype=np.float32)[labels]


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (as ``keras.utils.set_random_seed``)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
