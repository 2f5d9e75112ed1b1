"""Keras-compatible layers (channels-last images, Keras names, arguments and defaults)."""

from bigmodel.keras.layers.augmentation import (
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from bigmodel.keras.layers.base import (
    KerasTensor,
    Layer,
    deserialize_layer,
    get_layer_class,
    serialize_layer,
)
from bigmodel.keras.layers.convolution import Conv2D
from bigmodel.keras.layers.core import Activation, Dense, Dropout, Flatten, InputLayer, Reshape
from bigmodel.keras.layers.embedding import Embedding
from bigmodel.keras.layers.normalization import BatchNormalization, LayerNormalization
from bigmodel.keras.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)

# Keras aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D",
    "Convolution2D", "Dense", "Dropout", "Embedding", "Flatten", "GlobalAveragePooling2D",
    "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "InputLayer", "KerasTensor",
    "Layer", "LayerNormalization", "MaxPool2D", "MaxPooling2D", "RandomErasing", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "Reshape", "deserialize_layer",
    "get_layer_class", "serialize_layer",
]
