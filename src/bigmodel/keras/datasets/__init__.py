"""Keras-compatible data sets: ``from bigmodel.keras.datasets import fashion_mnist, mnist``."""

from bigmodel.keras.datasets import fashion_mnist, mnist
from bigmodel.keras.unsupported import namespace, unsupported_attribute

# Loaders bigmodel does not have (they download their data): every name in them raises.
boston_housing = namespace("keras.datasets.boston_housing")
california_housing = namespace("keras.datasets.california_housing")
cifar10 = namespace("keras.datasets.cifar10")
cifar100 = namespace("keras.datasets.cifar100")
imdb = namespace("keras.datasets.imdb")
reuters = namespace("keras.datasets.reuters")

__all__ = ["fashion_mnist", "mnist"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.datasets", name)
