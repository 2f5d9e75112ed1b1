"""CIFAR-10 and CIFAR-100 (60,000 32x32 colour images), as ``keras.datasets.cifar10`` /
``cifar100``: the Toronto ``*-python.tar.gz`` archives fetched and extracted with
:func:`~bigmodel.keras.utils.get_file`; their batches are pickled dicts, read without pickle
(:mod:`bigmodel.keras.datasets.safe_pickle`)."""

from __future__ import annotations

import os

import numpy as np

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.keras.config import image_data_format
from bigmodel.keras.datasets.safe_pickle import loads
from bigmodel.keras.utils_files import get_file

__all__ = ["load_batch", "load_cifar10", "load_cifar100"]

Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR100_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_batch(fpath: str, label_key: str = "labels") -> tuple[np.ndarray, list[int]]:
    """One CIFAR batch file: images ``(n, 3, 32, 32)`` uint8 and their labels.

    Raises:
        DataFileError: missing file, not a pickled dict with ``data`` and ``label_key``, or
            shapes that do not agree.
    """
    try:
        with open(fpath, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise DataFileError(f"CIFAR batch {fpath}: cannot read it ({err})") from err
    batch = loads(raw, f"CIFAR batch {fpath}")
    if not isinstance(batch, dict):
        raise DataFileError(f"CIFAR batch {fpath}: not a dict of arrays")
    batch = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFileError(f"CIFAR batch {fpath}: 'data' must be an (n, 3072) array")
    if labels is None or len(labels) != len(data):
        raise DataFileError(f"CIFAR batch {fpath}: {label_key!r} must hold one label per image")
    return data.astype(np.uint8).reshape(len(data), 3, 32, 32), list(labels)


def _finish(x_train: np.ndarray, y_train: list[int] | np.ndarray, x_test: np.ndarray,
            y_test: list[int] | np.ndarray) -> Splits:
    y_train = np.asarray(y_train, dtype=np.uint8).reshape(-1, 1)
    y_test = np.asarray(y_test, dtype=np.uint8).reshape(-1, 1)
    if image_data_format() == "channels_last":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test.astype(x_train.dtype), y_test)


def load_cifar10() -> Splits:
    """``((x_train, y_train), (x_test, y_test))``: uint8 images ``(50000, 32, 32, 3)`` /
    ``(10000, 32, 32, 3)`` (channels first under ``image_data_format() == "channels_first"``)
    and uint8 labels ``(n, 1)`` in 0..9."""
    path = get_file(fname="cifar-10-batches-py-target", origin=CIFAR10_ORIGIN, extract=True,
                    file_hash=CIFAR10_HASH)
    path = os.path.join(path, "cifar-10-batches-py")
    parts = [load_batch(os.path.join(path, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = load_batch(os.path.join(path, "test_batch"))
    return _finish(np.concatenate([p[0] for p in parts]), sum((p[1] for p in parts), []),
                   x_test, y_test)


def load_cifar100(label_mode: str = "fine") -> Splits:
    """As :func:`load_cifar10` with 100 ``"fine"`` or 20 ``"coarse"`` classes.

    Raises:
        ConfigError: another ``label_mode``.
    """
    if label_mode not in ("fine", "coarse"):
        raise ConfigError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: '
                          f"label_mode={label_mode!r}.")
    path = get_file(fname="cifar-100-python-target", origin=CIFAR100_ORIGIN, extract=True,
                    file_hash=CIFAR100_HASH)
    path = os.path.join(path, "cifar-100-python")
    x_train, y_train = load_batch(os.path.join(path, "train"), f"{label_mode}_labels")
    x_test, y_test = load_batch(os.path.join(path, "test"), f"{label_mode}_labels")
    return _finish(x_train, y_train, x_test, y_test)
