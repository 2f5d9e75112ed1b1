"""``keras.applications.vgg16``: VGG16 (Simonyan & Zisserman, 2014), and the builder VGG19
(``vgg19.py``) shares: five blocks of 3x3 convolutions and max pooling, then two 4096-unit
layers. ``preprocess_input`` is Caffe-style (BGR minus the ImageNet mean)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's MD5s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "vgg16": ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
}


def VGG(convs_per_block: Sequence[int], name: str, include_top: bool = True,
        weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
        pooling: Any = None, classes: int = 1000, classifier_activation: Any = "softmax",
        files_key: str = "vgg16") -> Functional:
    """A VGG network with ``convs_per_block`` convolutions in each of its five blocks (64, 128,
    256, 512, 512 filters); ``files_key`` (``vgg16`` / ``vgg19``) picks the ImageNet files.

    Raises:
        ConfigError: Keras's argument errors (see ``base.check_weights`` and
            ``imagenet_utils.obtain_input_shape``), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     include_top=include_top, weights=weights)
    x = image
    for block, (filters, convs) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block), 1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
    stem = f"{files_key}_weights_tf_dim_ordering_tf_kernels"
    top, notop = WEIGHTS_HASHES[files_key]
    files = (keras_file(files_key, f"{stem}.h5", top),
             keras_file(files_key, f"{stem}_notop.h5", notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def VGG16(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
          input_shape: Any = None, pooling: Any = None, classes: int = 1000,
          classifier_activation: Any = "softmax", name: str = "vgg16") -> Functional:
    """Keras's VGG16: see :func:`VGG` for the arguments and errors."""
    return VGG((2, 2, 3, 3, 3), name, include_top, weights, input_tensor, input_shape, pooling,
               classes, classifier_activation, files_key="vgg16")


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Caffe-style ImageNet preprocessing (RGB -> BGR, minus the mean): see
    ``imagenet_utils.preprocess_input``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.vgg16", name)
