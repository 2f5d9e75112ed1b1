"""``keras.layers.serialize`` / ``keras.layers.deserialize``: a layer to and from its Keras 3
description (``{"module", "class_name", "config", "registered_name"}``), through the same
translation as ``.keras`` files (``keras/serialization.py``); nothing in a description is executed.
"""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.serialization import deserialize_keras_object, serialize_keras_object

__all__ = ["deserialize", "serialize"]


def serialize(layer: Layer) -> dict[str, Any]:
    """The Keras 3 description of ``layer`` (what ``keras.layers.serialize`` returns).

    Raises:
        ConfigError: ``layer`` is not a Keras layer, or cannot be described.
    """
    if not isinstance(layer, Layer):
        raise ConfigError(f"keras.layers.serialize: expected a keras.layers.Layer; received "
                          f"{type(layer).__name__}")
    return serialize_keras_object(layer)


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Layer:
    """The layer a Keras 3 description (from :func:`serialize` or real Keras) describes.

    Raises:
        ConfigError: the description is not that of a layer.
        UnknownObjectError: an unregistered class.
    """
    obj = deserialize_keras_object(config, custom_objects=custom_objects)
    if not isinstance(obj, Layer):
        raise ConfigError("`keras.layers.deserialize` was passed a `config` object that is not "
                          f"a `keras.layers.Layer`. Received: {str(config)[:120]}")
    return obj
