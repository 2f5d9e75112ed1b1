"""CIFAR-10, as ``keras.datasets.cifar10``."""

from bigmodel.keras.datasets.cifar import load_cifar10 as load_data

__all__ = ["load_data"]
