"""``keras.applications.xception``: Xception (Chollet, 2017): depthwise-separable convolutions
in residual blocks; default input 299x299 (at least 71). ``preprocess_input`` scales to
``[-1, 1]``."""

from __future__ import annotations

from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

_FILES = (keras_file("xception", "xception_weights_tf_dim_ordering_tf_kernels.h5",
                      "0a58e3b7378bc2990ea3b43d5981f1f6"),
          keras_file("xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "b0042744bf5b25fce3cb969f33bebb97"))


def _sepconv_bn(x: KerasTensor, filters: int, name: str) -> KerasTensor:
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _downsampling_block(x: KerasTensor, filters: tuple[int, int], block: int,
                        first_relu: bool = True) -> KerasTensor:
    """Two separable convs and a strided max pool, plus a strided 1x1 conv shortcut (Keras leaves
    the shortcut's layers and the add unnamed)."""
    residual = layers.Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same",
                             use_bias=False)(x)
    residual = layers.BatchNormalization(axis=-1)(residual)
    if first_relu:
        x = layers.Activation("relu", name=f"block{block}_sepconv1_act")(x)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1")
    x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
             input_shape: Any = None, pooling: Any = None, classes: int = 1000,
             classifier_activation: Any = "softmax", name: str = "xception") -> Functional:
    """Keras's Xception.

    Raises:
        ConfigError: Keras's argument errors (see ``base.check_weights``,
            ``imagenet_utils.obtain_input_shape``: sides of at least 71), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=299, min_size=71,
                                     include_top=include_top, weights=weights)
    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(image)
    x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    x = _downsampling_block(x, (128, 128), 2, first_relu=False)
    x = _downsampling_block(x, (256, 256), 3)
    x = _downsampling_block(x, (728, 728), 4)
    for block in range(5, 13):  # the middle flow: three separable convs, identity shortcut
        residual = x
        for conv in (1, 2, 3):
            x = layers.Activation("relu", name=f"block{block}_sepconv{conv}_act")(x)
            x = _sepconv_bn(x, 728, f"block{block}_sepconv{conv}")
        x = layers.add([x, residual])
    x = _downsampling_block(x, (728, 1024), 13)
    for conv, filters in ((1, 1536), (2, 2048)):
        x = _sepconv_bn(x, filters, f"block14_sepconv{conv}")
        x = layers.Activation("relu", name=f"block14_sepconv{conv}_act")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
    return base.finish(inputs, x, name, weights, _FILES, include_top)


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Scale pixels to ``[-1, 1]``: see ``imagenet_utils.preprocess_input`` (mode ``"tf"``)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.xception", name)
