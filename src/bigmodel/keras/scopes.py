"""Keras 3's top-level context managers and version: ``keras.device``, ``keras.name_scope`` and
``keras.version``.

- ``keras.device("gpu:0")`` places the tensors created inside on that device: it is torch's own
  device context (``with torch.device(...)``), entered with Keras's spelling of the name
  (``"gpu"`` is CUDA, as Keras's torch backend reads it).
- ``keras.name_scope("block")`` prefixes the ``path`` of every ``keras.Variable`` created inside
  (``"block/w"``), as Keras does. Layers name their weights ``"<layer>/<weight>"`` themselves, so
  the scope does not change layer or weight names, and torch's ``state_dict`` keys are never
  scoped.
- ``keras.version()`` is the Keras 3 version whose API bigmodel's ``keras`` follows (bigmodel's
  own version is ``bigmodel.__version__``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError

__all__ = ["KERAS_API_VERSION", "device", "name_scope", "scoped_path", "version"]

#: the Keras 3 release whose API names and defaults bigmodel.keras follows (docs/keras_api.md)
KERAS_API_VERSION = "3.15.1"

_STACK = threading.local()  # the open name scopes of this thread, as Keras keeps them per thread


def version() -> str:
    """The Keras 3 version bigmodel's Keras API follows (``"3.15.1"``)."""
    return KERAS_API_VERSION


@contextlib.contextmanager
def device(device_name: str) -> Iterator[torch.device]:
    """Create tensors on ``device_name`` inside the block (``"cpu"``, ``"gpu:0"``, ``"cuda:1"``).

    Yields:
        the ``torch.device`` entered.

    Raises:
        InputTypeError: ``device_name`` is not a string (Keras: ValueError).
        ConfigError: a name torch does not know.
    """
    if not isinstance(device_name, str):
        raise InputTypeError("Invalid value for argument `device_name`. Expected a string like "
                             f"'gpu:0' or 'cpu'. Received: device_name={device_name!r}")
    name = device_name.lower().replace("gpu", "cuda")
    try:
        chosen = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"keras.device: unknown device {device_name!r} ({error})") from None
    with chosen:
        yield chosen


class name_scope:  # noqa: N801 - Keras's name
    """Prefix the ``path`` of the ``keras.Variable`` objects created inside with ``name``.

    Args:
        name: the scope name (no ``/``).
        caller: the object opening it; re-entering the same ``name`` for the same caller does
            not nest (Keras's ``deduplicate``).
        deduplicate: see ``caller``.
        override_parent: a path replacing the enclosing scopes.

    Raises:
        ConfigError: ``name`` is not a string or contains ``/`` (Keras: ValueError).
    """

    def __init__(self, name: str, caller: Any = None, deduplicate: bool = True,
                 override_parent: str | None = None) -> None:
        if not isinstance(name, str) or "/" in name:
            raise ConfigError("Argument `name` must be a string and cannot contain character "
                              f"`/`. Received: name={name!r}")
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        self.override_parent = override_parent
        self._pushed = False

    def __enter__(self) -> name_scope:
        stack = _scopes()
        if self.deduplicate and stack and self.caller is not None and \
                stack[-1].caller is self.caller and stack[-1].name == self.name:
            return self
        stack.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pushed:
            _scopes().pop()
            self._pushed = False


def _scopes() -> list[name_scope]:
    if not hasattr(_STACK, "scopes"):
        _STACK.scopes = []
    return _STACK.scopes


def scoped_path(name: str) -> str:
    """``name`` under the open name scopes (``"outer/inner/name"``)."""
    parts: list[str] = []
    for scope in _scopes():
        if scope.override_parent is not None:
            parts = [scope.override_parent] if scope.override_parent else []
        parts.append(scope.name)
    return "/".join([*parts, name])
