"""``keras.applications.inception_v3``: InceptionV3 (Szegedy et al., 2016): inception modules of
parallel 1x1, factorized 3x3 / 7x7 and pooling branches; default input 299x299 (at least 75).
``preprocess_input`` scales to ``[-1, 1]``.

Keras names only the modules' outputs (``mixed0`` ... ``mixed10``); the other layers get
automatic names, so Keras's published file loads by position, as Keras loads it.
"""

from __future__ import annotations

from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

_FILES = (keras_file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                      "9a0d58056eeedaa3f26cb7ebd46da564"),
          keras_file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "bcbd6486424b2319ff4ef7d526e38f63"))


def conv2d_bn(x: KerasTensor, filters: int, num_row: int, num_col: int, padding: str = "same",
              strides: tuple[int, int] = (1, 1), name: str | None = None) -> KerasTensor:
    """Conv2D (no bias) -> BatchNormalization (no scale) -> ReLU, Keras's building unit."""
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding,
                      use_bias=False, name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=3, scale=False,
                                  name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _chain(x: KerasTensor, specs: tuple[tuple[int, int, int], ...]) -> KerasTensor:
    """conv2d_bn units in sequence, each ``(filters, rows, cols)``."""
    for filters, rows, cols in specs:
        x = conv2d_bn(x, filters, rows, cols)
    return x


def _pool_branch(x: KerasTensor, filters: int) -> KerasTensor:
    x = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    return conv2d_bn(x, filters, 1, 1)


def _module_a(x: KerasTensor, pool_filters: int, name: str) -> KerasTensor:
    branches = [conv2d_bn(x, 64, 1, 1), _chain(x, ((48, 1, 1), (64, 5, 5))),
                _chain(x, ((64, 1, 1), (96, 3, 3), (96, 3, 3))), _pool_branch(x, pool_filters)]
    return layers.concatenate(branches, axis=3, name=name)


def _module_c(x: KerasTensor, width: int, name: str) -> KerasTensor:
    """The 17x17 module with factorized 7x7 convolutions of ``width`` filters."""
    branches = [conv2d_bn(x, 192, 1, 1),
                _chain(x, ((width, 1, 1), (width, 1, 7), (192, 7, 1))),
                _chain(x, ((width, 1, 1), (width, 7, 1), (width, 1, 7), (width, 7, 1),
                           (192, 1, 7))),
                _pool_branch(x, 192)]
    return layers.concatenate(branches, axis=3, name=name)


def _module_e(x: KerasTensor, index: int) -> KerasTensor:
    """The 8x8 module whose 3x3 branches split into parallel 1x3 and 3x1 convolutions."""
    branch1x1 = conv2d_bn(x, 320, 1, 1)
    branch3x3 = conv2d_bn(x, 384, 1, 1)
    branch3x3 = layers.concatenate([conv2d_bn(branch3x3, 384, 1, 3),
                                    conv2d_bn(branch3x3, 384, 3, 1)], axis=3,
                                   name=f"mixed9_{index}")
    double = _chain(x, ((448, 1, 1), (384, 3, 3)))
    double = layers.concatenate([conv2d_bn(double, 384, 1, 3), conv2d_bn(double, 384, 3, 1)],
                                axis=3)
    return layers.concatenate([branch1x1, branch3x3, double, _pool_branch(x, 192)], axis=3,
                              name=f"mixed{9 + index}")


def InceptionV3(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
                input_shape: Any = None, pooling: Any = None, classes: int = 1000,
                classifier_activation: Any = "softmax",
                name: str = "inception_v3") -> Functional:
    """Keras's InceptionV3.

    Raises:
        ConfigError: Keras's argument errors (see ``base.check_weights``,
            ``imagenet_utils.obtain_input_shape``: sides of at least 75), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=299, min_size=75,
                                     include_top=include_top, weights=weights)
    x = conv2d_bn(image, 32, 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = conv2d_bn(x, 64, 3, 3)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for index, pool_filters in enumerate((32, 64, 64)):
        x = _module_a(x, pool_filters, f"mixed{index}")
    x = layers.concatenate([  # mixed3: reduction to 17x17
        conv2d_bn(x, 384, 3, 3, strides=(2, 2), padding="valid"),
        conv2d_bn(_chain(x, ((64, 1, 1), (96, 3, 3))), 96, 3, 3, strides=(2, 2),
                  padding="valid"),
        layers.MaxPooling2D((3, 3), strides=(2, 2))(x)], axis=3, name="mixed3")
    for index, width in enumerate((128, 160, 160, 192), start=4):
        x = _module_c(x, width, f"mixed{index}")
    x = layers.concatenate([  # mixed8: reduction to 8x8
        conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, strides=(2, 2), padding="valid"),
        conv2d_bn(_chain(x, ((192, 1, 1), (192, 1, 7), (192, 7, 1))), 192, 3, 3,
                  strides=(2, 2), padding="valid"),
        layers.MaxPooling2D((3, 3), strides=(2, 2))(x)], axis=3, name="mixed8")
    x = _module_e(_module_e(x, 0), 1)
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
    raise unsupported_attribute("keras.applications.inception_v3", name)
