"""``keras.applications.efficientnet_v2``: EfficientNetV2B0 ... B3, S, M, L (Tan & Le, 2021):
fused (a full convolution in place of expand + depthwise) and plain MBConv blocks.

The models take pixels in ``[0, 255]``: ``include_preprocessing=True`` normalizes them inside
(ImageNet mean / variance for B0-B3, ``[-1, 1]`` for S/M/L), so ``preprocess_input`` returns its
input, as in Keras.
"""

from __future__ import annotations

import math
from typing import Any

from bigmodel.keras import initializers, layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.efficientnet import (
    CONV_KERNEL_INITIALIZER,
    DENSE_KERNEL_INITIALIZER,
)
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's MD5s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "b0": ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff"),
    "b1": ("069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37"),
    "b2": ("424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb"),
    "b3": ("1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856"),
    "-s": ("e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070"),
    "-m": ("a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342"),
    "-l": ("27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615"),
}
# (kernel, repeats, filters in, filters out, expand ratio, squeeze-excite ratio, strides, fused)
_B = ((3, 1, 32, 16, 1, 0, 1, True), (3, 2, 16, 32, 4, 0, 2, True),
      (3, 2, 32, 48, 4, 0, 2, True), (3, 3, 48, 96, 4, 0.25, 2, False),
      (3, 5, 96, 112, 6, 0.25, 1, False), (3, 8, 112, 192, 6, 0.25, 2, False))
BLOCKS = {
    "b": _B,
    "s": ((3, 2, 24, 24, 1, 0, 1, True), (3, 4, 24, 48, 4, 0, 2, True),
          (3, 4, 48, 64, 4, 0, 2, True), (3, 6, 64, 128, 4, 0.25, 2, False),
          (3, 9, 128, 160, 6, 0.25, 1, False), (3, 15, 160, 256, 6, 0.25, 2, False)),
    "m": ((3, 3, 24, 24, 1, 0, 1, True), (3, 5, 24, 48, 4, 0, 2, True),
          (3, 5, 48, 80, 4, 0, 2, True), (3, 7, 80, 160, 4, 0.25, 2, False),
          (3, 14, 160, 176, 6, 0.25, 1, False), (3, 18, 176, 304, 6, 0.25, 2, False),
          (3, 5, 304, 512, 6, 0.25, 1, False)),
    "l": ((3, 4, 32, 32, 1, 0, 1, True), (3, 7, 32, 64, 4, 0, 2, True),
          (3, 7, 64, 96, 4, 0, 2, True), (3, 10, 96, 192, 4, 0.25, 2, False),
          (3, 19, 192, 224, 6, 0.25, 1, False), (3, 25, 224, 384, 6, 0.25, 2, False),
          (3, 7, 384, 640, 6, 0.25, 1, False)),
}
# variant -> (width, depth, default size, blocks, key of the weights)
_VARIANTS = {"b0": (1.0, 1.0, 224, "b", "b0"), "b1": (1.0, 1.1, 240, "b", "b1"),
             "b2": (1.1, 1.2, 260, "b", "b2"), "b3": (1.2, 1.4, 300, "b", "b3"),
             "s": (1.0, 1.0, 384, "s", "-s"), "m": (1.0, 1.0, 480, "m", "-m"),
             "l": (1.0, 1.0, 480, "l", "-l")}


def round_filters(filters: float, width_coefficient: float, min_depth: int | None,
                  depth_divisor: int) -> int:
    """Filters scaled by the width and rounded to the divisor (no 10% bump, unlike V1)."""
    filters *= width_coefficient
    return int(max(min_depth or depth_divisor,
                   int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def _conv(filters: int, kernel: int, name: str, **kwargs: Any) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, padding="same",
                         kernel_initializer=CONV_KERNEL_INITIALIZER, name=name, **kwargs)


def _bn_act(x: KerasTensor, bn_name: str, act_name: str | None, activation: Any,
            momentum: float) -> KerasTensor:
    x = layers.BatchNormalization(axis=3, momentum=momentum, name=bn_name)(x)
    return layers.Activation(activation, name=act_name)(x) if act_name else x


def mbconv_block(inputs: KerasTensor, input_filters: int, output_filters: int,
                 expand_ratio: int = 1, kernel_size: int = 3, strides: int = 1,
                 se_ratio: float = 0.0, bn_momentum: float = 0.9, activation: Any = "swish",
                 survival_probability: float = 0.8, name: str = "",
                 fused: bool = False) -> KerasTensor:
    """A (fused) MBConv block: expand (a kxk conv when fused, else 1x1 then depthwise),
    squeeze-excite, project, and the dropped identity skip where the shape allows."""
    filters = input_filters * expand_ratio
    x = inputs
    if expand_ratio != 1:
        x = _conv(filters, kernel_size if fused else 1, f"{name}expand_conv",
                  strides=strides if fused else 1, use_bias=False)(x)
        x = _bn_act(x, f"{name}expand_bn", f"{name}expand_activation", activation, bn_momentum)
    if not fused:
        x = layers.DepthwiseConv2D(kernel_size=kernel_size, strides=strides,
                                   depthwise_initializer=CONV_KERNEL_INITIALIZER,
                                   padding="same", use_bias=False, name=f"{name}dwconv2")(x)
        x = _bn_act(x, f"{name}bn", f"{name}activation", activation, bn_momentum)
    if 0 < se_ratio <= 1:
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = _conv(max(1, int(input_filters * se_ratio)), 1, f"{name}se_reduce",
                   activation=activation)(se)
        se = _conv(filters, 1, f"{name}se_expand", activation="sigmoid")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    single = fused and expand_ratio == 1  # the fused block's only conv does the striding
    x = _conv(output_filters, kernel_size if single else 1, f"{name}project_conv",
              strides=strides if single else 1, use_bias=False)(x)
    x = _bn_act(x, f"{name}project_bn", f"{name}project_activation" if single else None,
                activation, bn_momentum)
    if strides == 1 and input_filters == output_filters:
        if survival_probability:
            x = layers.Dropout(survival_probability, noise_shape=(None, 1, 1, 1),
                               name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNetV2(variant: str, dropout_rate: float = 0.2, drop_connect_rate: float = 0.2,
                   depth_divisor: int = 8, min_depth: int = 8, bn_momentum: float = 0.9,
                   activation: Any = "swish", name: str = "efficientnetv2",
                   include_top: bool = True, weights: Any = "imagenet",
                   input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                   classes: int = 1000, classifier_activation: Any = "softmax",
                   include_preprocessing: bool = True) -> Functional:
    """The EfficientNetV2 ``variant`` (``"b0"`` ... ``"b3"``, ``"s"``, ``"m"``, ``"l"``).

    Raises:
        ConfigError: Keras's argument errors, an unknown ``pooling``.
    """
    width, depth, default_size, blocks_key, weights_key = _VARIANTS[variant]
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=default_size,
                                     min_size=32, include_top=include_top, weights=weights)
    x = image
    if include_preprocessing:
        if blocks_key == "b" and image.shape[-1] == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=[0.485, 0.456, 0.406],
                                     variance=[0.229**2, 0.224**2, 0.225**2], axis=3)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)
    stages = BLOCKS[blocks_key]

    def rounded(filters: float) -> int:
        return round_filters(filters, width, min_depth, depth_divisor)

    x = _conv(rounded(stages[0][2]), 3, "stem_conv", strides=2, use_bias=False)(x)
    x = _bn_act(x, "stem_bn", "stem_activation", activation, bn_momentum)
    total, index = float(sum(stage[1] for stage in stages)), 0
    for i, (kernel, repeats, filters_in, filters_out, expand, se_ratio, strides,
            fused) in enumerate(stages):
        filters_in, filters_out = rounded(filters_in), rounded(filters_out)
        for j in range(int(math.ceil(depth * repeats))):
            x = mbconv_block(x, filters_in if j == 0 else filters_out, filters_out,
                             expand_ratio=expand, kernel_size=kernel,
                             strides=strides if j == 0 else 1, se_ratio=se_ratio,
                             bn_momentum=bn_momentum, activation=activation,
                             survival_probability=drop_connect_rate * index / total,
                             name=f"block{i + 1}{chr(j + 97)}_", fused=fused)
            index += 1
    x = _conv(rounded(1280), 1, "top_conv", strides=1, use_bias=False)(x)
    x = _bn_act(x, "top_bn", "top_activation", activation, bn_momentum)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation,
                         kernel_initializer=DENSE_KERNEL_INITIALIZER,
                         bias_initializer=initializers.Constant(0.0), name="predictions")(x)
    else:
        x = base.pooled(x, pooling)
    top, notop = WEIGHTS_HASHES[weights_key]  # Keras names the file after the model's name
    files = (keras_file("efficientnet_v2", f"{name}.h5", top),
             keras_file("efficientnet_v2", f"{name}_notop.h5", notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def efficientnet_v2_application(variant: str) -> Any:
    """The Keras application function ``EfficientNetV2<variant>``."""
    label = variant.upper()

    def application(include_top: bool = True, weights: Any = "imagenet",
                    input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                    classes: int = 1000, classifier_activation: Any = "softmax",
                    include_preprocessing: bool = True,
                    name: str = f"efficientnetv2-{variant}") -> Functional:
        return EfficientNetV2(variant, name=name, include_top=include_top, weights=weights,
                              input_tensor=input_tensor, input_shape=input_shape,
                              pooling=pooling, classes=classes,
                              classifier_activation=classifier_activation,
                              include_preprocessing=include_preprocessing)

    application.__name__ = f"EfficientNetV2{label}"
    application.__doc__ = f"Keras's EfficientNetV2{label}: see :func:`EfficientNetV2`."
    return application


EfficientNetV2B0 = efficientnet_v2_application("b0")
EfficientNetV2B1 = efficientnet_v2_application("b1")
EfficientNetV2B2 = efficientnet_v2_application("b2")
EfficientNetV2B3 = efficientnet_v2_application("b3")
EfficientNetV2S = efficientnet_v2_application("s")
EfficientNetV2M = efficientnet_v2_application("m")
EfficientNetV2L = efficientnet_v2_application("l")


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Returns ``x`` unchanged: EfficientNetV2 models normalize their input themselves."""
    return x


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.efficientnet_v2", name)
