"""Every Keras-surface layer class by its class name (``Layer.__init_subclass__`` records it), layer
names (``dense``, ``dense_1``, ...), and a layer to/from its ``{"class_name", "config"}`` spec.
"""

from __future__ import annotations

import re
from typing import Any

from bigmodel.errors import ConfigError, UnknownNameError

__all__ = ["LAYER_CLASSES", "deserialize_layer", "get_layer_class", "reset_names",
           "serialize_layer", "snake_case", "unique_name"]

LAYER_CLASSES: dict[str, type] = {}
_NAME_COUNTS: dict[str, int] = {}


def snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """Keras-style automatic names: ``dense``, ``dense_1``, ``dense_2``, ..."""
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_names() -> None:
    """Start automatic names again at ``dense``, ``dense_1``... (``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def get_layer_class(class_name: str) -> type:
    try:
        return LAYER_CLASSES[class_name]
    except KeyError:
        known = ", ".join(sorted(LAYER_CLASSES))
        raise UnknownNameError(f"Unknown layer class '{class_name}'. Known layers: {known}") from None


def serialize_layer(layer: Any) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(spec: dict[str, Any]) -> Any:
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ConfigError(f"A layer spec must be a dict with 'class_name' and 'config'; received {spec!r}")
    return get_layer_class(spec["class_name"]).from_config(dict(spec.get("config", {})))
