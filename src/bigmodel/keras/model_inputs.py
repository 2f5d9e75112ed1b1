"""Structured data of ``keras.Model``: several inputs and several outputs, as Keras 3 takes them.

A model with several inputs takes ``x`` as a list/tuple in input order or a dict keyed by input
names; a model with several outputs takes ``y`` (and a per-output ``sample_weight``) as a list in
output order or a dict keyed by output names (Keras 3's ``array_data_adapter`` and
``compile_utils``). This module turns each into tensors in model order, checks that every array has
the same number of samples, and names the input or output at fault when something does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bigmodel.data.batching import tree_leaves, tree_map
from bigmodel.errors import DataError, InputTypeError, ShapeError, describe
from bigmodel.keras.string_inputs import StringIds, is_string_array, string_ids

if TYPE_CHECKING:
    # a keras Model (a Layer); the model module imports this one
    from bigmodel.keras.layers.base import Layer

__all__ = ["check_sample_counts", "input_adjusted", "input_names", "integer_input", "is_structure", "num_samples", "slice_data",
           "standardize_inputs", "structured_targets", "structured_weights"]

# Layers whose inputs are integer indices: integer data for them is not cast to float.
_INTEGER_INPUT_LAYERS = ("Embedding",)


def is_structure(value: Any) -> bool:
    """A non-empty list/tuple/dict whose values are all arrays or tensors (several inputs)."""
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return False
    return bool(items) and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in items)


def input_names(model: Layer) -> list[str] | None:
    """Names of a functional model's inputs, in order (``None`` for other models)."""
    inputs = getattr(model, "_inputs", None)
    if not inputs:
        return None
    return getattr(model, "_input_keys", None) or [kt.name for kt in inputs]


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InputTypeError(f"{what} must be a NumPy array or a torch tensor; received "
                             f"{type(value).__name__}")
    if is_string_array(value):  # strings travel as interned ids to the string layers
        return string_ids(value, what)
    if value.dtype.kind not in "biuf":
        raise InputTypeError(f"{what} must hold numbers; received dtype {value.dtype}")
    return torch.from_numpy(np.ascontiguousarray(value))


def input_adjusted(x: torch.Tensor, ref: Any, integer_ok: bool) -> torch.Tensor:
    """Keras 3's input adjustments: float64/integers -> float32 (integers kept for index inputs),
    a missing trailing 1-axis added, an extra one dropped."""
    if isinstance(x, StringIds):  # string data: ids, never cast
        integer_ok = True
    if not x.is_floating_point() and not integer_ok:
        x = x.to(torch.float32)
    elif x.dtype == torch.float64:
        x = x.to(torch.float32)
    if ref is not None:
        if x.dim() == len(ref) - 1 and ref[-1] == 1:
            x = x.unsqueeze(-1)
        elif x.dim() == len(ref) + 1 and x.shape[-1] == 1 and ref[-1] != 1:
            x = x.squeeze(-1)
    return x


def integer_input(model: Layer, index: int) -> bool:
    """Whether input ``index`` takes integer data as is: a functional input declared integer or
    feeding an ``Embedding``; for other models, an ``Embedding`` first layer."""
    if not getattr(model, "_inputs", None):
        layers = model.layers
        return bool(layers) and type(layers[0]).__name__ in _INTEGER_INPUT_LAYERS
    # A functional graph never changes after construction: the answer is kept (it is asked on
    # every call of the model, and walks the graph).
    known = model.__dict__.setdefault("_integer_inputs", {})
    if index not in known:
        kt = model._inputs[index]
        known[index] = str(kt.dtype).startswith(("int", "uint", "bool")) or any(
            type(node.layer).__name__ in _INTEGER_INPUT_LAYERS
            and any(parent is kt for parent in node.parents)
            for node in getattr(model, "_nodes", ()))
    return known[index]


def standardize_inputs(model: Layer, x: Any, what: str | None = None) -> Any:
    """``x`` as the model's ``call`` takes it, converted to tensors.

    A functional model with several inputs gets a list in input order (from a list, a tuple or a
    dict keyed by input names); a subclassed model gets its list/dict with each value converted.

    Args:
        model: the model to be called.
        x: an array/tensor, or a list/tuple/dict of them.
        what: names the call in messages (``"fit"``); ``None`` for a direct call.

    Raises:
        ShapeError: a list/tuple with the wrong number of inputs.
        DataError: a dict with a key that is not an input name, or missing an input.
        InputTypeError: a value that is not numeric array data.
    """
    if what is None and type(x) is torch.Tensor and len(getattr(model, "_inputs", None) or ()) <= 1:
        return model._standardize_input(x)  # the common direct call: one tensor, one input
    where = f"{what}: " if what else ""
    names = input_names(model)
    if names is not None and (len(names) > 1 or isinstance(x, Mapping)):
        given = _in_input_order(model, x, names, where)
        out = [input_adjusted(_as_tensor(value, f"{where}input '{name}'"),
                               model._inputs[i].shape, integer_input(model, i))
               for i, (name, value) in enumerate(zip(names, given))]
        return out[0] if len(out) == 1 else out
    if isinstance(x, Mapping):
        return {key: model._standardize_input(_as_tensor(value, f"{where}x[{key!r}]"))
                for key, value in x.items()}
    if isinstance(x, (list, tuple)) and is_structure(x):
        if len(x) == 1 and names is not None:
            return model._standardize_input(_as_tensor(x[0], f"{where}x[0]"))
        if names is None and model._is_subclassed():
            return [model._standardize_input(_as_tensor(v, f"{where}x[{i}]"))
                    for i, v in enumerate(x)]
    return model._standardize_input(_as_tensor(x, f"{where}x") if what else x)


def _in_input_order(model: Layer, x: Any, names: list[str], where: str) -> list[Any]:
    if isinstance(x, Mapping):
        unknown = [key for key in x if key not in names]
        if unknown:
            raise DataError(f"{where}x has keys {unknown} that are not input names of model "
                            f"'{model.name}'; its inputs are {names}")
        missing = [name for name in names if name not in x]
        if missing:
            raise DataError(f"{where}missing data for input {missing[0]!r} of model "
                            f"'{model.name}'; x has keys {list(x)}, expected {names}")
        return [x[name] for name in names]
    if isinstance(x, (list, tuple)):
        if len(x) != len(names):
            raise ShapeError(f"{where}model '{model.name}' expects {len(names)} inputs {names}; "
                             f"received {len(x)} array(s)")
        return list(x)
    raise ShapeError(f"{where}model '{model.name}' expects {len(names)} inputs {names} as a list "
                     f"or a dict keyed by input name; received {describe(x)}")


def _per_output(model: Layer, value: Any, what: str, role: str) -> list[Any]:
    """A list/tuple/dict of ``role`` arrays as one entry per output (``None`` where absent)."""
    names = model._output_names()
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise DataError(f"{what}: {role} has keys {unknown} that are not output names of "
                            f"model '{model.name}'; its outputs are {names}")
        return [value.get(name) for name in names]
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        count = len(value) if isinstance(value, (list, tuple)) else 1
        raise ShapeError(f"{what}: model '{model.name}' has {len(names)} outputs {names}; {role} "
                         f"must be a list or a dict of {len(names)} arrays, received {count} "
                         f"({describe(value)})")
    return list(value)


def structured_targets(model: Layer, y: Any, what: str) -> Any:
    """``y`` for a model with several outputs: a list of tensors in output order (``None`` for an
    output without targets); one output: the tensor (a 1-list/dict is unwrapped)."""
    names = model._output_names()
    if len(names) == 1:
        if isinstance(y, Mapping) and len(y) == 1:
            (key, y), = y.items()
            if key != names[0]:
                raise DataError(f"{what}: y has key {key!r}, not the output name {names[0]!r} "
                                f"of model '{model.name}'")
        elif isinstance(y, (list, tuple)) and len(y) == 1 and is_structure(y):
            y = y[0]
        return torch.as_tensor(_as_tensor(y, f"{what}: y"))
    parts = _targets_of_losses(model, y)
    if parts is None:
        parts = _per_output(model, y, what, "y")
    return [None if part is None else _as_tensor(part, f"{what}: y[{name!r}]")
            for name, part in zip(names, parts)]


def _targets_of_losses(model: Layer, y: Any) -> list[Any] | None:
    """``y`` for only the outputs that have a loss, as Keras takes it when a list ``loss`` holds
    ``None`` for the others (``loss=[fn, None]`` with one ``y``, as keras.io's miniature GPT
    does): one entry per output in order, ``None`` for the rest; ``None`` when that does not apply."""
    compiled = getattr(model, "_compile_loss", None)
    if compiled is None or not compiled.built or isinstance(y, Mapping) or (
            isinstance(y, (list, tuple)) and len(y) == len(compiled._losses)):
        return None
    active = [i for i, loss in enumerate(compiled._losses) if loss is not None]
    given = list(y) if is_structure(y) else [y]
    if len(active) == len(compiled._losses) or len(given) != len(active):
        return None
    parts: list[Any] = [None] * len(compiled._losses)
    for index, part in zip(active, given):
        parts[index] = part
    return parts


def structured_weights(model: Layer, sample_weight: Any, what: str) -> Any:
    """``sample_weight``: one float32 vector for every output, or (several outputs) a list in
    output order from a list/dict of per-output vectors."""
    if sample_weight is None:
        return None
    names = model._output_names()
    if len(names) > 1 and isinstance(sample_weight, (list, tuple, Mapping)) \
            and not (isinstance(sample_weight, (list, tuple)) and sample_weight
                     and np.isscalar(sample_weight[0])):
        parts = _per_output(model, sample_weight, what, "sample_weight")
        return [None if part is None else
                _as_tensor(np.asarray(part) if not isinstance(part, torch.Tensor) else part,
                           f"{what}: sample_weight[{name!r}]").to(torch.float32)
                for name, part in zip(names, parts)]
    return torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32) \
        if not isinstance(sample_weight, torch.Tensor) else sample_weight.to(torch.float32)


def _labelled_leaves(value: Any, label: str, names: list[str] | None) -> list[tuple[str, Any]]:
    if isinstance(value, torch.Tensor):
        return [(label, value)]
    if isinstance(value, Mapping):
        return [(f"{label}[{k!r}]", v) for k, v in value.items() if v is not None]
    return [(f"{label}[{names[i]!r}]" if names and i < len(names) else f"{label}[{i}]", v)
            for i, v in enumerate(value) if v is not None]


def check_sample_counts(model: Layer, x: Any, y: Any, sample_weight: Any, what: str) -> int:
    """The common number of samples of every array; raises naming each when they disagree.

    Raises:
        DataError: arrays with different numbers of samples, or no samples.
    """
    leaves = (_labelled_leaves(x, "x", input_names(model))
              + ([] if y is None else _labelled_leaves(y, "y", model._output_names()))
              + ([] if sample_weight is None else
                 _labelled_leaves(sample_weight, "sample_weight", model._output_names())))
    sizes = {name: (len(t) if t.dim() else 0) for name, t in leaves}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise DataError(f"{what}: the arrays must have the same number of samples; {listing}")
    count = next(iter(sizes.values()), 0)
    if count == 0:
        raise DataError(f"{what}: received empty data (0 samples)")
    return count


def num_samples(x: Any) -> int:
    """Samples in a tensor or a structure of tensors (first axis of its first tensor)."""
    return len(tree_leaves(x)[0])


def slice_data(value: Any, start: int | None, stop: int | None) -> Any:
    """Rows ``start:stop`` of every tensor of a structure (``None`` stays ``None``)."""
    if value is None:
        return None
    return tree_map(lambda t: t[start:stop], value)
