"""``keras.applications.inception_resnet_v2``: InceptionResNetV2 (Szegedy et al., 2017):
inception modules whose output is added, scaled, to a residual shortcut; default input 299x299
(at least 75). ``preprocess_input`` scales to ``[-1, 1]``."""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

_FILES = (keras_file("inception_resnet_v2",
                     "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                     "e693bd0210a403b3192acc6073ad2e96"),
          keras_file("inception_resnet_v2",
                     "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "d19885ff4a710c122648d3b5c3b684e4"))


class CustomScaleLayer(Layer):
    """``inputs[0] + inputs[1] * scale``: the shortcut plus the scaled residual (Keras's layer
    of this name, no weights)."""

    # what .keras archives name as its module (real Keras finds the class there)
    keras_module = "keras.src.applications.inception_resnet_v2"

    def __init__(self, scale: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = scale

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def call(self, inputs: Any) -> Any:
        return inputs[0] + inputs[1] * self.scale


def conv2d_bn(x: KerasTensor, filters: int, kernel_size: Any, strides: int = 1,
              padding: str = "same", activation: Any = "relu", use_bias: bool = False,
              name: str | None = None) -> KerasTensor:
    """Conv2D, then BatchNormalization (no scale) unless it has a bias, then the activation."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                      name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=3, scale=False,
                                      name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def _chain(x: KerasTensor, specs: tuple) -> KerasTensor:
    for filters, kernel in specs:
        x = conv2d_bn(x, filters, kernel)
    return x


# the residual branches of each block type: ((filters, kernel), ...) per branch
_BRANCHES = {
    "block35": (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (48, 3), (64, 3))),
    "block17": (((192, 1),), ((128, 1), (160, [1, 7]), (192, [7, 1]))),
    "block8": (((192, 1),), ((192, 1), (224, [1, 3]), (256, [3, 1]))),
}


def inception_resnet_block(x: KerasTensor, scale: float, block_type: str, block_idx: int,
                           activation: Any = "relu") -> KerasTensor:
    """``x + scale * residual`` where the residual is an inception module of ``block_type``.

    Raises:
        ConfigError: an unknown ``block_type``.
    """
    if block_type not in _BRANCHES:
        raise ConfigError("Unknown Inception-ResNet block type. Expects \"block35\", "
                          f"\"block17\" or \"block8\", but got: {block_type}")
    branches = [_chain(x, specs) for specs in _BRANCHES[block_type]]
    block_name = f"{block_type}_{block_idx}"
    mixed = layers.Concatenate(axis=3, name=f"{block_name}_mixed")(branches)
    up = conv2d_bn(mixed, x.shape[3], 1, activation=None, use_bias=True,
                   name=f"{block_name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{block_name}_ac")(x)
    return x


def InceptionResNetV2(include_top: bool = True, weights: Any = "imagenet",
                      input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                      classes: int = 1000, classifier_activation: Any = "softmax",
                      name: str = "inception_resnet_v2") -> Functional:
    """Keras's InceptionResNetV2.

    Raises:
        ConfigError: Keras's argument errors (sides of at least 75), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=299, min_size=75,
                                     include_top=include_top, weights=weights)
    x = conv2d_bn(image, 32, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, padding="valid")
    x = conv2d_bn(x, 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(x, 80, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = layers.Concatenate(axis=3, name="mixed_5b")([
        conv2d_bn(x, 96, 1), _chain(x, ((48, 1), (64, 5))),
        _chain(x, ((64, 1), (96, 3), (96, 3))),
        conv2d_bn(layers.AveragePooling2D(3, strides=1, padding="same")(x), 64, 1)])
    for block_idx in range(1, 11):
        x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=block_idx)
    x = layers.Concatenate(axis=3, name="mixed_6a")([
        conv2d_bn(x, 384, 3, strides=2, padding="valid"),
        conv2d_bn(_chain(x, ((256, 1), (256, 3))), 384, 3, strides=2, padding="valid"),
        layers.MaxPooling2D(3, strides=2, padding="valid")(x)])
    for block_idx in range(1, 21):
        x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=block_idx)
    x = layers.Concatenate(axis=3, name="mixed_7a")([
        conv2d_bn(conv2d_bn(x, 256, 1), 384, 3, strides=2, padding="valid"),
        conv2d_bn(conv2d_bn(x, 256, 1), 288, 3, strides=2, padding="valid"),
        conv2d_bn(_chain(x, ((256, 1), (288, 3))), 320, 3, strides=2, padding="valid"),
        layers.MaxPooling2D(3, strides=2, padding="valid")(x)])
    for block_idx in range(1, 10):
        x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=block_idx)
    x = inception_resnet_block(x, scale=1.0, activation=None, block_type="block8",
                               block_idx=10)
    x = conv2d_bn(x, 1536, 1, name="conv_7b")
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
    raise unsupported_attribute("keras.applications.inception_resnet_v2", name)
