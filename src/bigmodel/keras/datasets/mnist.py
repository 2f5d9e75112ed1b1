"""MNIST: 70,000 28x28 grayscale images of handwritten digits, as ``keras.datasets.mnist``."""

from __future__ import annotations

import os

import numpy as np

from bigmodel.data.datasets import load_dataset

__all__ = ["load_data"]


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST like ``keras.datasets.mnist.load_data()``, from the IDX files.

    The four IDX files are looked for in ``path``, ``$BIGMODEL_DATA/mnist``, ``$BIGMODEL_DATA``
    and ``~/.cache/bigmodel/mnist`` (Debian has no MNIST package), then downloaded into the cache
    unless ``BIGMODEL_OFFLINE=1`` (see :mod:`bigmodel.data.datasets`).

    Args:
        path: a directory holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (gzip-compressed or
            not), searched first. Unlike Keras (``path="mnist.npz"``, a file name inside its
            cache), a directory.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes ``(60000, 28, 28)``,
        ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``; pixels in 0..255, digits 0..9.

    Raises:
        DataFileError: no place holds valid files and the download is disabled or failed; the
            message lists each place tried, why it failed, and how to fix it.
    """
    return load_dataset("mnist", path)
