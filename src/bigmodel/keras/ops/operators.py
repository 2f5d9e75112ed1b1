"""Python operators on symbolic ``KerasTensor``s, as in Keras 3: ``x + y``, ``2 * x``, ``-x``,
``x[:, 0]``, ``x @ w``, ``x < y`` ... each becomes the matching ``keras.ops`` call (a graph node).

``==`` keeps Python identity (KerasTensors stay usable as dict keys and in lists); ``bool(x)``,
``iter(x)`` and ``numpy.asarray(x)`` raise ``TypeError`` because a symbolic tensor has no values.
"""

from __future__ import annotations

from typing import Any

from bigmodel.keras.ops import numpy_elementwise as elementwise
from bigmodel.keras.ops.numpy_linear import matmul
from bigmodel.keras.ops.numpy_shape import get_item


def _binary(op: Any, reflected: bool = False) -> Any:
    if reflected:
        return lambda self, other: op(other, self)
    return lambda self, other: op(self, other)


def _no_values(what: str) -> Any:
    def method(self: Any, *args: Any) -> Any:
        raise TypeError(f"A symbolic KerasTensor cannot be used {what}: it holds no values until "
                        f"the model runs ({self!r}). Use keras.ops on it inside the graph, or "
                        "compute on the model's outputs")

    return method


_BINARY = {
    "add": elementwise.add, "sub": elementwise.subtract, "mul": elementwise.multiply,
    "truediv": elementwise.divide, "floordiv": elementwise.floor_divide,
    "mod": elementwise.mod, "pow": elementwise.power, "matmul": matmul,
    "and": elementwise.logical_and, "or": elementwise.logical_or,
    "xor": elementwise.logical_xor,
}


def install_operators(cls: type) -> None:
    """Give the KerasTensor class ``cls`` Keras 3's Python operators."""
    for name, op in _BINARY.items():
        setattr(cls, f"__{name}__", _binary(op))
        setattr(cls, f"__r{name}__", _binary(op, reflected=True))
    cls.__lt__ = _binary(elementwise.less)
    cls.__le__ = _binary(elementwise.less_equal)
    cls.__gt__ = _binary(elementwise.greater)
    cls.__ge__ = _binary(elementwise.greater_equal)
    cls.__ne__ = _binary(elementwise.not_equal)
    cls.__hash__ = object.__hash__  # identity, as __eq__ stays identity
    cls.__neg__ = lambda self: elementwise.negative(self)
    cls.__abs__ = lambda self: elementwise.abs(self)
    cls.__invert__ = lambda self: elementwise.logical_not(self)
    cls.__round__ = lambda self, ndigits=None: elementwise.round(self, ndigits or 0)
    cls.__getitem__ = lambda self, key: get_item(self, key)
    cls.__bool__ = _no_values("as a Python bool (in `if`, `and`, `or`)")
    cls.__iter__ = _no_values("as an iterable")
    cls.__array__ = _no_values("as a NumPy array")
    # NumPy arrays defer to our reflected operators instead of broadcasting over the object.
    cls.__array_ufunc__ = None
