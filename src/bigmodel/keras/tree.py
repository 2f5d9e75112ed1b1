"""``keras.tree``: utilities for nested structures (lists, tuples, namedtuples, dicts, deques).

Keras 3's rules: ``None`` is a leaf, a ``dict`` (and ``defaultdict``) is visited in sorted-key
order, an ``OrderedDict`` in its own order, a namedtuple is rebuilt as the same namedtuple. The
walking itself is optree's (the library Keras 3 uses for this), in a namespace of its own so that
node types registered by other libraries do not change what is a leaf here.

Structure mismatches raise :class:`~bigmodel.errors.ShapeError` (a ``ValueError``, as Keras's),
a ``func`` that is not callable :class:`~bigmodel.errors.InputTypeError` (a ``TypeError``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optree

from bigmodel.errors import InputTypeError, ShapeError
from bigmodel.keras.unsupported import unsupported_attribute

_NAMESPACE = "bigmodel.keras"
_OPTIONS = {"none_is_leaf": True, "namespace": _NAMESPACE}


class MAP_TO_NONE:  # noqa: N801 - Keras's name
    """What a :func:`traverse` function returns to replace a sub-tree by ``None``."""


def _is_leaf(value: Any) -> bool:
    return optree.tree_is_leaf(value, **_OPTIONS)


def _check_callable(place: str, func: Any) -> None:
    if not callable(func):
        raise InputTypeError(f"keras.tree.{place}: func must be callable; received "
                             f"{type(func).__name__} {func!r}")


def _mismatch(place: str, *structures: Any) -> ShapeError:
    shown = ", ".join(repr(s) if len(repr(s)) < 200 else repr(s)[:200] + "..." for s in structures)
    return ShapeError(f"keras.tree.{place}: the structures don't have the same nested structure; "
                      f"received {shown}")


def register_tree_node_class(cls: type) -> type:
    """Make instances of ``cls`` nodes (``cls.tree_flatten()`` / ``cls.tree_unflatten``)."""
    return optree.register_pytree_node_class(cls, namespace=_NAMESPACE)


def is_nested(structure: Any) -> bool:
    """Whether ``structure`` is a list, tuple, namedtuple, dict or deque (not a leaf)."""
    return not _is_leaf(structure)


def flatten(structure: Any) -> list[Any]:
    """The leaves of ``structure`` in order (dicts by sorted key); a leaf gives ``[leaf]``.

    Raises:
        InputTypeError: a dict whose keys cannot be sorted against each other.
    """
    try:
        return optree.tree_leaves(structure, **_OPTIONS)
    except TypeError as error:
        raise InputTypeError(f"keras.tree.flatten: {error}; received {structure!r}") from error


def flatten_with_path(structure: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """``[(path, leaf), ...]``; a path is the tuple of indices / keys leading to the leaf."""
    paths, leaves, _ = optree.tree_flatten_with_path(structure, **_OPTIONS)
    return list(zip(paths, leaves))


def map_structure(func: Callable[..., Any], *structures: Any, none_is_leaf: bool = True) -> Any:
    """``func`` applied to the leaves of ``structures`` (all of the same layout), same layout.

    Args:
        func: called with one leaf of each structure.
        *structures: one or more nested structures of the same layout.
        none_is_leaf: with False, ``None`` leaves are kept as they are, not passed to ``func``.

    Raises:
        InputTypeError: ``func`` not callable.
        ShapeError: no structure given, or structures of different layouts.
    """
    _check_callable("map_structure", func)
    if not structures:
        raise ShapeError("keras.tree.map_structure: give at least one structure; received none")
    if len(structures) == 1 and not is_nested(structures[0]):
        return None if structures[0] is None and not none_is_leaf else func(structures[0])

    def checked(*leaves: Any) -> Any:
        if len(leaves) > 1 and not all(optree.tree_is_leaf(v, none_is_leaf=none_is_leaf,
                                                            namespace=_NAMESPACE) for v in leaves):
            raise _mismatch("map_structure", *structures)
        return func(*leaves)

    try:
        return optree.tree_map(checked, *structures, none_is_leaf=none_is_leaf,
                               namespace=_NAMESPACE)
    except ValueError as error:
        if isinstance(error, ShapeError):
            raise
        raise _mismatch("map_structure", *structures) from error


def map_structure_up_to(shallow_structure: Any, func: Callable[..., Any], *structures: Any) -> Any:
    """``func`` applied to the sub-structures of ``structures`` found at the leaves of
    ``shallow_structure`` (deeper parts are passed whole); the result has its layout.

    Raises:
        InputTypeError: ``func`` not callable.
        ShapeError: no structure given, or a structure shallower than ``shallow_structure``.
    """
    _check_callable("map_structure_up_to", func)
    if not structures:
        raise ShapeError("keras.tree.map_structure_up_to: give at least one structure; "
                         "received none")

    def apply(shallow: Any, *parts: Any) -> Any:
        if not _is_leaf(shallow):
            raise _mismatch("map_structure_up_to", shallow_structure, *structures)
        return func(*parts)

    try:
        return optree.tree_map(apply, shallow_structure, *structures, **_OPTIONS)
    except ValueError as error:
        if isinstance(error, ShapeError):
            raise
        raise _mismatch("map_structure_up_to", shallow_structure, *structures) from error


def assert_same_structure(a: Any, b: Any, check_types: Any = None) -> None:
    """Raise :class:`ShapeError` unless ``a`` and ``b`` nest the same way (leaves may differ;
    dict, OrderedDict and defaultdict with the same keys count as the same; list and tuple not).

    ``check_types`` is accepted for Keras 2 programs and ignored, as in Keras 3.
    """
    def check(x: Any, y: Any) -> None:
        if not _is_leaf(x) or not _is_leaf(y):
            raise _mismatch("assert_same_structure", a, b)

    try:
        optree.tree_map(check, a, b, **_OPTIONS)
    except ValueError as error:
        if isinstance(error, ShapeError):
            raise
        raise _mismatch("assert_same_structure", a, b) from error


def assert_same_paths(a: Any, b: Any) -> None:
    """Raise :class:`ShapeError` unless ``a`` and ``b`` have the same set of leaf paths."""
    a_paths = set(optree.tree_paths(a, **_OPTIONS))
    b_paths = set(optree.tree_paths(b, **_OPTIONS))
    if a_paths != b_paths:
        raise ShapeError("keras.tree.assert_same_paths: `a` and `b` don't have the same paths; "
                         f"paths in `a` missing in `b`: {sorted(a_paths - b_paths, key=repr)}; "
                         f"paths in `b` missing in `a`: {sorted(b_paths - a_paths, key=repr)}")


def pack_sequence_as(structure: Any, flat_sequence: Any) -> Any:
    """``flat_sequence`` put back into the layout of ``structure`` (inverse of :func:`flatten`).

    Raises:
        InputTypeError: ``flat_sequence`` is not a sequence.
        ShapeError: its length is not the number of leaves of ``structure``.
    """
    if not isinstance(flat_sequence, (list, tuple)) and not hasattr(flat_sequence, "__len__"):
        raise InputTypeError("keras.tree.pack_sequence_as: flat_sequence must be a sequence; "
                             f"received {type(flat_sequence).__name__}")
    leaves, spec = optree.tree_flatten(structure, **_OPTIONS)
    if len(flat_sequence) != len(leaves):
        raise ShapeError(f"keras.tree.pack_sequence_as: structure has {len(leaves)} leaves but "
                         f"flat_sequence has {len(flat_sequence)} items; received structure="
                         f"{structure!r}")
    return optree.tree_unflatten(spec, list(flat_sequence))


def traverse(func: Callable[[Any], Any], structure: Any, top_down: bool = True) -> Any:
    """Apply ``func`` to every sub-tree of ``structure`` (leaves included).

    Top-down, ``func(subtree)`` returning ``None`` means "go on into its children", anything else
    replaces the sub-tree without visiting it; bottom-up, children are traversed first and
    ``None`` keeps the (traversed) sub-tree. Return :class:`MAP_TO_NONE` to put ``None``.

    Raises:
        InputTypeError: ``func`` not callable.
    """
    _check_callable("traverse", func)

    def children_traversed(node: Any) -> Any:
        children, spec = optree.tree_flatten(node, is_leaf=lambda x: x is not node, **_OPTIONS)
        if spec.num_nodes == 1 and spec.num_leaves == 1:  # a leaf
            return node
        return optree.tree_unflatten(spec, [visit(child) for child in children])

    def visit(node: Any) -> Any:
        if top_down:
            result = func(node)
            if result is None:
                return children_traversed(node)
        else:
            node = children_traversed(node)
            result = func(node)
            if result is None:
                return node
        return None if result is MAP_TO_NONE else result

    return visit(structure)


def lists_to_tuples(structure: Any) -> Any:
    """``structure`` with every list (at any depth) turned into a tuple."""
    return traverse(lambda node: tuple(node) if isinstance(node, list) else None, structure,
                    top_down=False)


def map_shape_structure(func: Callable[[Any], Any], structure: Any) -> Any:
    """``func`` applied to every shape (a list/tuple of ints and ``None``) in ``structure``."""
    _check_callable("map_shape_structure", func)

    def is_shape(value: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, type(None))) for v in value)

    return optree.tree_map(func, structure, is_leaf=is_shape, **_OPTIONS)


__all__ = ["MAP_TO_NONE", "assert_same_paths", "assert_same_structure", "flatten",
           "flatten_with_path", "is_nested", "lists_to_tuples", "map_shape_structure",
           "map_structure", "map_structure_up_to", "pack_sequence_as", "register_tree_node_class",
           "traverse"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.tree", name)
