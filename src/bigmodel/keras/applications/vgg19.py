"""``keras.applications.vgg19``: VGG19, built by ``vgg16.VGG`` (2, 2, 4, 4, 4 convolutions per
block); ``preprocess_input`` is Caffe-style."""

from __future__ import annotations

from typing import Any

from bigmodel.keras.applications.vgg16 import VGG, decode_predictions, preprocess_input
from bigmodel.keras.functional import Functional
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["VGG19", "decode_predictions", "preprocess_input"]


def VGG19(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
          input_shape: Any = None, pooling: Any = None, classes: int = 1000,
          classifier_activation: Any = "softmax", name: str = "vgg19") -> Functional:
    """Keras's VGG19: see ``vgg16.VGG`` for the arguments and errors."""
    return VGG((2, 2, 4, 4, 4), name, include_top, weights, input_tensor, input_shape, pooling,
               classes, classifier_activation, files_key="vgg19")


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.vgg19", name)
