"""What a Keras 3 name that bigmodel does not implement raises, and the stand-in modules for whole
Keras namespaces bigmodel does not have (``keras.applications``, ``keras.wrappers``, ...).

Every ``bigmodel.keras`` module ends with a module ``__getattr__`` that raises
:func:`unsupported_attribute`, so a Keras name that is missing here is never silently absent: the
error names it (``keras.layers.TextVectorization``) and points to ``docs/keras_api.md``, the page
listing every Keras 3 API with its state here. ``hasattr`` still answers False (the error is an
``AttributeError``), except in ``from bigmodel.keras.layers import Name``: Python turns an
``AttributeError`` raised there into a bare "cannot import name", so that statement gets an
:class:`UnsupportedImportError` (an ``ImportError``) carrying the same message.
"""

from __future__ import annotations

import dis
import sys
import types

from bigmodel.errors import NotSupportedError

#: the page that lists every Keras 3 API with its state in bigmodel (docs/keras_api.md)
API_PAGE = "docs/keras_api.md"

_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


class UnsupportedAPIError(NotSupportedError, AttributeError):
    """A Keras module attribute bigmodel does not implement (``hasattr`` still answers False)."""


class UnsupportedImportError(NotSupportedError, ImportError):
    """``from bigmodel.keras.<module> import <name>`` of a Keras name bigmodel does not implement."""


def _in_from_import() -> bool:
    """Whether the module ``__getattr__`` on the stack was called by a ``from m import name``."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "__getattr__":
        frame = frame.f_back
    caller = frame.f_back if frame is not None else None
    if caller is None or caller.f_lasti < 0:
        return False
    return caller.f_code.co_code[caller.f_lasti] == _IMPORT_FROM


def unsupported_attribute(namespace: str, name: str, hint: str = "",
                          error: type[UnsupportedAPIError] = UnsupportedAPIError) -> Exception:
    """The error for Keras's ``namespace.name`` missing here, for a module ``__getattr__`` to raise.

    Args:
        namespace: the Keras module path, e.g. ``"keras.layers"``.
        name: the attribute asked for.
        hint: a few words appended to the message (why, or what to use instead).
        error: the class to raise (a subclass of :class:`UnsupportedAPIError`).

    Returns:
        ``AttributeError(name)`` for dunder lookups (``__path__``, ``__wrapped__``: Python's own
        probes); an :class:`UnsupportedImportError` when the lookup is a ``from ... import``;
        else ``error``. The message names ``namespace.name`` and :data:`API_PAGE`.
    """
    if name.startswith("__"):
        return AttributeError(name)
    message = f"{namespace}.{name} is not supported by bigmodel: see {API_PAGE}"
    if hint:
        message += f" ({hint})"
    if _in_from_import():
        return UnsupportedImportError(message)
    return error(message)


class UnsupportedNamespace(types.ModuleType):
    """A stand-in for a Keras module bigmodel does not implement: every attribute raises.

    It is registered in ``sys.modules`` under its bigmodel path, so ``import`` and ``from ...
    import`` statements reach it and get the error naming the Keras API, not "no module named".
    """

    def __init__(self, keras_path: str, reason: str, submodules: tuple[str, ...] = ()):
        bigmodel_path = "bigmodel." + keras_path
        super().__init__(bigmodel_path, f"Not supported by bigmodel ({reason}): see {API_PAGE}.")
        self._keras_path = keras_path
        self._reason = reason
        for sub in submodules:
            setattr(self, sub, UnsupportedNamespace(f"{keras_path}.{sub}", reason))
        sys.modules.setdefault(bigmodel_path, self)

    def __getattr__(self, name: str) -> object:
        raise unsupported_attribute(self._keras_path, name, self._reason)

    def __dir__(self) -> list[str]:
        return [k for k, v in vars(self).items() if isinstance(v, UnsupportedNamespace)]


_DOWNLOADS = "its loader downloads the data set; bigmodel has loaders for mnist and fashion_mnist only"

#: Keras 3 modules bigmodel does not implement: keras path -> (why, its submodules)
NAMESPACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "keras.export": ("use bigmodel's ONNX export: `bigmodel export` (bigmodel.export)", ()),
    "keras.legacy": ("Keras 2 formats; bigmodel reads and writes Keras 3 .keras files", ("saving",)),
    "keras.preprocessing": ("Keras 2 preprocessing helpers; use keras.utils and the "
                            "preprocessing layers", ("image", "sequence")),
    "keras.quantizers": ("use bigmodel's int8 quantization (bigmodel.compress, "
                         "`bigmodel compress --quantize int8`)", ()),
    "keras.utils.legacy": ("Keras 2 serialization; use keras.saving", ()),
    "keras.optimizers.legacy": ("Keras 2 optimizers; use keras.optimizers", ()),
    "keras.datasets.boston_housing": (_DOWNLOADS, ()),
    "keras.datasets.california_housing": (_DOWNLOADS, ()),
    "keras.datasets.cifar10": (_DOWNLOADS, ()),
    "keras.datasets.cifar100": (_DOWNLOADS, ()),
    "keras.datasets.imdb": (_DOWNLOADS, ()),
    "keras.datasets.reuters": (_DOWNLOADS, ()),
}


def namespace(keras_path: str) -> UnsupportedNamespace:
    """The stand-in module for the Keras module ``keras_path`` (one of the table above)."""
    reason, submodules = NAMESPACES[keras_path]
    return UnsupportedNamespace(keras_path, reason, submodules)
