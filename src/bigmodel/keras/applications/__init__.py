"""``keras.applications``: Keras 3's ImageNet architectures with their names, arguments, layer
names and parameter counts, and Keras's published ImageNet weights (downloaded into
``~/.keras/models`` with a hash check, or read from a legacy Keras HDF5 file given as
``weights="path.h5"``).
"""

from bigmodel.keras.applications import (
    convnext,
    densenet,
    efficientnet,
    efficientnet_v2,
    imagenet_utils,
    inception_resnet_v2,
    inception_v3,
    mobilenet,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
    resnet,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)
from bigmodel.keras.applications.convnext import (
    ConvNeXtBase,
    ConvNeXtLarge,
    ConvNeXtSmall,
    ConvNeXtTiny,
    ConvNeXtXLarge,
)
from bigmodel.keras.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from bigmodel.keras.applications.efficientnet import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from bigmodel.keras.applications.efficientnet_v2 import (
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
)
from bigmodel.keras.applications.inception_resnet_v2 import InceptionResNetV2
from bigmodel.keras.applications.inception_v3 import InceptionV3
from bigmodel.keras.applications.mobilenet import MobileNet
from bigmodel.keras.applications.mobilenet_v2 import MobileNetV2
from bigmodel.keras.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from bigmodel.keras.applications.nasnet import NASNetLarge, NASNetMobile
from bigmodel.keras.applications.resnet import ResNet50, ResNet101, ResNet152
from bigmodel.keras.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from bigmodel.keras.applications.vgg16 import VGG16
from bigmodel.keras.applications.vgg19 import VGG19
from bigmodel.keras.applications.xception import Xception
from bigmodel.keras.unsupported import unsupported_attribute

# Keras's module of the one model (keras.applications.resnet50) is resnet's functions
resnet50 = resnet

__all__ = [
    "convnext", "densenet", "efficientnet", "efficientnet_v2", "imagenet_utils",
    "inception_resnet_v2", "inception_v3", "mobilenet", "mobilenet_v2", "mobilenet_v3",
    "nasnet", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "xception", "ConvNeXtBase",
    "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge", "DenseNet121",
    "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2",
    "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S", "InceptionResNetV2",
    "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "NASNetLarge", "NASNetMobile", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2",
    "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception",
]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications", name)
