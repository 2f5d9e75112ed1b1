"""keras.tree: Keras 3's nested-structure rules (None a leaf, dicts by sorted key, OrderedDict in
order, namedtuples rebuilt), against real Keras 3 (torch backend) where it is installed."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import BigModelError, InputTypeError, ShapeError
from bigmodel.keras import tree

Point = collections.namedtuple("Point", ["y", "x"])

STRUCTURES = [
    1,
    None,
    "text",
    np.arange(3),
    [1],
    [[1, 2, 3], [4, [5], [[6]]]],
    {100: "world!", 6: "Hello"},
    {"b": [1, None], "a": (2, {"d": 3, "c": 4})},
    collections.OrderedDict([("b", 1), ("a", 2)]),
    Point(y=1, x=[2, 3]),
    (None, [None, (None,)]),
    collections.deque([1, [2, 3]]),
    collections.defaultdict(list, {"z": 1, "y": [2]}),
    [],
    {},
]


def _real_tree():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real.tree


def _reference_impl():
    """Keras 3's optree implementation of keras.tree (its JAX/TensorFlow backends'): the torch
    backend's own (torch pytrees) leaves dicts nested in tuples unsorted and numbers namedtuple
    paths by sorted field name, against Keras's documented rules."""
    _real_tree()
    return pytest.importorskip("keras.src.tree.optree_impl")


def _same(a, b):
    """Equal values and the same container types all the way down."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        # key order: Keras's optree backends keep the input's, its torch backend sorts; only an
        # OrderedDict's order means anything
        assert list(a) == list(b) if isinstance(a, collections.OrderedDict) else set(a) == set(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, (list, tuple, collections.deque)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("index", range(len(STRUCTURES)))
def test_flatten_pack_and_paths_match_keras(index):
    real = _reference_impl()
    structure = STRUCTURES[index]
    ours_flat, real_flat = tree.flatten(structure), real.flatten(structure)
    _same(ours_flat, real_flat)
    assert tree.is_nested(structure) == real.is_nested(structure)
    if index != 7:  # the dict nested in a tuple, which Keras's torch backend leaves unsorted
        _same(ours_flat, _real_tree().flatten(structure))
    assert [p for p, _ in tree.flatten_with_path(structure)] == [
        p for p, _ in real.flatten_with_path(structure)]
    packed = tree.pack_sequence_as(structure, [f"leaf{i}" for i in range(len(ours_flat))])
    _same(packed, real.pack_sequence_as(structure, [f"leaf{i}" for i in range(len(ours_flat))]))
    _same(tree.lists_to_tuples(structure), real.lists_to_tuples(structure))


def test_flatten_orders_dicts_by_key_and_keeps_none():
    assert tree.flatten({"b": 1, "a": [2, None]}) == [2, None, 1]
    assert tree.flatten(collections.OrderedDict([("b", 1), ("a", 2)])) == [1, 2]
    assert tree.flatten(None) == [None]
    assert tree.flatten_with_path({"b": [7], "a": 1}) == [(("a",), 1), (("b", 0), 7)]
    assert keras.tree is tree


def test_map_structure_and_up_to_match_keras():
    real = _real_tree()
    a = {"w": [1.0, 2.0], "b": Point(y=3.0, x=None)}
    b = {"w": [10.0, 20.0], "b": Point(y=30.0, x=None)}
    _same(tree.map_structure(lambda v: None if v is None else v * 2, a),
          real.map_structure(lambda v: None if v is None else v * 2, a))
    _same(tree.map_structure(lambda x, y: x + y, a, b, none_is_leaf=False),
          real.map_structure(lambda x, y: x + y, a, b, none_is_leaf=False))
    assert tree.map_structure(lambda v: v * 3, 2) == 6
    structure = [[1, 1], [2, 2]]
    assert tree.map_structure_up_to([None, None], len, structure) == [2, 2]
    _same(tree.map_structure_up_to([None, [None, None]], str, structure),
          real.map_structure_up_to([None, [None, None]], str, structure))
    shapes = {"x": (None, 3), "y": [(2, 4), (5,)]}
    _same(tree.map_shape_structure(lambda s: tuple(2 * (d or 1) for d in s), shapes),
          real.map_shape_structure(lambda s: tuple(2 * (d or 1) for d in s), shapes))


def test_traverse_top_down_bottom_up_and_map_to_none():
    real = _real_tree()
    structure = [1, [2, [3]], {"a": 4}]

    def cut_lists_of_one(node):
        return tree.MAP_TO_NONE if isinstance(node, list) and len(node) == 1 else None

    def real_cut(node):
        return real.MAP_TO_NONE if isinstance(node, list) and len(node) == 1 else None

    _same(tree.traverse(cut_lists_of_one, structure), real.traverse(real_cut, structure))
    visited = []
    tree.traverse(lambda n: visited.append(n), [1, [2]], top_down=False)
    assert visited == [1, 2, [2], [1, [2]]]
    _same(tree.traverse(lambda n: n * 10 if isinstance(n, int) else None, structure,
                        top_down=False),
          real.traverse(lambda n: n * 10 if isinstance(n, int) else None, structure,
                        top_down=False))


def test_assert_same_structure_and_paths():
    real = _real_tree()
    tree.assert_same_structure([1, (2, {"a": 3})], [4, (5, {"a": 6})])
    tree.assert_same_structure({"a": 1}, collections.OrderedDict(a=2))
    for a, b in [([1, 2], [1, [2]]), ([1, 2], (1, 2)), ({"a": 1}, {"b": 1}), ([1], [1, 2])]:
        with pytest.raises(ShapeError, match="assert_same_structure"):
            tree.assert_same_structure(a, b)
        with pytest.raises(ValueError):
            real.assert_same_structure(a, b)
    tree.assert_same_paths([1, {"a": 2}], (3, {"a": 4}))
    with pytest.raises(ShapeError, match=r"missing in `b`: \[\(1, 'a'\)\]"):
        tree.assert_same_paths([1, {"a": 2}], [3, {"b": 4}])


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ShapeError, match="map_structure"):
        tree.map_structure(lambda x, y: x, [1, 2], [1, [2]])
    with pytest.raises(ShapeError, match="at least one structure"):
        tree.map_structure(len)
    with pytest.raises(InputTypeError, match="func must be callable"):
        tree.map_structure(3, [1])
    with pytest.raises(ShapeError, match="map_structure_up_to"):
        tree.map_structure_up_to([None, [None]], str, [1, 2])
    with pytest.raises(ShapeError, match="has 2 leaves but flat_sequence has 3"):
        tree.pack_sequence_as([1, 2], [1, 2, 3])
    with pytest.raises(BigModelError, match="keras.tree.nope"):
        tree.nope  # noqa: B018
