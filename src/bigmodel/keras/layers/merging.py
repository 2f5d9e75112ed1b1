"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, and their
functional forms ``add``, ``subtract``, ... ``dot``.

Each takes a *list* of tensors (``layers.Add()([x, y])``). Element-wise merges follow Keras 3:
the batch axes must agree, the other axes broadcast NumPy-style (size 1 stretches), and an input of
lower rank gets new axes right after the batch axis. Timestep masks are OR-ed (Concatenate: OR
over the concatenated mask), as Keras does; masked positions are not zeroed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import is_int
from bigmodel.keras.layers.symbolic import Shape, is_shape_list

__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
           "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply", "subtract"]


def _require_list(layer: Layer, shapes: Any) -> list[Shape]:
    if not is_shape_list(shapes):
        raise ShapeError(f"Layer '{layer.name}' ({type(layer).__name__}): a merge layer should be "
                         f"called on a list of inputs. Received: input_shape={shapes} (not a list "
                         "of shapes)")
    return [tuple(s) for s in shapes]


def _broadcast_pair(layer: Layer, shape1: Shape, shape2: Shape) -> Shape:
    """Keras's element-wise output shape of two shapes (batch axis excluded)."""
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1 or j == 1:
            out.append(j if i == 1 else i)
        elif i != j:
            raise ShapeError(f"Layer '{layer.name}' ({type(layer).__name__}): inputs have "
                             f"incompatible shapes. Received shapes {tuple(shape1)} and "
                             f"{tuple(shape2)}")
        else:
            out.append(i)
    return tuple(out)


def _batch_size(layer: Layer, shapes: list[Shape]) -> int | None:
    sizes = {s[0] for s in shapes if s} - {None}
    if len(sizes) > 1:
        raise ShapeError(f"Layer '{layer.name}' ({type(layer).__name__}): cannot merge tensors "
                         f"with different batch sizes. Received tensors with shapes {shapes}")
    return next(iter(sizes)) if sizes else None


def _real_shapes(inputs: Sequence[torch.Tensor]) -> list[Shape]:
    return [tuple(t.shape) for t in inputs]


class _Merge(Layer):
    """Element-wise merge of a list of tensors (subclasses define ``_merge``)."""

    supports_masking = True
    min_inputs = 1

    def build(self, input_shape: Any) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _require_list(self, input_shape)
        if len(shapes) < self.min_inputs:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}) should be called on "
                             f"at least {self.min_inputs} inputs. Received {len(shapes)} inputs: "
                             f"{shapes}")
        batch = _batch_size(self, shapes)
        out = shapes[0][1:]
        for shape in shapes[1:]:
            out = _broadcast_pair(self, out, shape[1:])
        return (batch, *out)

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): a merge layer should "
                             f"be called on a list of inputs. Received one tensor of shape "
                             f"{tuple(inputs.shape)}")
        inputs = [torch.as_tensor(t) for t in inputs]
        shapes = _real_shapes(inputs)
        if len(set(shapes)) > 1:  # the usual equal-shape case needs no check
            self.compute_output_shape(shapes)
            rank = max(len(s) for s in shapes)
            # Keras aligns a lower-rank input by new axes right after the batch axis.
            inputs = [t.reshape(t.shape[0], *([1] * (rank - t.dim())), *t.shape[1:])
                      for t in inputs]
        return self._merge(inputs)

    def _merge(self, inputs: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if not isinstance(mask, (list, tuple)) or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out


class Add(_Merge):
    """Sum of a list of inputs (all of the same shape, or broadcastable)."""

    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``; exactly two inputs."""

    min_inputs = 2

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _require_list(self, input_shape)
        if len(shapes) != 2:
            raise ShapeError(f"Layer '{self.name}' (Subtract) should be called on exactly 2 "
                             f"inputs. Received: input_shape={shapes}")
        return super().compute_output_shape(shapes)

    def _merge(self, inputs):
        return inputs[0] - inputs[1]


class Multiply(_Merge):
    """Element-wise product of a list of inputs."""

    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out


class Average(_Merge):
    """Element-wise mean of a list of inputs."""

    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out / len(inputs)


class Maximum(_Merge):
    """Element-wise maximum of a list of inputs."""

    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = torch.maximum(out, x)
        return out


class Minimum(_Merge):
    """Element-wise minimum of a list of inputs."""

    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = torch.minimum(out, x)
        return out


class Concatenate(_Merge):
    """Concatenates a list of inputs along ``axis`` (default -1); the other axes must match.

    Args:
        axis: the concatenation axis (may be negative; 0, the batch axis, is allowed as in Keras).
    """

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise ConfigError(f"Layer '{self.name}' (Concatenate): `axis` must be an integer. "
                              f"Received: axis={axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _require_list(self, input_shape)
        ranks = {len(s) for s in shapes}
        problem = len(ranks) != 1
        if not problem:
            rank = ranks.pop()
            if not -rank <= self.axis < rank:
                raise ShapeError(f"Layer '{self.name}' (Concatenate): axis={self.axis} is out of "
                                 f"range for inputs of rank {rank}. Received: input_shape={shapes}")
            axis = self.axis % rank
            for dim in range(rank):
                sizes = {s[dim] for s in shapes} - {None}
                if dim != axis and len(sizes) > 1:
                    problem = True
        if problem:
            raise ShapeError(f"Layer '{self.name}' (Concatenate): a `Concatenate` layer requires "
                             f"inputs with matching shapes except for the concatenation axis. "
                             f"Received: input_shape={shapes}")
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = None if None in sizes else sum(sizes)
        for dim in range(len(out)):
            if dim != axis and out[dim] is None:
                out[dim] = next((s[dim] for s in shapes if s[dim] is not None), None)
        return tuple(out)

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ShapeError(f"Layer '{self.name}' (Concatenate) should be called on a list of "
                             f"inputs. Received one tensor of shape {tuple(inputs.shape)}")
        inputs = [torch.as_tensor(t) for t in inputs]
        try:
            return torch.cat(inputs, dim=self.axis)
        except RuntimeError:
            self.compute_output_shape(_real_shapes(inputs))  # raises the Keras-style message
            raise

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if not isinstance(mask, (list, tuple)) or all(m is None for m in mask):
            return None
        full = []
        for x, m in zip(inputs, mask):
            if m is None:
                full.append(torch.ones_like(x, dtype=torch.bool))
            elif m.dim() < x.dim():
                full.append(m.unsqueeze(-1).expand(x.shape))
            else:
                full.append(m)
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Dot product of two inputs along ``axes`` (per sample, as ``keras.ops`` batch_dot).

    Args:
        axes: an int, or a pair ``(axis_of_input_0, axis_of_input_1)``; axes count the batch axis
            (0) like Keras, so ``axes=1`` on two ``(batch, d)`` inputs gives ``(batch, 1)``.
        normalize: L2-normalize both inputs along the dot axes first (the result is then the
            cosine similarity).
    """

    supports_masking = False

    def __init__(self, axes: int | Sequence[int], normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        valid = is_int(axes) or (isinstance(axes, (list, tuple)) and len(axes) == 2
                                 and all(is_int(a) for a in axes))
        if not valid:
            raise ConfigError(f"Layer '{self.name}' (Dot): invalid format for argument `axes`: "
                              f"expected an int or a list/tuple of 2 ints. Received: axes={axes!r}")
        if not isinstance(normalize, bool):
            raise ConfigError(f"Layer '{self.name}' (Dot): `normalize` must be a bool. "
                              f"Received: normalize={normalize!r}")
        self.axes: int | tuple[int, int] = int(axes) if is_int(axes) else (
            int(axes[0]), int(axes[1]))
        self.normalize = normalize

    def _resolved_axes(self, shape1: Shape, shape2: Shape) -> tuple[int, int]:
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        axes = []
        for axis, shape in zip(pair, (shape1, shape2)):
            if not -len(shape) <= axis < len(shape) or axis % len(shape) == 0:
                raise ShapeError(f"Layer '{self.name}' (Dot): axes={self.axes} is invalid for "
                                 f"inputs of shapes {tuple(shape1)} and {tuple(shape2)} (axis 0 "
                                 "is the batch axis)")
            axes.append(axis % len(shape))
        return axes[0], axes[1]

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _require_list(self, input_shape)
        if len(shapes) != 2:
            raise ShapeError(f"Layer '{self.name}' (Dot) should be called on a list of 2 inputs. "
                             f"Received: input_shape={shapes}")
        shape1, shape2 = shapes
        _batch_size(self, shapes)
        a1, a2 = self._resolved_axes(shape1, shape2)
        if shape1[a1] is not None and shape2[a2] is not None and shape1[a1] != shape2[a2]:
            raise ShapeError(f"Layer '{self.name}' (Dot): incompatible input shapes: axis values "
                             f"{shape1[a1]} (at axis {a1}) != {shape2[a2]} (at axis {a2}). "
                             f"Full input shapes: {tuple(shape1)}, {tuple(shape2)}")
        out = [s for i, s in enumerate(shape1) if i != a1]
        out += [s for i, s in enumerate(shape2) if i not in (0, a2)]
        return tuple(out) if len(out) > 1 else (out[0], 1)

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ShapeError(f"Layer '{self.name}' (Dot) should be called on a list of 2 inputs")
        x1, x2 = (torch.as_tensor(t) for t in inputs)
        self.compute_output_shape([tuple(x1.shape), tuple(x2.shape)])
        a1, a2 = self._resolved_axes(tuple(x1.shape), tuple(x2.shape))
        if self.normalize:
            x1 = F.normalize(x1, dim=a1, eps=1e-12)
            x2 = F.normalize(x2, dim=a2, eps=1e-12)
        # (B, P, k) @ (B, k, Q) -> (B, P, Q), then unflatten P and Q.
        left = x1.movedim(a1, -1)
        right = x2.movedim(a2, 1)
        rest1, rest2 = left.shape[1:-1], right.shape[2:]
        out = torch.bmm(left.reshape(left.shape[0], -1, left.shape[-1]),
                        right.reshape(right.shape[0], right.shape[1], -1))
        out = out.reshape(out.shape[0], *rest1, *rest2)
        return out.unsqueeze(-1) if out.dim() == 1 else out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def get_config(self) -> dict[str, Any]:
        axes = self.axes if isinstance(self.axes, int) else list(self.axes)
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}


# ------------------------------------------------------------------------------- functional forms
def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: Sequence[Any], axes: int | Sequence[int] = -1, normalize: bool = False,
        **kwargs: Any) -> Any:
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
