"""``keras.ops`` on symbolic inputs: an op applied to a ``KerasTensor`` becomes a graph node.

Every public op is decorated with :func:`keras_op`. Called on tensors it computes at once; called with
a ``KerasTensor`` anywhere in its arguments it returns a new ``KerasTensor`` made by an
:class:`OpLayer` — an internal, weightless layer that remembers the op's name and its non-tensor
arguments, and that the functional model calls later like any other layer. Output shapes and dtypes
come from running the op on "meta" tensors (shapes without data): once with every unknown size set to
2 and once with 4; a size that differs between the two runs is unknown (``None``) in the result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, NotSupportedError, ShapeError, UnknownNameError
from bigmodel.keras.config import UnsupportedAPIError, unsupported_attribute
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.layer_registry import unique_name
from bigmodel.keras.layers.symbolic import (
    KerasTensor,
    Slot,
    fill_slots,
    has_symbolic,
    template_slots,
)
from bigmodel.keras.ops.dtypes import TORCH_DTYPES, standardize_dtype

#: public op name -> the undecorated function (what an OpLayer calls, and what from_config finds)
OPS: dict[str, Callable[..., Any]] = {}
_UNKNOWN_SIZES = (2, 4)


class UnsupportedOpError(UnsupportedAPIError):
    """A ``keras.ops`` name that bigmodel does not implement (``hasattr`` still answers False)."""


def unsupported(namespace: str, name: str) -> Exception:
    """The error for ``namespace.name`` missing here (plain AttributeError for dunder lookups)."""
    return unsupported_attribute(namespace, name, "write it with torch inside a layer's call() "
                                 "meanwhile", error=UnsupportedOpError)


def encode_argument(value: Any) -> Any:
    """JSON form of an op's static arguments (for ``get_config``)."""
    if isinstance(value, Slot):
        return {"__tensor__": value.index}
    if isinstance(value, slice):
        return {"__slice__": [encode_argument(value.start), encode_argument(value.stop), encode_argument(value.step)]}
    if value is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_argument(v) for v in value]}
    if isinstance(value, list):
        return [encode_argument(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": {k: encode_argument(v) for k, v in value.items()}}
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return {"__array__": array.tolist(), "dtype": standardize_dtype(array.dtype)}
    if isinstance(value, torch.dtype):
        return standardize_dtype(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise NotSupportedError(f"An op argument of type {type(value).__name__} ({value!r}) cannot be "
                            "saved in a model config. See docs/keras.md")


def decode_argument(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_argument(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return Slot(int(value["__tensor__"]))
    if "__slice__" in value:
        return slice(*(decode_argument(v) for v in value["__slice__"]))
    if "__ellipsis__" in value:
        return Ellipsis
    if "__tuple__" in value:
        return tuple(decode_argument(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: decode_argument(v) for k, v in value["__dict__"].items()}
    if "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"])
    raise ConfigError(f"Unknown encoded op argument {value!r}")


def _as_outputs(result: Any) -> tuple[list[torch.Tensor], bool]:
    """(output tensors, whether the op returns several)."""
    if isinstance(result, torch.Tensor):
        return [result], False
    if isinstance(result, (list, tuple)) and all(isinstance(r, torch.Tensor) for r in result):
        return list(result), True
    raise NotSupportedError(f"This op returns {type(result).__name__}, which a functional model "
                            "cannot hold as a symbolic tensor. See docs/keras.md")


class OpLayer(Layer):
    """A ``keras.ops`` call inside a functional graph: no weights, op name + static arguments.

    Not listed in ``Model.layers`` (as in Keras 3, where ops are operations, not layers).
    """

    is_op_node = True

    def __init__(self, op: str, args: Any = (), kwargs: Any = None, **base: Any):
        if op not in OPS:
            raise UnknownNameError(f"Unknown keras.ops function '{op}'. Known: "
                                   f"{', '.join(sorted(OPS))}")
        base.setdefault("name", unique_name(op.replace(".", "_")))
        super().__init__(**base)
        self.op = op
        self.op_args = tuple(args)
        self.op_kwargs = dict(kwargs or {})
        self.num_inputs = _count_slots((self.op_args, self.op_kwargs))
        # Hot path: where every symbolic input is a top-level argument, fill slots by position.
        self._fn = OPS[op]
        self._flat = all(not _count_slots(v) or isinstance(v, Slot)
                         for v in (*self.op_args, *self.op_kwargs.values()))
        self._arg_slots = [(i, v.index) for i, v in enumerate(self.op_args) if isinstance(v, Slot)]

    def _run(self, tensors: list[Any]) -> Any:
        if self._flat:
            args = list(self.op_args)
            for position, index in self._arg_slots:
                args[position] = tensors[index]
            kwargs = {k: tensors[v.index] if isinstance(v, Slot) else v
                      for k, v in self.op_kwargs.items()}
            return self._fn(*args, **kwargs)
        return self._fn(*fill_slots(self.op_args, tensors), **fill_slots(self.op_kwargs, tensors))

    def _tensor_list(self, inputs: Any) -> list[Any]:
        if self.num_inputs == 1:  # Functional passes a lone parent unwrapped
            return [inputs]
        return list(inputs)

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self._run(self._tensor_list(inputs))

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if has_symbolic(inputs):
            return self._call_symbolic(inputs, **kwargs)
        # No weights, shapes or masks to check: skip the Layer/Module call bookkeeping, which
        # costs more than the op itself on small tensors.
        return self._run(self._tensor_list(inputs))

    def forward(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        return self._run(self._tensor_list(inputs))

    def infer(self, parents: list[KerasTensor]) -> tuple[list[tuple], list[str], bool]:
        """Output shapes (``None`` where unknown), dtypes and multi-output flag for these inputs."""
        runs = []
        for size in _UNKNOWN_SIZES:
            fakes = [_fake(kt, size) for kt in parents]
            with torch.no_grad():
                try:
                    result = self._run(fakes)
                except (NotImplementedError, RuntimeError):
                    # Some kernels have no meta implementation: run them on small real tensors.
                    result = self._run([torch.ones(f.shape, dtype=f.dtype) for f in fakes])
            runs.append(_as_outputs(result))
        (first, multi), (second, _) = runs
        shapes = [tuple(a if a == b else None for a, b in zip(x.shape, y.shape))
                  if x.dim() == y.dim() else None for x, y in zip(first, second)]
        if any(s is None for s in shapes):
            raise ShapeError(f"keras.ops.{self.op}: the output rank depends on an unknown "
                             f"dimension of its symbolic inputs {[kt.shape for kt in parents]}")
        return shapes, [standardize_dtype(t.dtype) for t in first], multi

    def compute_output_shape(self, input_shape: Any) -> Any:
        raise NotSupportedError("OpLayer output shapes come from its symbolic inputs")

    def symbolic(self, parents: list[KerasTensor]) -> Any:
        """The KerasTensor(s) this op makes from ``parents`` (recorded as one graph node)."""
        shapes, dtypes, multi = self.infer(parents)
        self.built = True
        if multi:
            call = object()
            outputs = [KerasTensor(s, dtype=d, layer=self, parents=parents, name=self.name,
                                   output_index=i, call=call)
                       for i, (s, d) in enumerate(zip(shapes, dtypes))]
            return outputs
        return KerasTensor(shapes[0], dtype=dtypes[0], layer=self, parents=parents, name=self.name)

    def _call_symbolic(self, inputs: Any, **kwargs: Any) -> Any:
        # Replayed by Functional.from_config: same parents, same node.
        return self.symbolic(self._tensor_list(inputs))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(op=self.op, args=encode_argument(list(self.op_args)), kwargs=encode_argument(self.op_kwargs))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OpLayer:
        config = dict(config)
        op, args, kwargs = config.pop("op"), config.pop("args", []), config.pop("kwargs", {})
        return cls(op, decode_argument(args), decode_argument(kwargs) if kwargs else {}, **config)


def _count_slots(value: Any) -> int:
    if isinstance(value, Slot):
        return 1
    if isinstance(value, (list, tuple)):
        return sum(_count_slots(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_slots(v) for v in value.values())
    return 0


def _fake(kt: KerasTensor, unknown: int) -> torch.Tensor:
    shape = tuple(unknown if s is None else int(s) for s in kt.shape)
    return torch.empty(shape, dtype=TORCH_DTYPES[standardize_dtype(kt.dtype)], device="meta")


def symbolic_call(name: str, args: tuple, kwargs: dict) -> Any:
    """Record op ``name`` applied to ``args``/``kwargs`` (holding KerasTensors) as a graph node."""
    parents: list[KerasTensor] = []
    template_args = template_slots(tuple(args), parents)
    template_kwargs = template_slots(dict(kwargs), parents)
    return OpLayer(name, template_args, template_kwargs).symbolic(parents)


# Argument types that hold no KerasTensor (checked by exact type: subclasses take the full walk).
_PLAIN = frozenset({torch.Tensor, int, float, bool, str, type(None)})


def keras_op(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a ``keras.ops`` function; calls holding KerasTensors build graph nodes instead."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        op_name = name or fn.__name__
        OPS[op_name] = fn

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Tensors and Python scalars (the usual arguments inside a layer's call) are never
            # symbolic: a flat type scan (no call per argument) lets them through.
            for value in args:
                if type(value) not in _PLAIN:
                    break
            else:
                for value in kwargs.values():
                    if type(value) not in _PLAIN:
                        break
                else:
                    return fn(*args, **kwargs)
            if has_symbolic(args) or has_symbolic(kwargs):
                return symbolic_call(op_name, args, kwargs)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
