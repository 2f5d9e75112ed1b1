"""Keras-compatible layers (channels-last images, Keras names, arguments and defaults)."""

from bigmodel.keras.layers.attention import MultiHeadAttention
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
    get_keras_mask,
    get_layer_class,
    serialize_layer,
    set_keras_mask,
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
from bigmodel.keras.layers.rcl import RecurrentConv2D
from bigmodel.keras.layers.recurrent import GRU, LSTM, SimpleRNN
from bigmodel.keras.layers.recurrent_wrappers import Bidirectional, Masking, TimeDistributed

# Keras aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "GRU", "LSTM", "Bidirectional", "Masking", "SimpleRNN", "TimeDistributed",
    "Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D",
    "Convolution2D", "Dense", "Dropout", "Embedding", "Flatten", "GlobalAveragePooling2D",
    "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "InputLayer", "KerasTensor",
    "Layer", "LayerNormalization", "MaxPool2D", "MaxPooling2D", "RandomErasing", "RandomFlip",
    "MultiHeadAttention", "RandomRotation", "RandomTranslation", "RandomZoom", "RecurrentConv2D",
    "Reshape", "deserialize_layer",
    "get_layer_class", "serialize_layer", "get_keras_mask", "set_keras_mask",
]
