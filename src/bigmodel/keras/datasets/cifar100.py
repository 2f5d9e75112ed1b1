"""CIFAR-100, as ``keras.datasets.cifar100``."""

from bigmodel.keras.datasets.cifar import load_cifar100 as load_data

__all__ = ["load_data"]
