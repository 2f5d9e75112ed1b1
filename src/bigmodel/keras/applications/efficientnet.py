"""``keras.applications.efficientnet``: EfficientNetB0 ... B7 (Tan & Le, 2019): mobile inverted
bottlenecks with squeeze-and-excitation, scaled in width, depth and resolution.

The models take pixels in ``[0, 255]``: rescaling and ImageNet normalization are their first
layers (``Rescaling``, ``Normalization``), so ``preprocess_input`` returns its input, as in Keras.
"""

from __future__ import annotations

import math
from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.mobilenet_v2 import make_divisible
from bigmodel.keras.applications.weights_file import WeightsFile
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's MD5s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
# (kernel, repeats, filters in, filters out, expand ratio, strides) of the seven stages; every
# block keeps the identity skip and squeezes to a quarter of its input filters
DEFAULT_BLOCKS = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
                  (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
                  (3, 1, 192, 320, 6, 1))
CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                           "config": {"scale": 2.0, "mode": "fan_out",
                                      "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 1.0 / 3.0, "mode": "fan_out",
                                       "distribution": "uniform"}}
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
# (width, depth, default size, dropout) of B0 ... B7
_SCALING = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
            "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
            "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def _conv(filters: int, kernel: int, name: str, **kwargs: Any) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, padding=kwargs.pop("padding", "same"),
                         kernel_initializer=CONV_KERNEL_INITIALIZER, name=name, **kwargs)


def block(inputs: KerasTensor, activation: Any = "swish", drop_rate: float = 0.0,
          name: str = "", filters_in: int = 32, filters_out: int = 16, kernel_size: int = 3,
          strides: int = 1, expand_ratio: int = 1, se_ratio: float = 0.0,
          id_skip: bool = True) -> KerasTensor:
    """One mobile inverted bottleneck: expand, depthwise conv, squeeze-excite, project, and the
    identity skip (with per-sample dropout) when the shape allows."""
    filters = filters_in * expand_ratio
    x = inputs
    if expand_ratio != 1:
        x = _conv(filters, 1, f"{name}expand_conv", use_bias=False)(x)
        x = layers.BatchNormalization(axis=3, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    if strides == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{name}dwconv_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=strides,
                               padding="valid" if strides == 2 else "same", use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER,
                               name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = _conv(max(1, int(filters_in * se_ratio)), 1, f"{name}se_reduce",
                   activation=activation)(se)
        se = _conv(filters, 1, f"{name}se_expand", activation="sigmoid")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = _conv(filters_out, 1, f"{name}project_conv", use_bias=False)(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNet(width_coefficient: float, depth_coefficient: float, default_size: int,
                 dropout_rate: float = 0.2, drop_connect_rate: float = 0.2,
                 depth_divisor: int = 8, activation: Any = "swish", name: str = "efficientnet",
                 include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
                 input_shape: Any = None, pooling: Any = None, classes: int = 1000,
                 classifier_activation: Any = "softmax",
                 weights_name: str | None = None) -> Functional:
    """An EfficientNet scaled by ``width_coefficient`` (filters) and ``depth_coefficient``
    (blocks per stage) from B0's seven stages.

    Raises:
        ConfigError: Keras's argument errors, an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=default_size,
                                     min_size=32, include_top=include_top, weights=weights)

    def round_filters(filters: float) -> int:
        return make_divisible(filters * width_coefficient, depth_divisor)

    def round_repeats(repeats: int) -> int:
        return int(math.ceil(depth_coefficient * repeats))

    x = layers.Rescaling(1.0 / 255.0)(image)
    x = layers.Normalization(axis=3)(x)  # ImageNet mean / variance come with the weights
    if weights == "imagenet":  # Keras's published statistics hold variance where std belongs
        x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = _conv(round_filters(32), 3, "stem_conv", strides=2, padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization(axis=3, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)
    total = float(sum(round_repeats(stage[1]) for stage in DEFAULT_BLOCKS))
    index = 0
    for i, (kernel, repeats, filters_in, filters_out, expand, strides) in enumerate(
            DEFAULT_BLOCKS):
        filters_in, filters_out = round_filters(filters_in), round_filters(filters_out)
        for j in range(round_repeats(repeats)):
            x = block(x, activation, drop_connect_rate * index / total,
                      name=f"block{i + 1}{chr(j + 97)}_",
                      filters_in=filters_in if j == 0 else filters_out,
                      filters_out=filters_out, kernel_size=kernel,
                      strides=strides if j == 0 else 1, expand_ratio=expand, se_ratio=0.25)
            index += 1
    x = _conv(round_filters(1280), 1, "top_conv", use_bias=False)(x)
    x = layers.BatchNormalization(axis=3, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation,
                         kernel_initializer=DENSE_KERNEL_INITIALIZER, name="predictions")(x)
    else:
        x = base.pooled(x, pooling)
    files = None
    if weights_name in WEIGHTS_HASHES:  # Keras names the file after the model's name
        top, notop = WEIGHTS_HASHES[weights_name]
        files = (WeightsFile(f"keras-applications/{name}.h5", top),
                 WeightsFile(f"keras-applications/{name}_notop.h5", notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def efficientnet_application(variant: str) -> Any:
    """The Keras application function ``EfficientNet<variant>`` (B0 ... B7)."""
    width, depth, size, dropout = _SCALING[variant]

    def application(include_top: bool = True, weights: Any = "imagenet",
                    input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                    classes: int = 1000, classifier_activation: Any = "softmax",
                    name: str = f"efficientnet{variant}") -> Functional:
        return EfficientNet(width, depth, size, dropout, name=name, include_top=include_top,
                            weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                            pooling=pooling, classes=classes,
                            classifier_activation=classifier_activation, weights_name=variant)

    application.__name__ = f"EfficientNet{variant.upper()}"
    application.__doc__ = (f"Keras's EfficientNet{variant.upper()} (width {width}, depth {depth}, "
                           f"{size}x{size} input): see :func:`EfficientNet`.")
    return application


EfficientNetB0 = efficientnet_application("b0")
EfficientNetB1 = efficientnet_application("b1")
EfficientNetB2 = efficientnet_application("b2")
EfficientNetB3 = efficientnet_application("b3")
EfficientNetB4 = efficientnet_application("b4")
EfficientNetB5 = efficientnet_application("b5")
EfficientNetB6 = efficientnet_application("b6")
EfficientNetB7 = efficientnet_application("b7")


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Returns ``x`` unchanged: EfficientNet models normalize their input themselves."""
    return x


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.efficientnet", name)
