"""``keras.utils.split_dataset``: a dataset cut in two (train / test), as Keras 3 on torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError


def _size(name: str, value: Any, total: int) -> float | None:
    """A split size as a sample count (float until rounded), checked as Keras checks it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"split_dataset: {name} must be an int, a float or None; received "
                             f"{name}={value!r} ({type(value).__name__})")
    if isinstance(value, int) and not 0 < value < total:
        raise ConfigError(f"split_dataset: {name} must be an int in (0, {total}) or a float in "
                          f"(0, 1); received {name}={value}")
    if isinstance(value, float) and not 0 < value < 1:
        raise ConfigError(f"split_dataset: {name} must be an int in (0, {total}) or a float in "
                          f"(0, 1); received {name}={value}")
    return float(round(value * total)) if isinstance(value, float) else float(value)


def _as_dataset(dataset: Any) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, np.ndarray):
        return TensorDataset(torch.from_numpy(dataset))
    if isinstance(dataset, (list, tuple)) and dataset and all(
            isinstance(part, (np.ndarray, torch.Tensor)) for part in dataset):
        lengths = {len(part) for part in dataset}
        if len(lengths) != 1:
            raise ConfigError(f"split_dataset: the arrays of dataset differ in length: "
                              f"{sorted(lengths)}")
        return TensorDataset(*(torch.as_tensor(part) for part in dataset))
    if isinstance(dataset, dict):
        raise NotSupportedError("split_dataset: a dict of arrays is not supported (nor by Keras "
                                "on torch); pass a list or tuple of arrays")
    raise InputTypeError(f"split_dataset: dataset must be a torch Dataset, a NumPy array or a "
                         f"list/tuple of arrays of one length; received {type(dataset).__name__}")


def split_dataset(dataset: Any, left_size: Any = None, right_size: Any = None,
                  shuffle: bool = False, seed: int | None = None,
                  preferred_backend: str | None = None) -> tuple[Subset, Subset]:
    """Split ``dataset`` into a left and a right part.

    Args:
        dataset: a ``torch.utils.data.Dataset``, a NumPy array, or a list/tuple of arrays of one
            length (their samples become tuples, as ``TensorDataset``'s).
        left_size, right_size: a sample count (int) or a fraction (float in (0, 1)); one may be
            None (the rest); both given may leave samples out.
        shuffle: draw the samples of each side at random (``seed`` for the same draw); otherwise
            the left side is the first samples, the right side the ones after it.
        preferred_backend: ``None`` or ``"torch"`` (``"tensorflow"`` needs TensorFlow).

    Returns:
        ``(left, right)``, ``torch.utils.data.Subset`` objects (what Keras 3 returns on torch).

    Raises:
        InputTypeError / ConfigError: a bad dataset or sizes (both None, sizes summing past the
        dataset, an empty side). NotSupportedError: ``preferred_backend="tensorflow"``.
    """
    if preferred_backend not in (None, "torch"):
        raise NotSupportedError(f"split_dataset: preferred_backend={preferred_backend!r} is not "
                                "supported; bigmodel splits into torch datasets")
    data = _as_dataset(dataset)
    total = len(data)  # type: ignore[arg-type]
    if left_size is None and right_size is None:
        raise ConfigError("split_dataset: give left_size or right_size (or both); received "
                          "both None")
    left, right = _size("left_size", left_size, total), _size("right_size", right_size, total)
    if isinstance(left_size, float) and isinstance(right_size, float) and left_size + right_size > 1:
        raise ConfigError(f"split_dataset: left_size + right_size must be <= 1; received "
                          f"{left_size} + {right_size}")
    left = total - right if left is None else left  # type: ignore[operator]
    right = total - left if right is None else right
    if left + right > total:
        raise ConfigError(f"split_dataset: left_size + right_size ({int(left)} + {int(right)} "
                          f"samples) is more than the dataset's {total}")
    if not left or not right:
        raise ConfigError(f"split_dataset: with {total} samples, left_size={left_size} and "
                          f"right_size={right_size} leave one side empty")
    if shuffle:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        order = torch.randperm(total, generator=generator).tolist()
    else:
        order = list(range(total))
    left, right = int(left), int(right)
    return Subset(data, order[:left]), Subset(data, order[left:left + right])


__all__ = ["split_dataset"]
