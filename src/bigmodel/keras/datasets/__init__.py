"""Keras-compatible data sets: ``from bigmodel.keras.datasets import fashion_mnist, mnist``."""

from bigmodel.keras.datasets import fashion_mnist, mnist

__all__ = ["fashion_mnist", "mnist"]
