"""``keras.applications.resnet_v2``: ResNet50V2, ResNet101V2, ResNet152V2 (He et al., 2016:
pre-activation blocks), built by ``resnet.ResNet``; ``preprocess_input`` scales to ``[-1, 1]``."""

from __future__ import annotations

from typing import Any

from bigmodel.keras.applications import imagenet_utils
from bigmodel.keras.applications.resnet import resnet_application
from bigmodel.keras.unsupported import unsupported_attribute

ResNet50V2 = resnet_application((3, 4, 6, 3), "resnet50v2")
ResNet101V2 = resnet_application((3, 4, 23, 3), "resnet101v2")
ResNet152V2 = resnet_application((3, 8, 36, 3), "resnet152v2")
ResNet50V2.__name__, ResNet101V2.__name__ = "ResNet50V2", "ResNet101V2"
ResNet152V2.__name__ = "ResNet152V2"


def preprocess_input(x: Any, data_format: Any = None) -> Any:
    """Scale pixels to ``[-1, 1]``: see ``imagenet_utils.preprocess_input`` (mode ``"tf"``)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per prediction: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.resnet_v2", name)
