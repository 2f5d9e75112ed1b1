"""``keras.ops`` that take a Python function: ``associative_scan`` and ``vectorize``.

``associative_scan`` also works on a functional model's symbolic inputs (the graph node keeps the
function; a model holding it cannot be saved to a config or a ``.keras`` file, as a function cannot
be stored there). ``vectorize`` returns a function that runs eagerly (inside a layer's ``call``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras import tree
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.ops.dtypes import convert_to_tensor
from bigmodel.keras.ops.node import keras_op


def _eager_only(op: str, values: list[Any]) -> None:
    if any(isinstance(v, KerasTensor) for v in values):
        raise NotSupportedError(f"keras.ops.{op} on a symbolic KerasTensor is not supported: use "
                                "it inside a layer's call(). See docs/keras.md")


@keras_op()
def associative_scan(f: Callable[[Any, Any], Any], elems: Any, reverse: bool = False,
                     axis: int = 0) -> Any:
    """Inclusive scan of ``elems`` along ``axis`` with an associative ``f`` (``cumsum`` for
    ``f = add``), as ``jax.lax.associative_scan``.

    ``f(a, b)`` must work elementwise on whole slices (it is called on stacks of slices), and be
    associative: the scan runs in ``ceil(log2(n))`` rounds (Hillis-Steele), each calling ``f``
    once on all the pairs of that round.

    Args:
        f: ``f(a, b) -> c``, each a structure like ``elems`` of tensors.
        elems: a tensor or a nested structure of tensors, all the same size along ``axis``.
        reverse: scan from the end (as flipping ``elems``, scanning and flipping back).
        axis: the axis scanned.

    Returns:
        The same structure as ``elems``: element ``i`` is ``f(... f(e0, e1) ..., ei)``.

    Raises:
        InputTypeError: ``f`` not callable. ShapeError: leaves of different sizes along ``axis``.
    """
    if not callable(f):
        raise InputTypeError(f"keras.ops.associative_scan: f must be callable; received "
                             f"{type(f).__name__}")
    leaves = [convert_to_tensor(leaf) for leaf in tree.flatten(elems)]
    if not leaves:
        raise ShapeError("keras.ops.associative_scan: elems holds no tensor")
    dims = [axis % leaf.dim() if leaf.dim() else None for leaf in leaves]
    if None in dims:
        raise ShapeError("keras.ops.associative_scan: elems must have rank >= 1; received a scalar")
    sizes = {leaf.shape[dim] for leaf, dim in zip(leaves, dims)}
    if len(sizes) != 1:
        raise ShapeError(f"keras.ops.associative_scan: every leaf of elems needs the same size "
                         f"along axis {axis}; received sizes {sorted(sizes)}")
    (size,) = sizes
    if reverse:
        leaves = [leaf.flip(dim) for leaf, dim in zip(leaves, dims)]

    def pack(values: list[torch.Tensor]) -> Any:
        return tree.pack_sequence_as(elems, values)

    step = 1
    while step < size:
        # out[i] = f(out[i - step], out[i]) for i >= step, all pairs at once
        earlier = pack([leaf.narrow(dim, 0, size - step) for leaf, dim in zip(leaves, dims)])
        later = pack([leaf.narrow(dim, step, size - step) for leaf, dim in zip(leaves, dims)])
        combined = [convert_to_tensor(v) for v in tree.flatten(f(earlier, later))]
        leaves = [torch.cat([leaf.narrow(dim, 0, step), new], dim=dim)
                  for leaf, new, dim in zip(leaves, combined, dims)]
        step *= 2
    if reverse:
        leaves = [leaf.flip(dim) for leaf, dim in zip(leaves, dims)]
    return pack(leaves)


_DIMS = r"\w+(?:,\s*\w+)*"
_ARGS = rf"\((?:{_DIMS})?\)"
_SIGNATURE = re.compile(rf"^{_ARGS}(?:,\s*{_ARGS})*->{_ARGS}(?:,\s*{_ARGS})*$")


def _parse_signature(signature: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    compact = signature.replace(" ", "")
    if not _SIGNATURE.match(compact):
        raise ConfigError(f"keras.ops.vectorize: signature must look like '(m,n),(n)->(m)'; "
                          f"received signature={signature!r}")
    inputs, outputs = compact.split("->")

    def groups(text: str) -> list[tuple[str, ...]]:
        return [tuple(d for d in g.split(",") if d) for g in re.findall(r"\(([^)]*)\)", text)]

    return groups(inputs), groups(outputs)


def vectorize(pyfunc: Callable[..., Any], *, excluded: Any = None,
              signature: str | None = None) -> Callable[..., Any]:
    """``pyfunc`` turned into a function that maps over the leading (broadcast) axes of its
    tensor arguments, as ``numpy.vectorize`` (the calls are batched with ``torch.vmap``).

    Args:
        pyfunc: a function of tensors (core-shaped, or scalars without ``signature``) that
            ``torch.vmap`` can batch (torch ops, no data-dependent Python control flow).
        excluded: positions (ints) or names (strs) of arguments passed through unchanged.
        signature: a generalized-ufunc signature such as ``"(n),(n)->()"``: the trailing core
            axes each argument keeps and each result has.

    Returns:
        The vectorized function.

    Raises:
        InputTypeError: ``pyfunc`` not callable. ConfigError: a malformed ``signature``;
        when called, ShapeError: arguments whose loop axes do not broadcast, or whose core axes
        are missing or disagree.
    """
    if not callable(pyfunc):
        raise InputTypeError(f"keras.ops.vectorize: pyfunc must be callable; received "
                             f"{type(pyfunc).__name__}")
    excluded = set(excluded or ())
    core = _parse_signature(signature) if signature is not None else None

    @functools.wraps(pyfunc)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        mapped_positions = [i for i in range(len(args)) if i not in excluded]
        mapped_names = [k for k in kwargs if k not in excluded]
        _eager_only("vectorize", [*args, *kwargs.values()])
        tensors = [convert_to_tensor(args[i]) for i in mapped_positions]
        tensors += [convert_to_tensor(kwargs[k]) for k in mapped_names]
        in_core = core[0] if core else [()] * len(tensors)
        if len(in_core) != len(tensors):
            raise ShapeError(f"keras.ops.vectorize: signature {signature!r} has {len(in_core)} "
                             f"inputs; received {len(tensors)} vectorized arguments")
        core_sizes: dict[str, int] = {}
        loop_shapes = []
        for position, (tensor, dims) in enumerate(zip(tensors, in_core)):
            if tensor.dim() < len(dims):
                raise ShapeError(f"keras.ops.vectorize: argument {position} needs core axes "
                                 f"{dims}; received shape {tuple(tensor.shape)}")
            for name, size in zip(dims, tensor.shape[tensor.dim() - len(dims):]):
                if core_sizes.setdefault(name, size) != size:
                    raise ShapeError(f"keras.ops.vectorize: core axis {name!r} is "
                                     f"{core_sizes[name]} and {size} in the arguments")
            loop_shapes.append(tensor.shape[:tensor.dim() - len(dims)])
        try:
            loop = torch.broadcast_shapes(*loop_shapes)
        except RuntimeError as error:
            raise ShapeError(f"keras.ops.vectorize: the loop axes {[tuple(s) for s in loop_shapes]}"
                             f" do not broadcast") from error
        count = 1
        for size in loop:
            count *= size
        flat = [t.expand(*loop, *t.shape[t.dim() - len(d):]).reshape(count, *t.shape[
            t.dim() - len(d):]) for t, d in zip(tensors, in_core)]

        def call_one(*values: torch.Tensor) -> Any:
            call_args, call_kwargs = list(args), dict(kwargs)
            for position, value in zip(mapped_positions, values):
                call_args[position] = value
            for name, value in zip(mapped_names, values[len(mapped_positions):]):
                call_kwargs[name] = value
            return pyfunc(*call_args, **call_kwargs)

        if not count:  # torch.vmap cannot map over zero elements (NumPy needs otypes there)
            raise ShapeError(f"keras.ops.vectorize: the loop axes {tuple(loop)} hold no "
                             "elements")
        result = torch.vmap(call_one)(*flat)
        return tree.map_structure(lambda out: out.reshape(*loop, *out.shape[1:]), result)

    return wrapped
