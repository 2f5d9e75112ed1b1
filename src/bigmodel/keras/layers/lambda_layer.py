"""``Lambda`` (wrap a Python function as a layer), ``Identity``, and ``Input`` (the symbolic
input of functional models, exported as both ``keras.Input`` and ``keras.layers.Input``).

A Lambda built in code runs its function directly. Its config carries the function as Keras
does (a lambda as base64 marshalled bytecode, a named function by name) so that real Keras can
read saved models; *loading* such bytecode is refused here unless the loader explicitly allows
it, because it would execute code from the file.
"""

from __future__ import annotations

import base64
import marshal
import types
from collections.abc import Callable
from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.layer_registry import unique_name
from bigmodel.keras.layers.symbolic import KerasTensor, Shape, checked_shape, is_shape_list

__all__ = ["Identity", "Input", "Lambda"]


def Input(shape: Any = None, batch_size: int | None = None, dtype: Any = None,
          sparse: bool | None = None, batch_shape: Any = None, name: str | None = None,
          tensor: Any = None, optional: bool = False) -> KerasTensor:
    """A symbolic input of shape ``(batch_size, *shape)`` for functional models or Sequential.

    Raises:
        ConfigError: neither ``shape`` nor ``batch_shape``; a size that is not a positive integer
            or None; ``sparse=True``; ``tensor=``.
    """
    if batch_shape is not None:
        full = checked_shape(batch_shape, "batch_shape", "Input()", batch=True)
    elif shape is not None:
        full = (batch_size, *checked_shape(shape, "shape", "Input()"))
    else:
        raise ConfigError("Input() needs shape= or batch_shape=; received neither")
    if sparse:
        raise ConfigError("Input(sparse=True) is not supported: PyTorch layers here take dense "
                          "tensors")
    if tensor is not None:
        raise ConfigError("Input(tensor=...) is not supported: pass shape= (and dtype=)")
    return KerasTensor(full, dtype=str(dtype or "float32").replace("torch.", ""),
                       name=name or unique_name("input_layer"))


class Identity(Layer):
    """Returns its input unchanged (a placeholder, e.g. to strip a head)."""

    supports_masking = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _serialize_function(function: Callable[..., Any]) -> Any:
    """Keras 3's format: ``{"class_name": "__lambda__", "config": {code, defaults, closure}}``
    for a lambda, the function's name otherwise."""
    if isinstance(function, types.LambdaType) and function.__name__ == "<lambda>":
        code = base64.b64encode(marshal.dumps(function.__code__)).decode("ascii")
        closure = (None if function.__closure__ is None
                   else [cell.cell_contents for cell in function.__closure__])
        return {"class_name": "__lambda__",
                "config": {"code": code, "defaults": function.__defaults__, "closure": closure}}
    return getattr(function, "__name__", repr(function))


class Lambda(Layer):
    """Wraps ``function(inputs, **arguments)`` as a layer (no weights).

    Args:
        function: a callable on tensors (``torch`` operations, ``keras.ops``, or operators).
        output_shape: shape without the batch axis, or a callable ``input_shape -> shape``;
            when omitted it is inferred by running ``function`` on zeros (unknown sizes as 1).
        mask: a mask (or callable ``(inputs, mask) -> mask``) for the output.
        arguments: extra keyword arguments for ``function``.

    Raises:
        ConfigError: ``function`` is not callable, or is serialized bytecode (see module doc).
    """

    def __init__(self, function: Callable[..., Any], output_shape: Any = None, mask: Any = None,
                 arguments: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(function, dict) or isinstance(function, str):
            raise ConfigError(
                f"Layer '{self.name}' (Lambda): the function was given in serialized form "
                f"({str(function)[:60]!r}...). Loading a Lambda means executing Python bytecode "
                "from the file, which is refused by default; rebuild the Lambda in code (or load "
                "with safe_mode=False if you trust the file)")
        if not callable(function):
            raise ConfigError(f"Layer '{self.name}' (Lambda): `function` must be callable. "
                              f"Received: function={function!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise ConfigError(f"Layer '{self.name}' (Lambda): `arguments` must be a dict. "
                              f"Received: arguments={arguments!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = mask
        self._output_shape = output_shape
        self.supports_masking = mask is not None

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.function(inputs, **self.arguments)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._output_shape is None:
            return self._infer_shape(input_shape)
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        shape = tuple(self._output_shape)
        batch = input_shape[0][0] if is_shape_list(input_shape) else input_shape[0]
        return (batch, *shape)

    def _infer_shape(self, input_shape: Any) -> Any:
        def zeros(shape: Shape) -> torch.Tensor:
            return torch.zeros([2 if s is None else s for s in shape])

        sample = ([zeros(s) for s in input_shape] if is_shape_list(input_shape)
                  else zeros(input_shape))
        try:
            with torch.no_grad():
                out = self.function(sample, **self.arguments)
        except Exception as exc:  # the user's function: any failure means "cannot infer"
            raise ShapeError(f"Layer '{self.name}' (Lambda): could not infer the output shape by "
                             f"running the function on zeros of shape {input_shape} ({exc}); "
                             "pass output_shape=") from exc

        def shape_of(t: Any) -> Shape:
            if not isinstance(t, torch.Tensor):
                raise InputTypeError(f"Layer '{self.name}' (Lambda): the function returned "
                                     f"{type(t).__name__}, expected a tensor")
            batch = input_shape[0][0] if is_shape_list(input_shape) else input_shape[0]
            return (batch, *t.shape[1:]) if t.dim() else ()

        return [shape_of(t) for t in out] if isinstance(out, (list, tuple)) else shape_of(out)

    def get_config(self) -> dict[str, Any]:
        output_shape = self._output_shape
        if output_shape is not None and not callable(output_shape):
            output_shape = list(output_shape)
        elif callable(output_shape):
            output_shape = _serialize_function(output_shape)
        return {**super().get_config(), "function": _serialize_function(self.function),
                "output_shape": output_shape, "arguments": self.arguments,
                "mask": _serialize_function(self.mask) if callable(self.mask) else None}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Lambda:
        return cls(**config)
