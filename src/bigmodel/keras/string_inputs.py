"""String data on PyTorch, which has no string tensors: a NumPy array of ``str`` (or ``bytes``,
or an object array of them) given to ``fit`` / ``predict`` / a model call becomes a
:class:`StringIds` tensor: int64 ids into a process-wide table of interned strings, same shape.

It travels through batching, shuffling and device moves like any tensor (a ``torch.Tensor``
subclass keeps its class through indexing, ``cat`` and ``to``), and the string layers
(``TextVectorization``, ``StringLookup``, ``Hashing``, ...) turn it back into strings with
:func:`as_string_array`. The table only grows (one entry per distinct string seen).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import InputTypeError
from bigmodel.keras.py_dataset import PyDataset

__all__ = ["StringIdBatches", "StringIds", "as_string_array", "has_strings", "is_string_array",
           "string_batches", "string_ids", "strings_as_ids"]

_TABLE: list[str] = []
_INDEX: dict[str, int] = {}


# What may happen to string ids on their way to a string layer: moving, batching, reshaping.
_PASSING = {"__getitem__", "index_select", "cat", "stack", "to", "cpu", "cuda", "clone",
            "detach", "contiguous", "pin_memory", "reshape", "view", "unsqueeze", "squeeze",
            "flatten", "narrow", "split", "chunk", "numpy", "as_subclass", "size", "dim",
            "numel", "__len__", "shape", "dtype", "device", "is_floating_point", "__repr__",
            "__format__", "__iter__", "tolist", "element_size", "nbytes", "data_ptr",
            "untyped_storage", "is_contiguous", "requires_grad", "is_cuda", "__reduce_ex__",
            "__deepcopy__", "new_empty", "unbind", "ndim", "layout", "__setstate__", "storage",
            "_typed_storage", "__bool__", "stride", "type", "share_memory_", "is_shared",
            "is_pinned", "_is_view", "long", "int", "get_device", "nelement", "is_complex",
            "is_signed", "is_sparse", "is_quantized", "is_meta", "is_leaf", "grad_fn",
            "index_add_", "copy_", "empty_like", "__array__"}


class StringIds(torch.Tensor):
    """int64 ids of interned strings (see the module doc); decode with :func:`as_string_array`.

    Only moving, batching and reshaping are allowed: string data used as numbers (a ``Dense``
    given strings) raises :class:`~bigmodel.errors.InputTypeError` instead of computing on ids.
    """

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name == "__get__":  # a property (shape, dtype, device, ...)
            name = getattr(getattr(func, "__self__", None), "__name__", name)
        if name not in _PASSING:
            raise InputTypeError(f"string data reached a numeric operation ({name}); strings "
                                 "are taken only by string layers (TextVectorization, "
                                 "StringLookup, Hashing, ...) as a model's first layer")
        return super().__torch_function__(func, types, args, kwargs or {})


def is_string_array(value: Any) -> bool:
    """A NumPy array of str / bytes, or an object array whose items are all str / bytes."""
    if not isinstance(value, np.ndarray):
        return False
    if value.dtype.kind in "US":
        return True
    return value.dtype.kind == "O" and value.size > 0 and all(
        isinstance(item, (str, bytes)) for item in value.flat)


def _intern(text: str | bytes) -> int:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    index = _INDEX.get(text)
    if index is None:
        index = _INDEX[text] = len(_TABLE)
        _TABLE.append(text)
    return index


def string_ids(array: np.ndarray, what: str = "input") -> StringIds:
    """The :class:`StringIds` tensor of a string array (same shape).

    Raises:
        InputTypeError: an object array with items that are not str / bytes.
    """
    if not is_string_array(array):
        raise InputTypeError(f"{what}: expected an array of strings; received dtype "
                             f"{getattr(array, 'dtype', type(array).__name__)}")
    ids = np.fromiter((_intern(item) for item in array.flat), dtype=np.int64, count=array.size)
    return torch.from_numpy(ids.reshape(array.shape)).as_subclass(StringIds)


def as_string_array(value: Any) -> np.ndarray | None:
    """Strings as a NumPy object array of ``str``: from :class:`StringIds`, a string array, a
    (nested) list of strings or one string; ``None`` when ``value`` is not string data."""
    if isinstance(value, StringIds):
        ids = value.detach().cpu().as_subclass(torch.Tensor).numpy()
        out = np.empty(ids.shape, dtype=object)
        out.flat[:] = [_TABLE[i] for i in ids.flat] if ids.size else []
        return out
    if isinstance(value, (str, bytes)):
        value = np.asarray([value], dtype=object).reshape(())
    elif isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value, dtype=object)
        except ValueError:
            return None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "USO":
        return None
    if value.dtype.kind == "O" and not all(isinstance(v, (str, bytes)) for v in value.flat):
        return None
    out = np.empty(value.shape, dtype=object)
    out.flat[:] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.flat] \
        if value.size else []
    return out


def strings_as_ids(batch: Any) -> Any:
    """A batch (an array, or a tuple / list / dict of them) with its string arrays as
    :class:`StringIds`; other parts unchanged."""
    if isinstance(batch, np.ndarray):
        return string_ids(batch) if is_string_array(batch) else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(strings_as_ids(part) for part in batch)
    if isinstance(batch, dict):
        return {key: strings_as_ids(part) for key, part in batch.items()}
    return batch


def has_strings(batch: Any) -> bool:
    """Whether a batch holds a string array somewhere."""
    if isinstance(batch, np.ndarray):
        return is_string_array(batch)
    if isinstance(batch, (tuple, list)):
        return any(has_strings(part) for part in batch)
    if isinstance(batch, dict):
        return any(has_strings(part) for part in batch.values())
    return False


class StringIdBatches(PyDataset):
    """A :class:`PyDataset` whose batches' string arrays become :class:`StringIds` (what ``fit``
    and ``predict`` iterate when a dataset yields text, e.g. ``text_dataset_from_directory``)."""

    def __init__(self, source: PyDataset):
        super().__init__()
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        return strings_as_ids(self.source[index])

    def on_epoch_begin(self) -> None:
        self.source.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.source.on_epoch_end()


def string_batches(data: Any) -> Any:
    """``data`` wrapped in :class:`StringIdBatches` when it is a :class:`PyDataset` whose first
    batch holds strings; otherwise ``data`` itself."""
    if isinstance(data, PyDataset) and not isinstance(data, StringIdBatches) and len(data) \
            and has_strings(data[0]):
        return StringIdBatches(data)
    return data
