"""``keras.applications.mobilenet_v3``: MobileNetV3Small and MobileNetV3Large (Howard et al.,
2019): inverted residual blocks with squeeze-and-excitation and hard-swish, found by architecture
search; ``minimalistic`` variants use ReLU, 3x3 kernels and no squeeze-excite.

The models take pixels in ``[0, 255]`` (``include_preprocessing=True`` rescales them to
``[-1, 1]`` inside), so ``preprocess_input`` returns its input, as in Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.mobilenet_v2 import make_divisible
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's MD5s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb",
                             "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7",
                            "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c",
                                         "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7",
                             "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862",
                            "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37",
                                         "cde8136e733e811080d9fcd8a252f7e4"),
}
# (expansion, filters, kernel or None for the variant's, stride, squeeze-excite, activation or
# None for the variant's) of each inverted residual block
_SMALL = ((1, 16, 3, 2, True, "relu"), (72 / 16, 24, 3, 2, False, "relu"),
          (88 / 24, 24, 3, 1, False, "relu"), (4, 40, None, 2, True, None),
          (6, 40, None, 1, True, None), (6, 40, None, 1, True, None),
          (3, 48, None, 1, True, None), (3, 48, None, 1, True, None),
          (6, 96, None, 2, True, None), (6, 96, None, 1, True, None),
          (6, 96, None, 1, True, None))
_LARGE = ((1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"),
          (3, 24, 3, 1, False, "relu"), (3, 40, None, 2, True, "relu"),
          (3, 40, None, 1, True, "relu"), (3, 40, None, 1, True, "relu"),
          (6, 80, 3, 2, False, None), (2.5, 80, 3, 1, False, None),
          (2.3, 80, 3, 1, False, None), (2.3, 80, 3, 1, False, None),
          (6, 112, 3, 1, True, None), (6, 112, 3, 1, True, None),
          (6, 160, None, 2, True, None), (6, 160, None, 1, True, None),
          (6, 160, None, 1, True, None))


def relu(x: KerasTensor) -> KerasTensor:
    return layers.ReLU()(x)


def hard_sigmoid(x: KerasTensor) -> KerasTensor:
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def hard_swish(x: KerasTensor) -> KerasTensor:
    return layers.Activation("hard_swish")(x)


def _bn(x: KerasTensor, name: str) -> KerasTensor:
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)(x)


def _se_block(inputs: KerasTensor, filters: int, se_ratio: float, prefix: str) -> KerasTensor:
    x = layers.GlobalAveragePooling2D(keepdims=True,
                                      name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(make_divisible(filters * se_ratio, 8), kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv_1")(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, hard_sigmoid(x)])


def _inverted_res_block(x: KerasTensor, expansion: float, filters: int, kernel_size: int,
                        stride: int, se_ratio: float | None,
                        activation: Callable[[KerasTensor], KerasTensor],
                        block_id: int) -> KerasTensor:
    shortcut, infilters = x, x.shape[-1]
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = layers.Conv2D(make_divisible(infilters * expansion, 8), kernel_size=1,
                          padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = activation(_bn(x, f"{prefix}expand_bn"))
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=stride,
                               padding="same" if stride == 1 else "valid", use_bias=False,
                               name=f"{prefix}depthwise")(x)
    x = activation(_bn(x, f"{prefix}depthwise_bn"))
    if se_ratio:
        x = _se_block(x, make_divisible(infilters * expansion, 8), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False,
                      name=f"{prefix}project")(x)
    x = _bn(x, f"{prefix}project_bn")
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def MobileNetV3(blocks: tuple, last_point_ch: int, input_shape: Any = None, alpha: float = 1.0,
                model_type: str = "large", minimalistic: bool = False, include_top: bool = True,
                weights: Any = "imagenet", input_tensor: Any = None, classes: int = 1000,
                pooling: Any = None, dropout_rate: float = 0.2,
                classifier_activation: Any = "softmax", include_preprocessing: bool = True,
                name: str | None = None) -> Functional:
    """A MobileNetV3 of the given inverted residual ``blocks`` (see ``_SMALL`` / ``_LARGE``).

    Raises:
        ConfigError: Keras's argument errors (unknown weights, ``classes`` with ImageNet
            weights, a side under 32, an ImageNet ``alpha`` other than 0.75 / 1.0, or 1.0 when
            ``minimalistic``), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    if input_shape is None and isinstance(input_tensor, KerasTensor):
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = (None, None, 3) if input_shape is None else tuple(input_shape)
    if any(side and side < 32 for side in input_shape[:2]):
        raise ConfigError(f"Input size must be at least 32x32; Received `input_shape="
                          f"{input_shape}`")
    if weights == "imagenet" and (alpha not in (0.75, 1.0) or (minimalistic and alpha != 1.0)):
        raise ConfigError("If imagenet weights are being loaded, alpha can be one of `0.75`, "
                          "`1.0` for non minimalistic or `1.0` for minimalistic only; received "
                          f"alpha={alpha}, minimalistic={minimalistic}")
    if input_tensor is None:
        image = inputs = layers.Input(shape=input_shape)
    else:
        image, inputs = base.image_input(input_tensor, input_shape, default_size=224,
                                         min_size=32, include_top=False, weights=None)
    kernel, activation, se_ratio = (3, relu, None) if minimalistic else (5, hard_swish, 0.25)
    x = image
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="conv")(x)
    x = activation(_bn(x, "conv_bn"))
    for block_id, (expansion, filters, size, stride, squeeze, act) in enumerate(blocks):
        x = _inverted_res_block(
            x, expansion, make_divisible(filters * alpha, 8), size or kernel, stride,
            se_ratio if squeeze else None, relu if act == "relu" else activation, block_id)
    last_conv_ch = make_divisible(x.shape[-1] * 6, 8)
    if alpha > 1.0:
        last_point_ch = make_divisible(last_point_ch * alpha, 8)
    x = layers.Conv2D(last_conv_ch, kernel_size=1, padding="same", use_bias=False,
                      name="conv_1")(x)
    x = activation(_bn(x, "conv_1_bn"))
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(last_point_ch, kernel_size=1, padding="same", use_bias=True,
                          name="conv_2")(x)
        x = activation(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = base.pooled(x, pooling)
    model_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    files = None
    if model_name in WEIGHTS_HASHES:
        top, notop = WEIGHTS_HASHES[model_name]
        files = (keras_file("mobilenet_v3", f"weights_mobilenet_v3_{model_name}.h5", top),
                 keras_file("mobilenet_v3", f"weights_mobilenet_v3_{model_name}_no_top_v2.h5",
                            notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def MobileNetV3Small(input_shape: Any = None, alpha: float = 1.0, minimalistic: bool = False,
                     include_top: bool = True, weights: Any = "imagenet",
                     input_tensor: Any = None, classes: int = 1000, pooling: Any = None,
                     dropout_rate: float = 0.2, classifier_activation: Any = "softmax",
                     include_preprocessing: bool = True,
                     name: str = "MobileNetV3Small") -> Functional:
    """Keras's MobileNetV3Small: see :func:`MobileNetV3`."""
    return MobileNetV3(_SMALL, 1024, input_shape, alpha, "small", minimalistic, include_top,
                       weights, input_tensor, classes, pooling, dropout_rate,
                       classifier_activation, include_preprocessing, name=name)


def MobileNetV3Large(input_shape: Any = None, alpha: float = 1.0, minimalistic: bool = False,
                     include_top: bool = True, weights: Any = "imagenet",
                     input_tensor: Any = None, classes: int = 1000, pooling: Any = None,
                     dropout_rate: float = 0.2, classifier_activation: Any = "softmax",
                     include_preprocessing: bool = True,
                     name: str = "MobileNetV3Large") -> Functional:
    """Keras's MobileNetV3Large: see :func:`MobileNetV3`."""
    return MobileNetV3(_LARGE, 1280, input_shape, alpha, "large", minimalistic, include_top,
                       weights, input_tensor, classes, pooling, dropout_rate,
                       classifier_activation, include_preprocessing, name=name)


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Returns ``x`` unchanged: MobileNetV3 models rescale their input themselves."""
    return x


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.mobilenet_v3", name)
