"""Fashion-MNIST: 70,000 28x28 grayscale images of clothing in 10 classes, as ``keras.datasets``."""

from __future__ import annotations

import os

import numpy as np

from bigmodel.data.datasets import load_dataset

__all__ = ["CLASS_NAMES", "load_data"]

# Label i is CLASS_NAMES[i] (from the data set's README).
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST like ``keras.datasets.fashion_mnist.load_data()``.

    The four IDX files are looked for in ``path``, ``$BIGMODEL_DATA/fashion-mnist``,
    ``$BIGMODEL_DATA``, ``~/.cache/bigmodel/fashion-mnist`` and the Debian package's
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``), then
    downloaded into the cache unless ``BIGMODEL_OFFLINE=1`` (see :mod:`bigmodel.data.datasets`).

    Args:
        path: a directory holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (gzip-compressed or
            not), searched first. Unlike Keras, not a file name inside a cache.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes ``(60000, 28, 28)``,
        ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``; pixels in 0..255, labels in 0..9
        (names in :data:`CLASS_NAMES`).

    Raises:
        DataFileError: no place holds valid files and the download is disabled or failed; the
            message lists each place tried, why it failed, and how to fix it.
    """
    return load_dataset("fashion-mnist", path)
