"""``keras.applications.densenet``: DenseNet121, DenseNet169, DenseNet201 (Huang et al., 2017):
dense blocks whose layers each add 32 channels, joined by halving transitions.
``preprocess_input`` is torch-style (to ``[0, 1]``, then ImageNet mean / std)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's MD5s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "densenet121": ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    "densenet169": ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    "densenet201": ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}
_EPSILON = 1.001e-5


def _bn_relu(x: KerasTensor, name: str) -> KerasTensor:
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def conv_block(x: KerasTensor, growth_rate: int, name: str) -> KerasTensor:
    """BN-ReLU-1x1 conv (4 x growth) - BN-ReLU-3x3 conv (growth), concatenated to the input."""
    y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(
        _bn_relu(x, f"{name}_0"))
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(
        _bn_relu(y, f"{name}_1"))
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, y])


def dense_block(x: KerasTensor, blocks: int, name: str) -> KerasTensor:
    """``blocks`` conv blocks, each adding 32 channels."""
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x: KerasTensor, reduction: float, name: str) -> KerasTensor:
    """BN-ReLU-1x1 conv to ``reduction`` x the channels, then 2x2 average pooling."""
    x = _bn_relu(x, name)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(blocks: Sequence[int], include_top: bool = True, weights: Any = "imagenet",
             input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
             classes: int = 1000, classifier_activation: Any = "softmax",
             name: str = "densenet", weights_name: str | None = None) -> Functional:
    """A DenseNet with four dense blocks of ``blocks`` conv blocks.

    Raises:
        ConfigError: Keras's argument errors, an unknown ``pooling``, ImageNet weights for
            block counts Keras publishes none for.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     include_top=include_top, weights=weights)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(image)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, count in enumerate(blocks, start=2):
        x = dense_block(x, count, name=f"conv{stage}")
        if stage < 5:
            x = transition_block(x, 0.5, name=f"pool{stage}")
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling)
    files = None
    if weights_name in WEIGHTS_HASHES:
        stem = f"{weights_name}_weights_tf_dim_ordering_tf_kernels"
        top, notop = WEIGHTS_HASHES[weights_name]
        files = (keras_file("densenet", f"{stem}.h5", top),
                 keras_file("densenet", f"{stem}_notop.h5", notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def densenet_application(blocks: tuple[int, ...], default_name: str) -> Any:
    """A Keras application function (DenseNet121, ...) for one set of block counts."""

    def application(include_top: bool = True, weights: Any = "imagenet",
                    input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                    classes: int = 1000, classifier_activation: Any = "softmax",
                    name: str = default_name) -> Functional:
        return DenseNet(blocks, include_top, weights, input_tensor, input_shape, pooling,
                        classes, classifier_activation, name, weights_name=default_name)

    application.__doc__ = (f"Keras's ``{default_name}`` (dense blocks of {blocks} layers): see "
                           ":func:`DenseNet` for the arguments and errors.")
    return application


DenseNet121 = densenet_application((6, 12, 24, 16), "densenet121")
DenseNet169 = densenet_application((6, 12, 32, 32), "densenet169")
DenseNet201 = densenet_application((6, 12, 48, 32), "densenet201")
DenseNet121.__name__, DenseNet169.__name__ = "DenseNet121", "DenseNet169"
DenseNet201.__name__ = "DenseNet201"


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Torch-style ImageNet preprocessing: see ``imagenet_utils.preprocess_input``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.densenet", name)
