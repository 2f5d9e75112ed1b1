"""Keras-compatible layers (channels-last images, Keras names, arguments and defaults)."""

from bigmodel.keras.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from bigmodel.keras.layers.attention import MultiHeadAttention
from bigmodel.keras.layers.attention_dot import AdditiveAttention, Attention
from bigmodel.keras.layers.attention_gqa import GroupQueryAttention
from bigmodel.keras.layers.augmentation import (
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.category_encoding import CategoryEncoding
from bigmodel.keras.layers.color_augmentation import RandomBrightness, RandomContrast
from bigmodel.keras.layers.conv_depthwise import (
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from bigmodel.keras.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from bigmodel.keras.layers.conv_transpose import Conv1DTranspose, Conv2DTranspose, Conv3DTranspose
from bigmodel.keras.layers.convolution import Conv2D
from bigmodel.keras.layers.convolution_nd import Conv1D, Conv3D
from bigmodel.keras.layers.core import Activation, Dense, Dropout, Flatten, InputLayer, Reshape
from bigmodel.keras.layers.discretization import Discretization
from bigmodel.keras.layers.einsum_dense import EinsumDense
from bigmodel.keras.layers.embedding import Embedding
from bigmodel.keras.layers.embedding_reversible import ReversibleEmbedding
from bigmodel.keras.layers.hashing import HashedCrossing, Hashing
from bigmodel.keras.layers.image_augment_color import (
    RandomColorDegeneration,
    RandomColorJitter,
    RandomGrayscale,
    RandomHue,
    RandomInvert,
    RandomPosterization,
    RandomSaturation,
    RandomSharpness,
    Solarization,
)
from bigmodel.keras.layers.image_augment_geometry import (
    RandomCrop,
    RandomElasticTransform,
    RandomGaussianBlur,
    RandomPerspective,
    RandomShear,
)
from bigmodel.keras.layers.image_augment_mix import (
    AugMix,
    CutMix,
    MaxNumBoundingBoxes,
    MixUp,
    Pipeline,
    RandAugment,
)
from bigmodel.keras.layers.image_augment_tone import (
    AutoContrast,
    ContrastLimitedAdaptiveHistogramEqualization,
    Equalization,
)
from bigmodel.keras.layers.input_spec import InputSpec
from bigmodel.keras.layers.lambda_layer import Identity, Input, Lambda
from bigmodel.keras.layers.layer_registry import (
    deserialize_layer,
    get_layer_class,
    serialize_layer,
)
from bigmodel.keras.layers.layer_serialization import deserialize, serialize
from bigmodel.keras.layers.lookup_layers import IntegerLookup, StringLookup
from bigmodel.keras.layers.merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from bigmodel.keras.layers.noise import (
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from bigmodel.keras.layers.normalization import BatchNormalization, LayerNormalization
from bigmodel.keras.layers.normalization_simple import (
    GroupNormalization,
    RMSNormalization,
    UnitNormalization,
)
from bigmodel.keras.layers.pooling import (
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling2D,
    MaxPooling3D,
)
from bigmodel.keras.layers.pooling1d import (
    AveragePooling1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from bigmodel.keras.layers.pooling_adaptive import (
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveAveragePooling3D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    AdaptiveMaxPooling3D,
)
from bigmodel.keras.layers.preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from bigmodel.keras.layers.rcl import RecurrentConv2D
from bigmodel.keras.layers.recurrent import GRU, LSTM, SimpleRNN
from bigmodel.keras.layers.recurrent_wrappers import Bidirectional, Masking, TimeDistributed
from bigmodel.keras.layers.reshaping import (
    Cropping1D,
    Cropping2D,
    Cropping3D,
    Permute,
    RepeatVector,
    UpSampling1D,
    UpSampling2D,
    UpSampling3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from bigmodel.keras.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from bigmodel.keras.layers.rnn_layer import RNN
from bigmodel.keras.layers.spectrogram import MelSpectrogram, STFTSpectrogram
from bigmodel.keras.layers.symbolic import KerasTensor, get_keras_mask, set_keras_mask
from bigmodel.keras.layers.text_vectorization import TextVectorization
from bigmodel.keras.layers.wrappers import SpectralNormalization, TorchModuleWrapper, Wrapper
from bigmodel.keras.unsupported import unsupported_attribute

# Keras aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
Convolution1D = Conv1D
Convolution2DTranspose = Conv2DTranspose
Convolution1DTranspose = Conv1DTranspose
SeparableConvolution2D = SeparableConv2D
SeparableConvolution1D = SeparableConv1D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
Convolution3D = Conv3D
Convolution3DTranspose = Conv3DTranspose
MaxPool3D = MaxPooling3D
AvgPool3D = AveragePooling3D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool3D = GlobalMaxPooling3D

__all__ = [
    "ELU", "ActivityRegularization", "Add", "Average", "AveragePooling1D", "AvgPool1D",
    "CenterCrop", "Concatenate", "Conv1D", "Conv1DTranspose", "Conv2DTranspose",
    "Convolution1D", "Convolution1DTranspose", "Convolution2DTranspose", "Cropping1D",
    "Cropping2D", "DepthwiseConv2D", "Dot", "GaussianDropout", "GaussianNoise",
    "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D", "GlobalMaxPooling1D",
    "Identity", "Input", "Lambda", "LeakyReLU", "MaxPool1D", "MaxPooling1D", "Maximum",
    "Minimum", "Multiply", "Normalization", "PReLU", "Permute", "ReLU", "RepeatVector",
    "Rescaling", "Resizing", "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
    "SeparableConvolution2D", "Softmax", "SpatialDropout1D", "SpatialDropout2D", "Subtract",
    "UpSampling1D", "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D", "add", "average",
    "concatenate", "dot", "maximum", "minimum", "multiply", "subtract",
    "GRU", "LSTM", "Bidirectional", "Masking", "SimpleRNN", "TimeDistributed",
    "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
    "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D",
    "Convolution2D", "Dense", "Dropout", "Embedding", "Flatten", "GlobalAveragePooling2D",
    "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "InputLayer", "KerasTensor",
    "Layer", "LayerNormalization", "MaxPool2D", "MaxPooling2D", "RandomErasing", "RandomFlip",
    "MultiHeadAttention", "RandomRotation", "RandomTranslation", "RandomZoom", "RecurrentConv2D",
    "Reshape", "AdditiveAttention", "AlphaDropout", "Attention", "RandomBrightness", "RandomContrast", "CategoryEncoding", "GroupNormalization", "RMSNormalization", "UnitNormalization", "deserialize_layer",
    "get_layer_class", "serialize_layer", "get_keras_mask", "set_keras_mask",
    "AugMix", "AutoContrast", "ContrastLimitedAdaptiveHistogramEqualization", "CutMix",
    "Equalization", "MaxNumBoundingBoxes", "MixUp", "Pipeline", "RandAugment",
    "RandomColorDegeneration", "RandomColorJitter", "RandomCrop", "RandomElasticTransform",
    "RandomGaussianBlur", "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective",
    "RandomPosterization", "RandomSaturation", "RandomSharpness", "RandomShear", "Solarization",
    "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "AveragePooling3D",
    "AvgPool3D", "Conv3D", "Conv3DTranspose", "Convolution3D", "Convolution3DTranspose",
    "Cropping3D", "DepthwiseConv1D", "GlobalAveragePooling3D", "GlobalAvgPool3D",
    "GlobalMaxPool3D", "GlobalMaxPooling3D", "MaxPool3D", "MaxPooling3D", "SpatialDropout3D",
    "UpSampling3D", "ZeroPadding3D",
    "EinsumDense", "GroupQueryAttention", "SpectralNormalization", "TorchModuleWrapper",
    "Wrapper", "ReversibleEmbedding", "InputSpec", "MelSpectrogram", "STFTSpectrogram",
    "deserialize", "serialize",
    "Discretization", "HashedCrossing", "Hashing", "IntegerLookup", "StringLookup",
    "TextVectorization",
]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.layers", name)
