"""``keras.ops``: Keras 3's backend-agnostic ops, computed with PyTorch.

Same names, arguments, defaults and dtype rules as Keras 3 (ints are int32, floats floatx, Keras's
promotion lattice). Each op takes tensors, NumPy arrays or Python numbers and returns a
``torch.Tensor``; given a symbolic ``KerasTensor`` (a functional model's input or an intermediate),
it returns a ``KerasTensor`` and the op runs when the model runs (see :mod:`.node`).

Ops are grouped by concept: :mod:`.core` (conversion, shapes, control flow, scatter/slice),
:mod:`.numpy_elementwise`, :mod:`.numpy_reduce`, :mod:`.numpy_shape`, :mod:`.numpy_linear`,
:mod:`.nn`, :mod:`.math`, :mod:`.linalg`, :mod:`.image`. A Keras op not implemented here raises
:class:`UnsupportedOpError` (a ``NotImplementedError`` and ``AttributeError``) naming it.
"""

from __future__ import annotations

from typing import Any

from bigmodel.keras.ops import (
    convolution,
    core,
    einops_ops,
    higher_order,
    image,  # noqa: F401 - keras.ops.image
    linalg,
    math,
    nn,
    numpy,  # noqa: F401 - keras.ops.numpy
    numpy_elementwise,
    numpy_extra,
    numpy_linear,
    numpy_reduce,
    numpy_shape,
)
from bigmodel.keras.ops.dtypes import result_type, standardize_dtype  # noqa: F401 - Keras names
from bigmodel.keras.ops.node import (  # noqa: F401 - registry, graph node, error class
    OPS,
    OpLayer,
    UnsupportedOpError,
    unsupported,
)

_MODULES = (core, numpy_elementwise, numpy_reduce, numpy_shape, numpy_linear, numpy_extra, nn,
            convolution, math, linalg, higher_order, einops_ops)

# Every public function defined in those modules is a keras.ops name (several shadow builtins:
# sum, max, min, abs, round, all, any, map, slice — as in Keras).
# Public helpers the op modules share, which are not Keras ops.
_SHARED_HELPERS = frozenset({"axes_of", "quantile_over_axes", "same_padding"})

for _module in _MODULES:
    for _name, _value in vars(_module).items():
        if (callable(_value) and not _name.startswith("_") and not isinstance(_value, type)
                and _name not in _SHARED_HELPERS
                and getattr(_value, "__module__", None) == _module.__name__):
            globals()[_name] = _value
del _module, _name, _value

def __getattr__(name: str) -> Any:
    raise unsupported("keras.ops", name)
