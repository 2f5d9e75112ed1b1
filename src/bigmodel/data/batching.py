"""Turn what a user trains on into an iterable of batches for the engine.

In-memory data -- ``(x, y)`` or ``(x, y, sample_weight)`` of NumPy arrays or tensors, where ``x`` may
also be a tuple/list/dict of arrays for multi-input models -- is validated once, converted once
(float64 -> float32, integer labels -> int64) and batched by index slicing: a permutation per epoch
from a seeded ``torch.Generator``, one gather per array per batch, no per-sample Python work.

A ``torch.utils.data.Dataset`` gets a ``DataLoader`` (shuffled with the same generator); a
``DataLoader`` or any other iterable of batches is used as given; both are wrapped in
:class:`Batches`, which converts each batch with :func:`prepare_batch`. :class:`EpochSteps` cuts
any of them into epochs of ``steps_per_epoch`` batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from bigmodel.errors import DataError, InputTypeError, describe

Tree = Any  # a tensor, or a tuple/list/dict of tensors
_NAMES = ("x", "y", "sample_weight")


def tree_map(fn: Callable[[torch.Tensor], Any], tree: Tree) -> Tree:
    """Apply ``fn`` to every tensor of a tensor / tuple / list / dict structure."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, item) for item in tree)
    if isinstance(tree, Mapping):
        return {key: tree_map(fn, item) for key, item in tree.items()}
    return tree


def tree_leaves(tree: Tree) -> list[torch.Tensor]:
    """The tensors of a structure, in order."""
    leaves: list[torch.Tensor] = []
    tree_map(leaves.append, tree)
    return leaves


def _convert(value: Any, name: str, role: str) -> torch.Tensor:
    """One array -> tensor with bigmodel's dtype rules; raises naming ``name``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InputTypeError(
                f"{name} must be a numeric array; received {describe(value)}"
            )
        if not value.flags.writeable:
            value = value.copy()  # torch.from_numpy would warn about sharing read-only memory
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    elif isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.is_complex() or tensor.dtype not in _NUMERIC:
            raise InputTypeError(f"{name} must be a real numeric tensor; received {describe(value)}")
    else:
        raise InputTypeError(
            f"{name} must be a NumPy array or a torch.Tensor; received {type(value).__name__}"
        )
    return _standard_dtype(tensor, role)


_NUMERIC = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
            torch.float16, torch.bfloat16, torch.float32, torch.float64}


def _standard_dtype(tensor: torch.Tensor, role: str) -> torch.Tensor:
    """float64 -> float32 everywhere; labels: integers -> int64, bool -> float32; weights -> float32."""
    dtype = tensor.dtype
    if dtype == torch.float64:
        return tensor.float()
    if role == "y":
        if dtype == torch.bool:
            return tensor.float()
        if not dtype.is_floating_point and dtype != torch.int64:
            return tensor.long()
    if role == "sample_weight" and dtype != torch.float32:
        return tensor.float()
    return tensor


def _check_finite(tensor: torch.Tensor, name: str) -> None:
    if not tensor.dtype.is_floating_point:
        return
    # Screen with a sum (one fast pass, no mask as large as the data): it is finite whenever every
    # value is; a sum that overflows only sends us to the exact check below.
    wide = torch.float32 if tensor.element_size() < 4 else None
    if math.isfinite(float(tensor.sum(dtype=wide))):
        return
    if not bool(torch.isfinite(tensor).all()):
        bad = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(dim=1).nonzero()
        raise DataError(
            f"{name} contains NaN or Inf in {bad.numel()} sample(s), first at index {int(bad[0])}; "
            "clean or impute the data before training"
        )


def to_tensors(arrays: tuple[Any, ...], prefix: str = "") -> tuple[Tree, ...]:
    """Validate and convert in-memory ``(x, y[, sample_weight])`` once.

    Args:
        arrays: ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; each an array/tensor or a
            tuple/list/dict of them (several inputs or outputs; ``None`` marks an output without
            targets in ``y`` and ``sample_weight``), or ``None``.
        prefix: names the data in messages (``"train"``, ``"val"``).

    Returns:
        The same structure as tensors (same order, ``None`` kept).

    Raises:
        InputTypeError: a non-numeric array or an unsupported type (message names the argument).
        DataError: empty data, mismatched numbers of samples, NaN/Inf in floats, 0-d arrays.
    """
    converted = []
    sizes: dict[str, int] = {}
    for role, value in zip(_NAMES, arrays):
        if value is None:
            converted.append(None)
            continue
        label = f"{prefix} {role}".strip()
        if isinstance(value, (tuple, list, Mapping)):
            # Several inputs, or (several outputs) targets and weights per output; an output
            # without targets is None.
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            parts = {key: None if item is None and role != "x" else
                     _convert(item, f"{label}[{key!r}]", role) for key, item in items}
            if all(part is None for part in parts.values()):
                raise DataError(f"{label} is an empty {type(value).__name__}; expected arrays")
            tree = parts if isinstance(value, Mapping) else type(value)(parts.values())
            leaves = [(f"{label}[{key!r}]", tensor) for key, tensor in parts.items()
                      if tensor is not None]
        else:
            tree = _convert(value, label, role)
            leaves = [(label, tree)]
        for name, tensor in leaves:
            if tensor.ndim == 0:
                raise DataError(f"{name} must have a batch axis; received a 0-d value")
            if tensor.shape[0] == 0:
                raise DataError(f"{name} is empty (0 samples); expected at least one sample")
            _check_finite(tensor, name)
            sizes[name] = tensor.shape[0]
        converted.append(tree)
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise DataError(f"Inputs disagree on the number of samples: {listing}")
    return tuple(converted)


class ArrayBatches:
    """Batches of in-memory tensors by index slicing; iterable once per epoch.

    Args:
        arrays: converted ``(x, y[, sample_weight])`` from :func:`to_tensors` (``None`` dropped).
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: draw a new permutation from ``generator`` at every ``iter()``.
        generator: a CPU ``torch.Generator`` (seeded by the trainer for reproducible order).
        device: where batches should live; the arrays are moved there once when they fit in
            a quarter of the free accelerator memory, otherwise each batch is moved.

    Yields:
        Tuples ``(x_b, y_b[, w_b])`` whose tensors have ``batch_size`` rows.
    """

    def __init__(self, arrays: tuple[Tree, ...], batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | None = None) -> None:
        if int(batch_size) < 1:
            raise DataError(f"batch_size must be >= 1; received batch_size={batch_size}")
        self.arrays = tuple(a for a in arrays if a is not None)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.num_samples = tree_leaves(self.arrays[0])[0].shape[0]
        self.device = device
        # Batches the next pass leaves out at its start (resuming mid-epoch): the permutation is
        # still drawn, so the generator advances exactly as in the pass that was interrupted.
        self.skip = 0
        self._move_each_batch = False
        if device is not None and device.type != "cpu":
            nbytes = sum(t.numel() * t.element_size() for t in tree_leaves(self.arrays))
            free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
            if nbytes <= free // 4:
                self.arrays = tree_map(lambda t: t.to(device), self.arrays)
            else:
                self._move_each_batch = True

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tree, ...]]:
        size, arrays = self.batch_size, self.arrays
        move = self._move_each_batch
        device = self.device
        first, self.skip = self.skip * size, 0
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self.generator)
            index_device = tree_leaves(arrays)[0].device
            if index_device.type != "cpu":
                order = order.to(index_device)
            for start in range(first, self.num_samples, size):
                index = order[start:start + size]
                batch = tree_map(lambda t, i=index: t.index_select(0, i), arrays)
                yield tree_map(lambda t: t.to(device, non_blocking=True), batch) if move else batch
        else:
            for start in range(first, self.num_samples, size):
                batch = tree_map(lambda t, s=start: t[s:s + size], arrays)
                yield tree_map(lambda t: t.to(device, non_blocking=True), batch) if move else batch


def prepare_batch(batch: Any, device: torch.device | None = None) -> tuple[Tree, ...]:
    """Normalize one batch from a DataLoader/iterable: a tuple of tensors on ``device``.

    NumPy arrays become tensors; float64 becomes float32; integer labels (second element) int64.
    A bare tensor or array is a batch of inputs only, ``(x,)``.

    Raises:
        InputTypeError: the batch is not a tensor/array or a tuple/list of them.
    """
    if isinstance(batch, (torch.Tensor, np.ndarray)) or isinstance(batch, Mapping):
        batch = (batch,)
    elif not isinstance(batch, (tuple, list)):
        raise InputTypeError(
            "A batch must be a tensor or a tuple (x, y[, sample_weight]); "
            f"received {type(batch).__name__}"
        )
    out = []
    for role, part in zip(_NAMES, batch):
        part = _tree_convert(part, role)
        if device is not None and device.type != "cpu":
            part = tree_map(lambda t: t.to(device, non_blocking=True), part)
        out.append(part)
    return tuple(out)


def _tree_convert(part: Any, role: str) -> Tree:
    if isinstance(part, torch.Tensor):
        return _standard_dtype(part, role)
    if isinstance(part, np.ndarray):
        return _convert(part, f"batch {role}", role)
    if isinstance(part, (tuple, list)):
        return type(part)(_tree_convert(item, role) for item in part)
    if isinstance(part, Mapping):
        return {key: _tree_convert(item, role) for key, item in part.items()}
    return part


def is_in_memory(data: Any) -> bool:
    """True for ``(x, y)`` / ``(x, y, w)`` of arrays (``x`` may be a structure), or a bare array.

    A list of batches ``[(x1, y1), (x2, y2)]`` is not: its second element is a tuple, not an array.
    """
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return True
    return (isinstance(data, (tuple, list)) and len(data) in (2, 3)
            and isinstance(data[1], (np.ndarray, torch.Tensor)))


def is_array_structure(x: Any) -> bool:
    """True for an array/tensor, or a non-empty tuple/list/dict whose values all are (model inputs)."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return True
    values = x.values() if isinstance(x, Mapping) else x if isinstance(x, (tuple, list)) else None
    return bool(values) and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in values)


class Batches:
    """A DataLoader or other iterable of batches, each converted by :func:`prepare_batch`.

    ``len()`` is the source's when it has one. ``one_shot`` is True for an iterator (a generator),
    which cannot be iterated again.
    """

    def __init__(self, source: Iterable, device: torch.device | None = None) -> None:
        self.source = source
        self.device = device
        self.one_shot = isinstance(source, Iterator)

    def __iter__(self) -> Iterator[tuple[Tree, ...]]:
        device = self.device
        for batch in self.source:
            yield prepare_batch(batch, device)

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]


class EpochSteps:
    """``steps`` batches per epoch from one iterator that continues across epochs (Keras's
    ``steps_per_epoch``): re-iterable data starts over when exhausted; a one-shot iterator that
    runs out ends the epoch early.
    """

    def __init__(self, batches: Iterable, steps: int) -> None:
        self.batches = batches
        self.steps = int(steps)
        self._iterator: Iterator | None = None

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tree, ...]]:
        produced, restarted = 0, False
        while produced < self.steps:
            if self._iterator is None:
                self._iterator = iter(self.batches)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if getattr(self.batches, "one_shot", False) or restarted:
                    return  # a generator (or empty data) ran out
                restarted = True
                continue
            restarted = False
            produced += 1
            yield batch


def num_batches(batches: Any) -> int | None:
    """Batches per pass, or ``None`` when unknown (or zero)."""
    try:
        return len(batches) or None
    except TypeError:
        return None


def batch_size_of(tree: Tree) -> int:
    """Number of samples in a batch (first axis of its first tensor)."""
    return tree.shape[0] if isinstance(tree, torch.Tensor) else tree_leaves(tree)[0].shape[0]


def make_batches(data: Any, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | None = None,
                 name: str = "data", require_targets: bool = True) -> ArrayBatches | Batches:
    """Build the batch iterable the engine loops over, for any supported form of ``data``.

    Args:
        data: ``(x, y[, sample_weight])`` arrays/tensors; with ``require_targets=False`` also inputs
            alone (an array, or a tuple/list/dict of arrays for several inputs); a ``Dataset``; a
            ``DataLoader``; an iterable of batches.
        batch_size: used for in-memory data and datasets; a ``DataLoader`` keeps its own.
        shuffle: reshuffle each epoch (in-memory data and map-style datasets).
        generator: seeded generator for the shuffling.
        device: target device (in-memory data is moved once when it fits).
        name: names the data in error messages (``"train"``, ``"val"``).
        require_targets: raise when in-memory data has no ``y``.

    Returns:
        :class:`ArrayBatches` for in-memory data, else :class:`Batches` (tuples on ``device``).

    Raises:
        InputTypeError / DataError: see :func:`to_tensors`; also for unsupported objects.
    """
    if not require_targets and is_array_structure(data):
        return ArrayBatches(to_tensors((data,), prefix=name), batch_size, shuffle, generator, device)
    if is_in_memory(data):
        arrays = (data,) if isinstance(data, (np.ndarray, torch.Tensor)) else tuple(data)
        if require_targets and len(arrays) < 2:
            raise DataError(f"{name} needs targets: pass (x, y) or (x, y, sample_weight)")
        return ArrayBatches(to_tensors(arrays, prefix=name), batch_size, shuffle, generator, device)
    if isinstance(data, Dataset) and not isinstance(data, (IterableDataset, DataLoader)):
        if len(data) == 0:  # type: ignore[arg-type]
            raise DataError(f"{name} dataset is empty (len 0); expected at least one sample")
        data = DataLoader(data, batch_size=int(batch_size), shuffle=shuffle, generator=generator)
    elif isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=int(batch_size))
    elif isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        raise InputTypeError(
            f"{name} must be (x, y[, sample_weight]) arrays, a Dataset, a DataLoader or an iterable "
            f"of batches; received {describe(data)}"
        )
    return Batches(data, device)


__all__ = ["ArrayBatches", "Batches", "EpochSteps", "batch_size_of", "is_array_structure",
           "is_in_memory", "make_batches", "num_batches", "prepare_batch", "to_tensors",
           "tree_leaves", "tree_map"]
