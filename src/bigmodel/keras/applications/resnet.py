"""``keras.applications.resnet``: ResNet50, ResNet101 and ResNet152 (He et al., 2015), and the
builder and residual blocks ResNetV2 (``resnet_v2.py``) shares.

Layer names, order and parameter counts are Keras 3's, so Keras's published ImageNet files load
by layer name. Images are ``(batch, H, W, 3)``; ``preprocess_input`` is Caffe-style (BGR minus the
ImageNet mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import WeightsFile, keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's hashes of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
_EPSILON = 1.001e-5


def _imagenet_files(weights_name: str) -> tuple[WeightsFile, WeightsFile]:
    top, notop = WEIGHTS_HASHES[weights_name]
    stem = f"{weights_name}_weights_tf_dim_ordering_tf_kernels"
    return (keras_file("resnet", f"{stem}.h5", top),
            keras_file("resnet", f"{stem}_notop.h5", notop))


def _bn(x: KerasTensor, name: str) -> KerasTensor:
    return layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=name)(x)


def residual_block_v1(x: KerasTensor, filters: int, kernel_size: int = 3, stride: int = 1,
                      conv_shortcut: bool = True, name: str = "") -> KerasTensor:
    """The post-activation bottleneck block: 1x1 -> kxk -> 1x1 (4x filters), plus the shortcut."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(shortcut, f"{name}_0_bn")
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = _bn(layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x), f"{name}_3_bn")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x: KerasTensor, filters: int, blocks: int, stride1: int = 2,
                             name: str = "") -> KerasTensor:
    """``blocks`` v1 blocks; the first one projects the shortcut and strides by ``stride1``."""
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x: KerasTensor, filters: int, kernel_size: int = 3, stride: int = 1,
                      conv_shortcut: bool = False, name: str = "") -> KerasTensor:
    """The pre-activation bottleneck block of ResNetV2 (BN-ReLU before each convolution)."""
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(_bn(x, f"{name}_preact_bn"))
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False,
                      name=f"{name}_2_conv")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x: KerasTensor, filters: int, blocks: int, stride1: int = 2,
                             name: str = "") -> KerasTensor:
    """``blocks`` v2 blocks; the first projects the shortcut, the last strides by ``stride1``."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def ResNet(depths: Sequence[int], preact: bool, include_top: bool = True,
           weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
           pooling: Any = None, classes: int = 1000, classifier_activation: Any = "softmax",
           name: str = "resnet", weights_name: str | None = None) -> Functional:
    """A ResNet (``preact=False``) or ResNetV2 (``preact=True``) with four stages of ``depths``
    bottleneck blocks (64, 128, 256, 512 filters).

    Args:
        depths: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet50.
        preact: pre-activation blocks (V2) or post-activation (V1).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: Keras's application arguments.
        weights_name: the key of the published ImageNet files.

    Returns:
        The functional model.

    Raises:
        ConfigError: Keras's argument errors (unknown weights, ``classes`` != 1000 or another
            ``input_shape`` with ImageNet weights and the top, ...), or an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    image, inputs = base.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     include_top=include_top, weights=weights)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(image)
    x = layers.Conv2D(64, 7, strides=2, use_bias=True, name="conv1_conv")(x)
    if not preact:
        x = layers.Activation("relu", name="conv1_relu")(_bn(x, "conv1_bn"))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    stages = zip(("conv2", "conv3", "conv4", "conv5"), (64, 128, 256, 512), depths)
    for i, (stage, filters, blocks) in enumerate(stages):
        if preact:  # V2 strides at the end of every stage but the last
            x = stack_residual_blocks_v2(x, filters, blocks, stride1=1 if i == 3 else 2,
                                         name=stage)
        else:  # V1 strides at the start of every stage but the first
            x = stack_residual_blocks_v1(x, filters, blocks, stride1=1 if i == 0 else 2,
                                         name=stage)
    if preact:
        x = layers.Activation("relu", name="post_relu")(_bn(x, "post_bn"))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling)
    files = _imagenet_files(weights_name) if weights_name in WEIGHTS_HASHES else None
    return base.finish(inputs, x, name, weights, files, include_top)


def resnet_application(depths: tuple[int, ...], default_name: str) -> Any:
    """A Keras application function (ResNet50, ...) for one depth."""

    def application(include_top: bool = True, weights: Any = "imagenet",
                    input_tensor: Any = None, input_shape: Any = None, pooling: Any = None,
                    classes: int = 1000, classifier_activation: Any = "softmax",
                    name: str = default_name) -> Functional:
        return ResNet(depths, preact=default_name.endswith("v2"), include_top=include_top,
                      weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                      pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation, name=name,
                      weights_name=default_name)

    application.__doc__ = (
        f"Keras's ``{default_name}`` (stages of {depths} blocks): see :func:`ResNet` for the "
        "arguments, return value and errors.")
    return application


ResNet50 = resnet_application((3, 4, 6, 3), "resnet50")
ResNet101 = resnet_application((3, 4, 23, 3), "resnet101")
ResNet152 = resnet_application((3, 8, 36, 3), "resnet152")
ResNet50.__name__, ResNet101.__name__, ResNet152.__name__ = "ResNet50", "ResNet101", "ResNet152"


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Caffe-style ImageNet preprocessing (RGB -> BGR, minus the mean): see
    ``imagenet_utils.preprocess_input``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.resnet", name)
