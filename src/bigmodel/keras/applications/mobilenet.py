"""``keras.applications.mobilenet``: MobileNet (Howard et al., 2017: depthwise-separable
convolutions, width ``alpha``, ``depth_multiplier``), and the input-size rule it shares with
MobileNetV2 (``mobilenet_v2.py``). ``preprocess_input`` scales to ``[-1, 1]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# (pointwise filters, stride) of the 13 depthwise-separable blocks
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def weights_size(input_shape: Any, input_tensor: Any, sizes: Sequence[int]) -> int:
    """The square input side a MobileNet's ImageNet weights exist for (Keras's rule): the given
    side when square and in ``sizes``, else 224."""
    if input_shape is None and isinstance(input_tensor, KerasTensor):
        input_shape = input_tensor.shape[1:]
    if input_shape is None:
        return 224
    rows, cols = tuple(input_shape)[:2]
    return rows if rows == cols and rows in sizes else 224


def check_imagenet_alpha(weights: Any, alpha: float, allowed: Sequence[float]) -> None:
    """Raises ConfigError for ImageNet weights with a width Keras publishes none for."""
    if weights == "imagenet" and alpha not in allowed:
        raise ConfigError("If imagenet weights are being loaded, alpha must be one of "
                          f"{', '.join(map(str, allowed))} only; Received alpha={alpha}")


def _depthwise_block(x: KerasTensor, filters: int, depth_multiplier: int, stride: int,
                     block_id: int) -> KerasTensor:
    if stride != 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D((3, 3), padding="same" if stride == 1 else "valid",
                               depth_multiplier=depth_multiplier, strides=stride, use_bias=False,
                               name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(filters, (1, 1), padding="same", use_bias=False, strides=(1, 1),
                      name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def MobileNet(input_shape: Any = None, alpha: float = 1.0, depth_multiplier: int = 1,
              dropout: float = 1e-3, include_top: bool = True, weights: Any = "imagenet",
              input_tensor: Any = None, pooling: Any = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str | None = None) -> Functional:
    """Keras's MobileNet.

    Args:
        alpha: width multiplier of every layer's filters.
        depth_multiplier: depthwise channels per input channel.
        dropout: the classifier's dropout rate.
        the rest: Keras's application arguments; ``name`` defaults to
            ``mobilenet_<alpha>_<rows>``.

    Returns:
        The functional model.

    Raises:
        ConfigError: Keras's argument errors, and with ImageNet weights a ``depth_multiplier``
            other than 1 or an ``alpha`` other than 0.25, 0.5, 0.75, 1.0.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    size = weights_size(input_shape, None, (128, 160, 192, 224))
    image, inputs = base.image_input(input_tensor, input_shape, default_size=size, min_size=32,
                                     include_top=include_top, weights=weights)
    rows = image.shape[1]
    if weights == "imagenet":
        if depth_multiplier != 1:
            raise ConfigError("If imagenet weights are being loaded, depth multiplier must be "
                              f"1.  Received depth_multiplier={depth_multiplier}")
        check_imagenet_alpha(weights, alpha, (0.25, 0.5, 0.75, 1.0))
        rows = weights_size(image.shape[1:], None, (128, 160, 192, 224))
    x = layers.Conv2D(int(32 * alpha), (3, 3), padding="same", use_bias=False, strides=(2, 2),
                      name="conv1")(image)
    x = layers.BatchNormalization(axis=-1, name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _depthwise_block(x, int(filters * alpha), depth_multiplier, stride, block_id)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, (1, 1), padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
    if name is None:
        name = f"mobilenet_{alpha:0.2f}_{rows}"
    files = None
    if alpha in _ALPHA_TEXT:
        stem = f"mobilenet_{_ALPHA_TEXT[alpha]}_{rows}_tf"
        files = (keras_file("mobilenet", f"{stem}.h5"),
                 keras_file("mobilenet", f"{stem}_no_top.h5"))
    return base.finish(inputs, x, name, weights, files, include_top)


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Scale pixels to ``[-1, 1]``: see ``imagenet_utils.preprocess_input`` (mode ``"tf"``)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.mobilenet", name)
