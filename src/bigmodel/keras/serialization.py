"""Keras 3 object serialization (``keras.saving``'s functions): the registry of custom objects,
``serialize_keras_object`` / ``deserialize_keras_object``, ``model_from_json``, ``clone_model``.

The translation itself lives in :mod:`bigmodel.keras.config_export` (bigmodel -> Keras 3 JSON) and
:mod:`bigmodel.keras.config_import` (Keras 3 JSON -> bigmodel; nothing from a file is executed).
"""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras.config_export import (  # noqa: F401  (used by saving and model.to_json)
    KERAS_NUMPY_OPS,
    keras_layer_order,
    layer_to_keras,
)
from bigmodel.keras.config_import import Importer
from bigmodel.keras.object_registry import (  # noqa: F401  (keras.saving API)
    CUSTOM_NAMES,
    UnknownObjectError,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)


def serialize_keras_object(obj: Any) -> Any:
    """Keras 3's description of ``obj``: a layer or model spec, a registered function's name, or
    plain JSON values unchanged.

    Raises:
        ConfigError: an object that has no Keras description (e.g. an unregistered function).
    """
    from bigmodel.keras.layers.base import Layer

    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(item) for item in obj]
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, Layer):
        return layer_to_keras(obj)
    if obj in CUSTOM_NAMES:
        return {"module": getattr(obj, "__module__", None), "class_name": "function",
                "config": CUSTOM_NAMES[obj], "registered_name": CUSTOM_NAMES[obj]}
    raise ConfigError(f"serialize_keras_object: cannot describe {type(obj).__name__} {obj!r:.60}"
                      "; register it with keras.saving.register_keras_serializable()")


def deserialize_keras_object(config: Any, custom_objects: dict[str, Any] | None = None,
                             safe_mode: bool = True, **kwargs: Any) -> Any:
    """Rebuild what :func:`serialize_keras_object` (or real Keras 3) described; only bigmodel's
    own classes and registered ones are used, and nothing from the description is executed.

    Raises:
        UnknownObjectError: an unregistered class or function.
    """
    if kwargs:
        raise ConfigError(f"deserialize_keras_object: unsupported arguments {sorted(kwargs)}")
    importer = Importer("deserialize_keras_object", custom_objects, safe_mode)
    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):
        found = get_registered_object(config, custom_objects)
        return config if found is None else found
    if isinstance(config, list):
        return [deserialize_keras_object(item, custom_objects, safe_mode) for item in config]
    if isinstance(config, dict) and config.get("class_name") == "function":
        name = config.get("registered_name") or config.get("config")
        found = get_registered_object(str(name), custom_objects)
        if found is None:
            raise UnknownObjectError(f"deserialize_keras_object: function '{name}' is not "
                                     "registered; register it or pass custom_objects")
        return found
    if isinstance(config, dict) and "class_name" in config:
        return importer.layer(config)
    raise ConfigError(f"deserialize_keras_object: cannot interpret {str(config)[:80]}")


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """A new model (fresh weights) from the JSON of ``model.to_json()`` or real Keras 3.

    Raises:
        ConfigError: the string is not JSON or describes no layer.
    """
    import json

    try:
        config = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model_from_json: the string is not JSON: {exc}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError("model_from_json: expected a Keras model description with "
                          f"'class_name'; received {str(config)[:80]}")
    return Importer("model_from_json", custom_objects).layer(config)


def clone_model(model: Any, input_tensors: Any = None, clone_function: Any = None,
                call_function: Any = None, recursive: bool = False, **kwargs: Any) -> Any:
    """A new model with the same architecture and freshly initialized weights (Keras 3).

    Raises:
        NotSupportedError: ``input_tensors``, ``clone_function`` or ``call_function``.
    """
    if input_tensors is not None or clone_function is not None or call_function is not None \
            or kwargs:
        from bigmodel.errors import NotSupportedError

        raise NotSupportedError("clone_model: only clone_model(model) is supported; received "
                                "input_tensors/clone_function/call_function or other arguments "
                                "(see docs/keras.md)")
    return Importer(f"clone_model({model.name})").layer(layer_to_keras(model))
