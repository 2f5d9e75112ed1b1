"""``keras.ops.numpy``: the NumPy-named ops under their Keras submodule path (also in ``keras.ops``)."""

from __future__ import annotations

from typing import Any

from bigmodel.keras.ops import (
    numpy_elementwise,
    numpy_extra,
    numpy_linear,
    numpy_reduce,
    numpy_shape,
)
from bigmodel.keras.ops.core import ndim, size  # noqa: F401 - keras.ops.numpy names too
from bigmodel.keras.ops.higher_order import vectorize  # noqa: F401 - keras.ops.numpy name too
from bigmodel.keras.ops.linalg import slogdet  # noqa: F401 - keras.ops.numpy name too
from bigmodel.keras.ops.node import unsupported

for _module in (numpy_elementwise, numpy_reduce, numpy_shape, numpy_linear, numpy_extra):
    for _name, _value in vars(_module).items():
        if (callable(_value) and not _name.startswith("_") and not isinstance(_value, type)
                and getattr(_value, "__module__", None) == _module.__name__):
            globals()[_name] = _value
del _module, _name, _value


def __getattr__(name: str) -> Any:
    raise unsupported("keras.ops.numpy", name)
