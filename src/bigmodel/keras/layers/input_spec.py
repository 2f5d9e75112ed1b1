"""``keras.InputSpec``: what a layer accepts (dtype, rank, sizes), checked when it is called.

A layer sets ``self.input_spec = InputSpec(ndim=4, axes={-1: 3})`` (or a list, one per input),
in ``__init__`` or ``build``; ``Layer`` then checks every call's inputs against it, eager and
symbolic, and raises a ``ShapeError`` naming the layer, the input and what was expected (Keras's
checks and messages, ``keras.src.layers.input_spec.assert_input_compatibility``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bigmodel.errors import ConfigError, ShapeError

__all__ = ["InputSpec", "assert_input_compatibility"]


def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


class InputSpec:
    """The rank, dtype and sizes a layer's input must have.

    Args:
        dtype: expected dtype name (e.g. ``"float32"``), or None.
        shape: full expected shape (batch axis included; ``None`` = any size); sets ``ndim``.
        ndim / max_ndim / min_ndim: expected rank, or its bounds.
        axes: ``{axis: size}`` for axes that must have a given size.
        allow_last_axis_squeeze: a trailing axis of size 1 may be missing on either side.
        name: the input's name (for dict inputs).
        optional: the input may be None.

    Raises:
        ConfigError: ``axes`` is not a dict with integer keys, or names an axis beyond the rank.
    """

    def __init__(self, dtype: Any = None, shape: Sequence[int | None] | None = None,
                 ndim: int | None = None, max_ndim: int | None = None,
                 min_ndim: int | None = None, axes: dict[int, int | None] | None = None,
                 allow_last_axis_squeeze: bool = False, name: str | None = None,
                 optional: bool = False):
        self.dtype = None if dtype is None else _dtype_name(dtype)
        if shape is not None:
            self.shape: tuple[int | None, ...] | None = tuple(
                None if s is None else int(s) for s in shape)
            self.ndim = len(self.shape)
        else:
            self.shape, self.ndim = None, ndim
        self.max_ndim, self.min_ndim = max_ndim, min_ndim
        self.name, self.optional = name, bool(optional)
        self.allow_last_axis_squeeze = bool(allow_last_axis_squeeze)
        try:
            axes = axes or {}
            self.axes = {int(k): axes[k] for k in axes}
        except (ValueError, TypeError):
            raise ConfigError("InputSpec: argument `axes` must be a dict with integer keys. "
                              f"Received: axes={axes!r}") from None
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim else self.max_ndim) - 1
            if max(self.axes) > max_dim:
                raise ConfigError(f"InputSpec: axis {max(self.axes)} is greater than the maximum "
                                  f"allowed value: {max_dim}")

    def __repr__(self) -> str:
        parts = [f"{key}={value}" for key, value in (
            ("dtype", self.dtype), ("shape", self.shape), ("ndim", self.ndim),
            ("max_ndim", self.max_ndim), ("min_ndim", self.min_ndim), ("axes", self.axes))
            if value]
        return f"InputSpec({', '.join(parts)})"

    def get_config(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes,
                "optional": self.optional}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InputSpec:
        return cls(**config)


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _flatten(item)]
    return [value]


def assert_input_compatibility(input_spec: Any, inputs: Any, layer_name: str) -> None:
    """Check ``inputs`` (a tensor, KerasTensor or a structure of them) against ``input_spec``.

    Raises:
        ShapeError: a count, rank, dtype or size that does not match (the message names the
            layer, the input's index and name, what was expected and what was received).
    """
    if not input_spec:
        return
    specs = _flatten(input_spec)
    if isinstance(inputs, dict) and all(s is not None and s.name for s in specs):
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise ShapeError(f'Missing data for input "{missing[0]}" of layer "{layer_name}". '
                             f"You passed a data dictionary with keys {list(inputs)}. Expected "
                             f"the following keys: {[s.name for s in specs]}")
        inputs = [inputs[s.name] for s in specs]
    values = _flatten(inputs)
    if len(values) != len(specs):
        raise ShapeError(f'Layer "{layer_name}" expects {len(specs)} input(s), but it received '
                         f"{len(values)} input tensors")
    for index, (x, spec) in enumerate(zip(values, specs)):
        if spec is None or (x is None and spec.optional):
            continue
        if not hasattr(x, "shape"):
            raise ShapeError(f"Inputs to a layer should be tensors. Got '{x}' (of type "
                             f"{type(x).__name__}) as input for layer '{layer_name}'")
        shape = tuple(None if s is None else int(s) for s in x.shape)
        ndim = len(shape)
        head = (f"Input {index} with name '{spec.name}' of layer '{layer_name}' is incompatible "
                "with the layer")
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ShapeError(f"{head}: expected ndim={spec.ndim}, found ndim={ndim}. Full shape "
                             f"received: {shape}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ShapeError(f"{head}: expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ShapeError(f"{head}: expected min_ndim={spec.min_ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape}")
        if spec.dtype is not None and _dtype_name(x.dtype) != spec.dtype:
            raise ShapeError(f"{head}: expected dtype={spec.dtype}, found "
                             f"dtype={_dtype_name(x.dtype)}")
        for axis, value in spec.axes.items():
            if value is not None and -ndim <= axis < ndim and shape[axis] not in (value, None):
                raise ShapeError(f"{head}: expected axis {axis} of input shape to have value "
                                 f"{value}, but received input with shape {shape}")
        if spec.shape is not None:
            want, got = spec.shape, shape
            if spec.allow_last_axis_squeeze:
                got = got[:-1] if got and got[-1] == 1 else got
                want = want[:-1] if want and want[-1] == 1 else want
            for want_dim, dim in zip(want, got):
                if want_dim is not None and dim is not None and want_dim != dim:
                    raise ShapeError(f"{head}: expected shape={spec.shape}, found "
                                     f"shape={shape}")
