"""``keras.applications.mobilenet_v2``: MobileNetV2 (Sandler et al., 2018: inverted residual
blocks with linear bottlenecks, width ``alpha``). ``preprocess_input`` scales to ``[-1, 1]``."""

from __future__ import annotations

from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.mobilenet import check_imagenet_alpha, weights_size
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# (filters, stride, expansion) of the 17 inverted residual blocks
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
           (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
           (160, 1, 6), (160, 1, 6), (320, 1, 6))
_SIZES = (96, 128, 160, 192, 224)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10% below it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _bn(x: KerasTensor, name: str) -> KerasTensor:
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)(x)


def _inverted_res_block(inputs: KerasTensor, expansion: int, stride: int, alpha: float,
                        filters: int, block_id: int) -> KerasTensor:
    in_channels = inputs.shape[-1]
    pointwise_filters = make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False,
                          activation=None, name=f"{prefix}expand")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(_bn(x, f"{prefix}expand_BN"))
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3),
                                 name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid",
                               name=f"{prefix}depthwise")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(_bn(x, f"{prefix}depthwise_BN"))
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False,
                      activation=None, name=f"{prefix}project")(x)
    x = _bn(x, f"{prefix}project_BN")
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def MobileNetV2(input_shape: Any = None, alpha: float = 1.0, include_top: bool = True,
                weights: Any = "imagenet", input_tensor: Any = None, pooling: Any = None,
                classes: int = 1000, classifier_activation: Any = "softmax",
                name: str | None = None) -> Functional:
    """Keras's MobileNetV2.

    Args:
        alpha: width multiplier of every block's filters.
        the rest: Keras's application arguments; ``name`` defaults to
            ``mobilenetv2_<alpha>_<rows>``.

    Returns:
        The functional model.

    Raises:
        ConfigError: Keras's argument errors, and with ImageNet weights an ``alpha`` other than
            0.35, 0.5, 0.75, 1.0, 1.3, 1.4.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    size = weights_size(input_shape, input_tensor, _SIZES)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=size, min_size=32,
                                     include_top=include_top, weights=weights)
    rows = image.shape[1]
    if weights == "imagenet":
        check_imagenet_alpha(weights, alpha, (0.35, 0.5, 0.75, 1.0, 1.3, 1.4))
        rows = weights_size(image.shape[1:], None, _SIZES)
    x = layers.Conv2D(make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2),
                      padding="same", use_bias=False, name="Conv1")(image)
    x = layers.ReLU(6.0, name="Conv1_relu")(_bn(x, "bn_Conv1"))
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride,
                                expansion=expansion, block_id=block_id)
    last_filters = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_bn(x, "Conv_1_bn"))
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    stem = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
    files = (keras_file("mobilenet_v2", f"{stem}.h5"),
             keras_file("mobilenet_v2", f"{stem}_no_top.h5"))
    return base.finish(inputs, x, name, weights, files, include_top)


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Scale pixels to ``[-1, 1]``: see ``imagenet_utils.preprocess_input`` (mode ``"tf"``)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.mobilenet_v2", name)
