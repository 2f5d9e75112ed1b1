"""The one batched-inference loop: a model's outputs for many inputs, batch by batch, in eval mode
and without autograd, concatenated along the batch axis.

Every place that runs a model over data (``Trainer.predict``, the recipes' logits, compression's
accuracy, sentence embeddings, the int8 model) calls :func:`predict_batches`; what differs between
them is a hook: ``collate`` turns a slice of the inputs into model inputs (tokenizing texts,
trimming padding), ``forward`` runs one batch (autocast and memory format in the trainer, an ONNX
Runtime session for the int8 model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.data.batching import (
    ArrayBatches,
    Batches,
    is_array_structure,
    make_batches,
    tree_map,
)
from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError, describe

_NO_VALUE = object()


def predict_batches(model: Callable[..., Any], inputs: Any, batch_size: int = 128, *,
                    device: torch.device | str | None = None,
                    forward: Callable[[Any], Any] | None = None,
                    collate: Callable[[Any], Any] | None = None,
                    to_cpu: bool = True, empty: Any = _NO_VALUE,
                    inference_mode: bool = True, name: str = "predict") -> Any:
    """Outputs of ``model`` over ``inputs`` in batches, concatenated on the batch axis.

    An ``nn.Module`` is put in eval mode for the pass and given back in the mode it was in (also
    when a batch raises). Batches are moved to ``device`` before ``forward``.

    Args:
        model: an ``nn.Module`` or any callable (called as ``model(batch_inputs)``).
        inputs: one of
            - an array/tensor ``(N, ...)``, or a tuple/list/dict of them ``(N, ...)`` for a model
              with several inputs (the model receives the same structure, sliced);
            - a ``torch.utils.data.Dataset`` (items ``x`` or ``(x, y)``), a ``DataLoader`` or any
              iterable of batches (``x`` or ``(x, y[, w])``; only ``x`` is used);
            - with ``collate``: any other sequence of samples (texts, token-id lists, ...), sliced
              into chunks of ``batch_size`` that ``collate`` turns into model inputs.
        batch_size: samples per batch (a ``DataLoader`` keeps its own).
        device: where batches go; default the device of the model's first parameter (no move
            for a callable without parameters).
        forward: ``forward(batch_inputs) -> outputs`` replacing ``model(batch_inputs)`` (autocast,
            memory format, an ONNX Runtime session, ``model.sentence_embedding``...).
        collate: ``collate(batch) -> batch_inputs`` applied to each batch on the CPU before the
            move (tokenize a chunk of texts, trim padding columns).
        to_cpu: move each batch's outputs to the CPU as they come (frees accelerator memory).
        empty: returned when ``inputs`` holds no samples (a value, or a callable making one);
            by default no samples raise :class:`DataError`.
        inference_mode: run under ``torch.inference_mode`` (fastest); ``False`` uses
            ``torch.no_grad`` (for modules that build parameters or caches on their first call).
        name: names the caller in error messages.

    Returns:
        A tensor ``(N, ...)``, or a tuple/list/dict of them when the model returns one; ordinary
        tensors (not inference tensors), so callers may modify them in place.

    Raises:
        ConfigError: ``batch_size`` is not a positive integer.
        InputTypeError: ``inputs`` of an unsupported type, or outputs that are not tensors.
        DataError: no samples (without ``empty``), mismatched sample counts, NaN/Inf in inputs.
        ShapeError: an output without a batch axis, or batches whose outputs disagree in structure.
    """
    if device is None and isinstance(model, nn.Module):
        first = next(model.parameters(), None)
        if first is None:
            first = next(model.buffers(), None)
        device = first.device if first is not None else None
    device = torch.device(device) if device is not None else None
    if not isinstance(inputs, (ArrayBatches, Batches, torch.utils.data.DataLoader)):
        # (a DataLoader, or batches made by the caller, keep their own batch size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"{name}: batch_size must be a positive integer; "
                              f"received batch_size={batch_size!r}")
        batch_size = int(batch_size)
    if _num_samples(inputs, collate) == 0:
        return _empty(empty, name)
    batches = _batches(inputs, batch_size, collate, device, name)
    run = forward if forward is not None else model
    parts: list[Any] = []
    is_module = isinstance(model, nn.Module)
    was_training = model.training if is_module else False
    if is_module:
        model.eval()
    grad_mode = torch.inference_mode() if inference_mode else torch.no_grad()
    try:
        with grad_mode:
            for batch in batches:
                if collate is not None:
                    batch = _tensors(collate(batch))
                if device is not None and device.type != "cpu":
                    batch = tree_map(lambda t: t.to(device, non_blocking=True), batch)
                out = run(batch)
                if type(out) is torch.Tensor and out.device.type == "cpu":
                    parts.append(out.detach())  # the common case, without the tree walk
                else:
                    parts.append(tree_map(lambda t: t.detach().cpu() if to_cpu else t.detach(),
                                          out))
    finally:
        if is_module:
            model.train(was_training)
    if not parts:
        return _empty(empty, name)
    # Concatenated outside inference mode: torch.cat then returns ordinary tensors.
    return _concat(parts, name, "output")


def _num_samples(inputs: Any, collate: Callable | None) -> int | None:
    """0 when ``inputs`` visibly holds no samples; the count of a sample sequence; else ``None``
    (arrays are validated, and iterables counted, where they are batched)."""
    if is_array_structure(inputs):
        values = (inputs.values() if isinstance(inputs, Mapping) else inputs
                  if isinstance(inputs, (tuple, list)) else [inputs])
        sizes = {value.shape[0] if value.ndim else None for value in values}
        return 0 if sizes == {0} else None
    if _is_sample_sequence(inputs, collate):
        return len(inputs)
    if isinstance(inputs, torch.utils.data.Dataset) and not isinstance(
            inputs, torch.utils.data.IterableDataset) and hasattr(inputs, "__len__"):
        return len(inputs)  # type: ignore[arg-type]
    return None


def _tensors(tree: Any) -> Any:
    """NumPy arrays from ``collate`` (a tokenizer's ids) as tensors, in the same structure."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tensors(item) for item in tree)
    if isinstance(tree, Mapping):
        return {key: _tensors(item) for key, item in tree.items()}
    return tree


def _is_sample_sequence(inputs: Any, collate: Callable | None) -> bool:
    """A sequence of samples that ``collate`` turns into batches (texts, id lists, ...)."""
    if collate is None or isinstance(inputs, (str, bytes, Mapping, torch.utils.data.Dataset)):
        return False
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in "USO"  # strings / objects: not model-ready numbers
    return isinstance(inputs, Sequence) and not is_array_structure(inputs)


def _batches(inputs: Any, batch_size: Any, collate: Callable | None, device: torch.device | None,
             name: str):
    """An iterable of model inputs (the ``x`` of each batch), still on the CPU when ``collate``
    will reshape them."""
    if isinstance(inputs, (ArrayBatches, Batches)):  # already batched by the caller
        return (batch[0] for batch in inputs)
    if isinstance(inputs, torch.utils.data.DataLoader):  # keeps its own batch size
        return (batch[0] for batch in Batches(inputs))
    if _is_sample_sequence(inputs, collate):
        return (inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size))
    if not is_array_structure(inputs) and not isinstance(inputs, torch.utils.data.Dataset) and (
            isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable)):
        hint = "" if collate is not None else "; pass collate= to batch a sequence of samples"
        raise InputTypeError(
            f"{name} inputs must be an array/tensor (or a tuple/list/dict of them), a Dataset, a "
            f"DataLoader or an iterable of batches; received {describe(inputs)}{hint}")
    # Without collate, in-memory data moves to the device once when it fits.
    source = make_batches(inputs, batch_size, False, None, None if collate else device, name,
                          require_targets=False)
    return (batch[0] for batch in source)


def _empty(empty: Any, name: str) -> Any:
    if empty is _NO_VALUE:
        raise DataError(f"{name} received no samples")
    return empty() if callable(empty) else empty


def _concat(parts: list[Any], name: str, where: str) -> Any:
    """Concatenate per-batch outputs of one structure along their first axis."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        for part in parts:
            if not isinstance(part, torch.Tensor):
                raise ShapeError(f"{name}: {where} is a tensor in one batch and {describe(part)} in another")
            if part.ndim == 0:
                raise ShapeError(f"{name}: {where} has no batch axis (a 0-d tensor); the model must "
                                 "return one row per sample")
        return torch.cat(parts)
    if isinstance(first, Mapping):
        if any(not isinstance(part, Mapping) or part.keys() != first.keys() for part in parts):
            raise ShapeError(f"{name}: {where} dicts differ between batches; keys {sorted(first)}")
        return {key: _concat([part[key] for part in parts], name, f"{where}[{key!r}]") for key in first}
    if isinstance(first, (tuple, list)):
        if any(type(part) is not type(first) or len(part) != len(first) for part in parts):
            raise ShapeError(f"{name}: {where} changes structure between batches "
                             f"(first a {type(first).__name__} of {len(first)})")
        items = [_concat([part[i] for part in parts], name, f"{where}[{i}]") for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    if first is None and all(part is None for part in parts):
        return None
    raise InputTypeError(f"{name}: the model's {where} must be tensors (or a tuple/list/dict of "
                         f"them); received {describe(first)}")


__all__ = ["predict_batches"]
