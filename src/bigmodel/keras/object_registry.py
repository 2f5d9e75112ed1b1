"""The registry of user classes and functions that Keras files may name (``package>Name``).

Only what is registered here (or passed as ``custom_objects``) and bigmodel's own layers can be
loaded from a file: loading never imports a module or runs code named in a file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bigmodel.errors import ConfigError, UnknownNameError

# Keras's global custom-object dict: "package>Name" -> class or function (users may edit it).
CUSTOM_OBJECTS: dict[str, Any] = {}
CUSTOM_NAMES: dict[Any, str] = {}


class UnknownObjectError(UnknownNameError):
    """A file names a class that is neither a bigmodel layer nor registered by the user."""


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable:
    """Decorator registering a class or function as ``"package>name"`` (Keras semantics).

    Only registered (or ``custom_objects=``) classes can be loaded from a file.

    Raises:
        ConfigError: ``package`` contains ``>``.
    """
    if ">" in str(package):
        raise ConfigError(f"register_keras_serializable: package cannot contain '>'; "
                          f"received package={package!r}")

    def decorator(obj: Any) -> Any:
        key = f"{package}>{name or obj.__name__}"
        CUSTOM_OBJECTS[key] = obj
        CUSTOM_NAMES[obj] = key
        return obj

    return decorator


def get_custom_objects() -> dict[str, Any]:
    """The live global dict of registered objects (``get_custom_objects()["Name"] = cls`` works)."""
    return CUSTOM_OBJECTS


def get_registered_name(obj: Any) -> str:
    """``"package>Name"`` for a registered object, else its ``__name__``."""
    return CUSTOM_NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def get_registered_object(name: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """The object registered (or passed in ``custom_objects``) under ``name``, else ``None``."""
    for table in (custom_objects or {}, CUSTOM_OBJECTS):
        if name in table:
            return table[name]
    return None


class CustomObjectScope:
    """``with keras.saving.custom_object_scope({"Name": cls}): ...``: objects visible to loading
    inside the block only (Keras 3 semantics; names are matched as given)."""

    def __init__(self, custom_objects: dict[str, Any] | None = None, *more: dict[str, Any]):
        self.custom_objects: dict[str, Any] = {}
        for table in (custom_objects or {}, *more):
            self.custom_objects.update(table)
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> CustomObjectScope:
        self._saved = dict(CUSTOM_OBJECTS)
        CUSTOM_OBJECTS.update(self.custom_objects)
        return self

    def __exit__(self, *exc: Any) -> None:
        CUSTOM_OBJECTS.clear()
        CUSTOM_OBJECTS.update(self._saved)


custom_object_scope = CustomObjectScope
