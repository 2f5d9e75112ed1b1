"""Keras-compatible data sets: ``from bigmodel.keras.datasets import imdb, mnist, ...``.

MNIST / Fashion-MNIST read IDX files (local first); the others download Keras's own files with
:func:`bigmodel.keras.utils.get_file` into ``~/.keras/datasets`` on first use.
"""

from bigmodel.keras.datasets import (
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
)
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["boston_housing", "california_housing", "cifar10", "cifar100", "fashion_mnist", "imdb",
           "mnist", "reuters"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.datasets", name)
