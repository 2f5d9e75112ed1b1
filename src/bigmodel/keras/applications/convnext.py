"""``keras.applications.convnext``: ConvNeXtTiny, Small, Base, Large, XLarge (Liu et al., 2022):
a ResNet modernized toward vision Transformers: 7x7 depthwise convolutions, LayerNormalization,
inverted bottlenecks of Dense layers with GELU, and a learned per-channel ``LayerScale``.

The models take pixels in ``[0, 255]``: ``include_preprocessing=True`` normalizes them inside
(a ``Normalization`` layer with the ImageNet statistics), so ``preprocess_input`` returns its
input, as in Keras. The stem and the three downsampling steps are nested ``Sequential`` models,
as in Keras (their names and weights are Keras's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bigmodel.errors import ConfigError
from bigmodel.keras import initializers, layers
from bigmodel.keras.applications import base, imagenet_utils
from bigmodel.keras.applications.weights_file import keras_file
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.sequential import Sequential
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's SHA-256s of the published files: (with the classifier, without)
WEIGHTS_HASHES = {
    "convnext_tiny": ("8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
                      "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "convnext_small": ("ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
                       "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "convnext_base": ("52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
                      "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "convnext_large": ("070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
                       "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "convnext_xlarge": ("c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
                        "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
}
MODEL_CONFIGS = {  # variant -> (blocks per stage, channels per stage)
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
    "xlarge": ((3, 3, 27, 3), (256, 512, 1024, 2048)),
}


class LayerScale(Layer):
    """Multiplies its input by a learned per-channel ``gamma`` (initially ``init_values``):
    Keras's layer of this name (Touvron et al., 2021)."""

    # what .keras archives name as its module (real Keras finds the class there)
    keras_module = "keras.src.applications.convnext"

    def __init__(self, init_values: float, projection_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.init_values, self.projection_dim = init_values, projection_dim

    def build(self, input_shape: Any) -> None:
        self.add_weight(shape=(self.projection_dim,),
                        initializer=initializers.Constant(self.init_values), trainable=True,
                        name="gamma")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "init_values": self.init_values,
                "projection_dim": self.projection_dim}


def convnext_block(x: KerasTensor, projection_dim: int, layer_scale_init_value: float = 1e-6,
                   name: str = "") -> KerasTensor:
    """7x7 depthwise conv, LayerNormalization, Dense (4x) - GELU - Dense, LayerScale, plus the
    input (Keras's stochastic depth is the identity at the factories' drop rate of 0)."""
    inputs = x
    x = layers.Conv2D(filters=projection_dim, kernel_size=7, padding="same",
                      groups=projection_dim, name=f"{name}_depthwise_conv")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
    x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
    x = layers.Activation("gelu", name=f"{name}_gelu")(x)
    x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
    if layer_scale_init_value is not None:
        x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
    return inputs + layers.Activation("linear", name=f"{name}_identity")(x)


def ConvNeXt(depths: Sequence[int], projection_dims: Sequence[int],
             layer_scale_init_value: float = 1e-6, default_size: int = 224,
             name: str = "convnext", include_preprocessing: bool = True,
             include_top: bool = True, weights: Any = None, input_tensor: Any = None,
             input_shape: Any = None, pooling: Any = None, classes: int = 1000,
             classifier_activation: Any = "softmax",
             weights_name: str | None = None) -> Functional:
    """A ConvNeXt of four stages of ``depths`` blocks with ``projection_dims`` channels.

    Raises:
        ConfigError: Keras's argument errors, an unknown ``pooling``, and with ImageNet weights
            a ``name`` that does not contain the variant's (Keras's rule).
    """
    base.check_weights(weights, include_top, classes)
    base.check_pooling(pooling)
    if weights == "imagenet" and weights_name is not None and weights_name not in name:
        raise ConfigError(f'Model name "{name}" does not match weights variant '
                          f'"{weights_name}". When using imagenet weights, model name must '
                          f'contain the weights variant (e.g., "{weights_name}").')
    image, inputs = base.image_input(input_tensor, input_shape, default_size=default_size,
                                     min_size=32, include_top=include_top, weights=weights)
    x = image
    if include_preprocessing and image.shape[-1] == 3:
        x = layers.Normalization(
            mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
            variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
            name=f"{name}_prestem_normalization")(x)
    downsample = [Sequential([
        layers.Conv2D(projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"),
        layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")],
        name=f"{name}_stem")]
    for i in range(3):
        downsample.append(Sequential([
            layers.LayerNormalization(epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"),
            layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2,
                          name=f"{name}_downsampling_conv_{i}")],
            name=f"{name}_downsampling_block_{i}"))
    for i in range(4):
        x = downsample[i](x)
        for j in range(depths[i]):
            x = convnext_block(x, projection_dims[i], layer_scale_init_value,
                               name=f"{name}_stage_{i}_block_{j}")
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        x = layers.Dense(classes, activation=classifier_activation,
                         name=f"{name}_head_dense")(x)
    else:
        x = base.pooled(x, pooling, avg_name=None, max_name=None)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
    files = None
    if weights_name in WEIGHTS_HASHES:  # Keras names the file after the model's name
        top, notop = WEIGHTS_HASHES[weights_name]
        files = (keras_file("convnext", f"{name}.h5", top),
                 keras_file("convnext", f"{name}_notop.h5", notop))
    return base.finish(inputs, x, name, weights, files, include_top)


def convnext_application(variant: str) -> Any:
    """The Keras application function ``ConvNeXt<Variant>``."""
    depths, dims = MODEL_CONFIGS[variant]
    label = "XLarge" if variant == "xlarge" else variant.capitalize()

    def application(include_top: bool = True, include_preprocessing: bool = True,
                    weights: Any = "imagenet", input_tensor: Any = None,
                    input_shape: Any = None, pooling: Any = None, classes: int = 1000,
                    classifier_activation: Any = "softmax",
                    name: str = f"convnext_{variant}") -> Functional:
        return ConvNeXt(depths, dims, 1e-6, 224, name=name,
                        include_preprocessing=include_preprocessing, include_top=include_top,
                        weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                        pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation,
                        weights_name=f"convnext_{variant}")

    application.__name__ = f"ConvNeXt{label}"
    application.__doc__ = f"Keras's ConvNeXt{label}: see :func:`ConvNeXt`."
    return application


ConvNeXtTiny = convnext_application("tiny")
ConvNeXtSmall = convnext_application("small")
ConvNeXtBase = convnext_application("base")
ConvNeXtLarge = convnext_application("large")
ConvNeXtXLarge = convnext_application("xlarge")


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Returns ``x`` unchanged: ConvNeXt models normalize their input themselves."""
    return x


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.convnext", name)
