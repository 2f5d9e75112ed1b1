"""``keras.applications.nasnet``: NASNetMobile and NASNetLarge (Zoph et al., 2018): normal and
reduction cells found by architecture search. ``preprocess_input`` scales to ``[-1, 1]``.

Keras 3 refuses NASNetMobile on its torch backend ("an outstanding bug"); here it is built (its
parameter count and layers are checked against Keras's own ``NASNet`` builder).
"""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras import layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute

_FILES = {
    224: (keras_file("nasnet", "NASNet-mobile.h5", "020fb642bf7360b370c678b08e0adf61",
                     "nasnet_mobile.h5"),
          keras_file("nasnet", "NASNet-mobile-no-top.h5", "1ed92395b5b598bdda52abe5c0dbfd63",
                     "nasnet_mobile_no_top.h5")),
    331: (keras_file("nasnet", "NASNet-large.h5", "11577c9a518f0070763c2b964a382f17",
                     "nasnet_large.h5"),
          keras_file("nasnet", "NASNet-large-no-top.h5", "d81d89dc07e6e56530c4e77faddd61b5",
                     "nasnet_large_no_top.h5")),
}


def _bn(x: KerasTensor, name: str | None) -> KerasTensor:
    return layers.BatchNormalization(axis=-1, momentum=0.9997, epsilon=1e-3, name=name)(x)


def _conv1x1(x: KerasTensor, filters: int, name: str) -> KerasTensor:
    return layers.Conv2D(filters, (1, 1), strides=(1, 1), padding="same", use_bias=False,
                         name=name, kernel_initializer="he_normal")(x)


def _separable_conv_block(ip: KerasTensor, filters: int, kernel_size: Any = (3, 3),
                          strides: Any = (1, 1), block_id: str = "") -> KerasTensor:
    """ReLU - separable conv (strided) - BN - ReLU - separable conv - BN."""
    x = layers.Activation("relu")(ip)
    if strides == (2, 2):
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"separable_conv_1_pad_{block_id}")(x)
    x = layers.SeparableConv2D(filters, kernel_size, strides=strides,
                               name=f"separable_conv_1_{block_id}",
                               padding="valid" if strides == (2, 2) else "same",
                               use_bias=False)(x)
    x = layers.Activation("relu")(_bn(x, f"separable_conv_1_bn_{block_id}"))
    x = layers.SeparableConv2D(filters, kernel_size, name=f"separable_conv_2_{block_id}",
                               padding="same", use_bias=False)(x)
    return _bn(x, f"separable_conv_2_bn_{block_id}")


def _adjust_block(p: KerasTensor | None, ip: KerasTensor, filters: int,
                  block_id: str) -> KerasTensor:
    """The previous cell's output ``p`` brought to ``ip``'s size and ``filters`` channels."""
    if p is None:
        return ip
    if p.shape[-2] != ip.shape[-2]:  # halve it: two offset 1x1 strided paths, concatenated
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        p1 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid",
                                     name=f"adjust_avg_pool_1_{block_id}")(p)
        p1 = _conv1x1(p1, filters // 2, f"adjust_conv_1_{block_id}")
        p2 = layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(p)
        p2 = layers.Cropping2D(cropping=((1, 0), (1, 0)))(p2)
        p2 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid",
                                     name=f"adjust_avg_pool_2_{block_id}")(p2)
        p2 = _conv1x1(p2, filters // 2, f"adjust_conv_2_{block_id}")
        return _bn(layers.concatenate([p1, p2], axis=-1), f"adjust_bn_{block_id}")
    if p.shape[-1] != filters:
        p = layers.Activation("relu")(p)
        p = _conv1x1(p, filters, f"adjust_conv_projection_{block_id}")
        return _bn(p, f"adjust_bn_{block_id}")
    return p


def _normal_a_cell(ip: KerasTensor, p: KerasTensor | None, filters: int,
                   block_id: str) -> tuple[KerasTensor, KerasTensor]:
    p = _adjust_block(p, ip, filters, block_id)
    h = layers.Activation("relu")(ip)
    h = _bn(_conv1x1(h, filters, f"normal_conv_1_{block_id}"), f"normal_bn_1_{block_id}")
    x1_1 = _separable_conv_block(h, filters, kernel_size=(5, 5),
                                 block_id=f"normal_left1_{block_id}")
    x1_2 = _separable_conv_block(p, filters, block_id=f"normal_right1_{block_id}")
    x1 = layers.add([x1_1, x1_2], name=f"normal_add_1_{block_id}")
    x2_1 = _separable_conv_block(p, filters, (5, 5), block_id=f"normal_left2_{block_id}")
    x2_2 = _separable_conv_block(p, filters, (3, 3), block_id=f"normal_right2_{block_id}")
    x2 = layers.add([x2_1, x2_2], name=f"normal_add_2_{block_id}")

    def avg(name: str, source: KerasTensor) -> KerasTensor:
        return layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same",
                                       name=name)(source)

    x3 = layers.add([avg(f"normal_left3_{block_id}", h), p], name=f"normal_add_3_{block_id}")
    x4_1 = avg(f"normal_left4_{block_id}", p)
    x4 = layers.add([x4_1, avg(f"normal_right4_{block_id}", p)],
                    name=f"normal_add_4_{block_id}")
    x5 = _separable_conv_block(h, filters, block_id=f"normal_left5_{block_id}")
    x5 = layers.add([x5, h], name=f"normal_add_5_{block_id}")
    x = layers.concatenate([p, x1, x2, x3, x4, x5], axis=-1, name=f"normal_concat_{block_id}")
    return x, ip


def _reduction_a_cell(ip: KerasTensor, p: KerasTensor | None, filters: int,
                      block_id: str) -> tuple[KerasTensor, KerasTensor]:
    p = _adjust_block(p, ip, filters, block_id)
    h = layers.Activation("relu")(ip)
    h = _bn(_conv1x1(h, filters, f"reduction_conv_1_{block_id}"),
            f"reduction_bn_1_{block_id}")
    h3 = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(h, 3),
                              name=f"reduction_pad_1_{block_id}")(h)
    x1_1 = _separable_conv_block(h, filters, (5, 5), strides=(2, 2),
                                 block_id=f"reduction_left1_{block_id}")
    x1_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2),
                                 block_id=f"reduction_right1_{block_id}")
    x1 = layers.add([x1_1, x1_2], name=f"reduction_add_1_{block_id}")
    x2_1 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid",
                               name=f"reduction_left2_{block_id}")(h3)
    x2_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2),
                                 block_id=f"reduction_right2_{block_id}")
    x2 = layers.add([x2_1, x2_2], name=f"reduction_add_2_{block_id}")
    x3_1 = layers.AveragePooling2D((3, 3), strides=(2, 2), padding="valid",
                                   name=f"reduction_left3_{block_id}")(h3)
    x3_2 = _separable_conv_block(p, filters, (5, 5), strides=(2, 2),
                                 block_id=f"reduction_right3_{block_id}")
    x3 = layers.add([x3_1, x3_2], name=f"reduction_add3_{block_id}")
    x4 = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same",
                                 name=f"reduction_left4_{block_id}")(x1)
    x4 = layers.add([x2, x4])
    x5_1 = _separable_conv_block(x1, filters, (3, 3), block_id=f"reduction_left4_{block_id}")
    x5_2 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid",
                               name=f"reduction_right5_{block_id}")(h3)
    x5 = layers.add([x5_1, x5_2], name=f"reduction_add4_{block_id}")
    x = layers.concatenate([x2, x3, x4, x5], axis=-1, name=f"reduction_concat_{block_id}")
    return x, ip


def NASNet(input_shape: Any = None, penultimate_filters: int = 4032, num_blocks: int = 6,
           stem_block_filters: int = 96, skip_reduction: bool = True,
           filter_multiplier: int = 2, include_top: bool = True, weights: Any = "imagenet",
           input_tensor: Any = None, pooling: Any = None, classes: int = 1000,
           default_size: int | None = None, classifier_activation: Any = "softmax",
           name: str = "NASNet") -> Functional:
    """A NASNet-A network (Keras's builder behind NASNetMobile and NASNetLarge).

    Raises:
        ConfigError: Keras's argument errors (a shape with None and ImageNet weights, a
            ``penultimate_filters`` that is not a multiple of 24 x ``filter_multiplier``²,
            ImageNet weights for a size other than the two published), an unknown ``pooling``.
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    if isinstance(input_shape, tuple) and None in input_shape and weights == "imagenet":
        raise ConfigError("When specifying the input shape of a NASNet and loading `ImageNet` "
                          "weights, the input_shape argument must be static (no None entries). "
                          f"Got: `input_shape={input_shape}`.")
    default_size = 331 if default_size is None else default_size
    if weights == "imagenet" and default_size not in _FILES:
        raise ConfigError("ImageNet weights can only be loaded with NASNetLarge or NASNetMobile")
    image, inputs = base.image_input(input_tensor, input_shape, default_size=default_size,
                                     min_size=32, include_top=include_top, weights=weights)
    if penultimate_filters % (24 * (filter_multiplier**2)) != 0:
        raise ConfigError("For NASNet-A models, the `penultimate_filters` must be a multiple of "
                          f"24 * (`filter_multiplier` ** 2). Current value: "
                          f"{penultimate_filters}")
    filters = penultimate_filters // 24
    x = layers.Conv2D(stem_block_filters, (3, 3), strides=(2, 2), padding="valid",
                      use_bias=False, name="stem_conv1", kernel_initializer="he_normal")(image)
    x = _bn(x, "stem_bn1")
    x, p = _reduction_a_cell(x, None, filters // (filter_multiplier**2), block_id="stem_1")
    x, p = _reduction_a_cell(x, p, filters // filter_multiplier, block_id="stem_2")
    for stage in range(3):
        width = filters * filter_multiplier**stage
        if stage:
            x, p0 = _reduction_a_cell(x, p, width, block_id=f"reduce_{stage * num_blocks}")
            p = p if skip_reduction else p0
        for i in range(num_blocks):
            block = f"{stage * num_blocks + i + (1 if stage else 0)}"
            x, p = _normal_a_cell(x, p, width, block_id=block)
    x = layers.Activation("relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = base.predictions(x, classes, classifier_activation, weights)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
    return base.finish(inputs, x, name, weights, _FILES.get(default_size), include_top)


def NASNetMobile(input_shape: Any = None, include_top: bool = True, weights: Any = "imagenet",
                 input_tensor: Any = None, pooling: Any = None, classes: int = 1000,
                 classifier_activation: Any = "softmax",
                 name: str = "nasnet_mobile") -> Functional:
    """Keras's NASNetMobile (224x224): see :func:`NASNet`."""
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return NASNet(input_shape, penultimate_filters=1056, num_blocks=4, stem_block_filters=32,
                  skip_reduction=False, filter_multiplier=2, include_top=include_top,
                  weights=weights, input_tensor=input_tensor, pooling=pooling, classes=classes,
                  default_size=224, classifier_activation=classifier_activation, name=name)


def NASNetLarge(input_shape: Any = None, include_top: bool = True, weights: Any = "imagenet",
                input_tensor: Any = None, pooling: Any = None, classes: int = 1000,
                classifier_activation: Any = "softmax",
                name: str = "nasnet_large") -> Functional:
    """Keras's NASNetLarge (331x331): see :func:`NASNet`."""
    return NASNet(input_shape, penultimate_filters=4032, num_blocks=6, stem_block_filters=96,
                  skip_reduction=True, filter_multiplier=2, include_top=include_top,
                  weights=weights, input_tensor=input_tensor, pooling=pooling, classes=classes,
                  default_size=331, classifier_activation=classifier_activation, name=name)


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Scale pixels to ``[-1, 1]``: see ``imagenet_utils.preprocess_input`` (mode ``"tf"``)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.nasnet", name)
