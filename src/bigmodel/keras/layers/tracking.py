"""Keras 3's automatic tracking of layers and weights held in Python lists, tuples and dicts.

Keras tracks every layer or variable a layer keeps in an attribute, also inside (nested) lists,
tuples and dicts: ``self.blocks = [Dense(8), Dense(8)]`` makes both Dense layers part of the model
(trained, saved, counted). PyTorch only registers modules assigned directly or held by
``nn.ModuleList``/``nn.ModuleDict``; a plain list is invisible to ``parameters()``.

:class:`~bigmodel.keras.layers.base.Layer` stores such a value as a :class:`TrackedList` /
:class:`TrackedDict` (a ``list``/``dict`` that reports its changes) or a plain tuple, and registers a
:class:`TrackedModules` child module under the attribute's name holding every module and parameter
found in it. Appending to the list later (``self.blocks.append(...)``) re-registers. The attribute
still reads back as the user's list, so ``for layer in self.blocks`` works as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

__all__ = ["TrackedDict", "TrackedList", "TrackedModules", "iter_trackables", "should_track",
           "wrap"]


class TrackedModules(nn.Module):
    """The modules and parameters found in one tracked attribute, registered for PyTorch.

    Keys are paths in the container (``"0"``, ``"2_1"`` for ``value[2][1]``, dict keys).
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise TypeError("A tracked container of layers is not callable")


def iter_trackables(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, item)`` for every ``nn.Module``/``nn.Parameter`` inside nested lists/tuples/dicts."""
    if isinstance(value, (nn.Module, nn.Parameter)):
        yield prefix or "0", value
        return
    if isinstance(value, dict):
        items = ((str(key).replace(".", "_") or "_", item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return
    for key, item in items:
        yield from iter_trackables(item, f"{prefix}_{key}" if prefix else key)


def should_track(name: str, value: Any) -> bool:
    """Whether ``value`` assigned to attribute ``name`` is a container to track.

    Containers holding a layer or weight anywhere are tracked whatever their name; empty public
    lists/dicts too, since layers are often appended after the assignment (``self.blocks = []``).
    """
    if type(value) not in (list, tuple, dict, TrackedList, TrackedDict):
        return False
    if next(iter_trackables(value), None) is not None:
        return True
    return not name.startswith("_") and isinstance(value, (list, dict)) and not value


def wrap(value: Any, on_change: Callable[[], None]) -> Any:
    """``value`` with every list/dict (nested ones too) replaced by a change-reporting copy."""
    if isinstance(value, dict):
        return TrackedDict({key: wrap(item, on_change) for key, item in value.items()},
                           on_change=on_change)
    if isinstance(value, list):
        return TrackedList([wrap(item, on_change) for item in value], on_change=on_change)
    if type(value) is tuple:
        return tuple(wrap(item, on_change) for item in value)
    return value


def _reporting(method_name: str, base: type) -> Callable:
    method = getattr(base, method_name)

    def changed(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        callback = self.__dict__.get("_on_change")
        if callback is not None:
            callback()
        return result

    changed.__name__ = method_name
    return changed


class TrackedList(list):
    """A ``list`` that calls ``on_change`` after every mutation (to re-register its layers).

    A copy (``copy.copy``, ``copy.deepcopy``, pickling) is a plain ``list``.
    """

    def __init__(self, items: Any = (), on_change: Callable[[], None] | None = None) -> None:
        super().__init__(items)
        self._on_change = on_change

    def __reduce_ex__(self, protocol: Any) -> Any:
        return list, (list(self),)


class TrackedDict(dict):
    """A ``dict`` that calls ``on_change`` after every mutation; copies are plain ``dict``s."""

    def __init__(self, items: Any = (), on_change: Callable[[], None] | None = None) -> None:
        super().__init__(items)
        self._on_change = on_change

    def __reduce_ex__(self, protocol: Any) -> Any:
        return dict, (dict(self),)


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(TrackedList, _name, _reporting(_name, list))
for _name in ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault",
              "__ior__"):
    setattr(TrackedDict, _name, _reporting(_name, dict))
del _name
