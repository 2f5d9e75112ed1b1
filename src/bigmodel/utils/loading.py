"""Reading files bigmodel did not necessarily write: checked before anything is built from them.

A safetensors file is recognised by its own header -- an 8-byte little-endian header length, then
that many bytes of JSON describing each tensor's dtype, shape and byte range -- not by the absence of
pickle bytes: a header length of 640, 896 or 1152 makes a valid file start with ``\\x80\\x02`` ..
``\\x80\\x05``, the opening bytes of a pickle, so sniffing for pickles alone refuses good files.
Only a file that fails the header check is then classified (pickle, torch.save zip, other) so the
error can say what it is.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from bigmodel.errors import CheckpointError

# safetensors' own reader refuses headers above 100 MB; a larger length is not a safetensors file.
MAX_HEADER_BYTES = 100_000_000

# Bytes per element of each safetensors dtype name (sub-byte and exotic types are not listed:
# their byte ranges are still checked against the file, only not against the shape).
_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}

# Opening bytes of formats whose loading can execute code: pickle protocols 2-5, torch.save's zip.
_PICKLE_MAGICS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header declares it."""

    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked safetensors header: tensors by name and the free-form string metadata."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def _unsafe_kind(head: bytes) -> str | None:
    if any(head.startswith(magic) for magic in _PICKLE_MAGICS):
        return "a pickle"
    if head.startswith(_ZIP_MAGIC):
        return "a zip archive (the torch.save format, which holds pickles)"
    return None


def looks_like_pickle(path: str | os.PathLike) -> bool:
    """True when ``path`` starts like a pickle or a torch.save zip.

    Only for files that are not safetensors (JSON records): a valid safetensors file can start with
    pickle bytes, so weights are checked with :func:`read_safetensors_header` instead.
    """
    with open(path, "rb") as handle:
        return _unsafe_kind(handle.read(4)) is not None


def _refuse(path: Path, head: bytes, reason: str, error: type[CheckpointError]) -> CheckpointError:
    kind = _unsafe_kind(head)
    if kind is not None:
        return error(f"Refusing to unpickle {path}: it is {kind}, not a safetensors file (bigmodel "
                     "refuses to unpickle files because loading one can execute code; it loads "
                     "only safetensors)")
    return error(f"{path} is not a safetensors file ({reason})")


def read_safetensors_header(path: str | os.PathLike,
                            error: type[CheckpointError] = CheckpointError) -> SafetensorsHeader:
    """Parse and check the header of the safetensors file ``path`` without reading its tensors.

    Checks: the declared header length fits the file, the header is a JSON object, every tensor
    entry has a dtype, a shape of non-negative ints and a byte range inside the data section that
    matches ``prod(shape) * itemsize``.

    Returns:
        The header, to compare declared shapes with a model before building or loading anything.

    Raises:
        ``error`` (a :class:`CheckpointError`): the file is missing, a pickle or torch.save zip
        (refused unread, said so), truncated, or not a safetensors file (says why).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} does not exist (expected a safetensors file)")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise _refuse(path, head, f"{size} bytes, shorter than the 8-byte header length", error)
        length = int.from_bytes(head, "little")
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise _refuse(path, head, f"declared header length {length} does not fit the file's "
                          f"{size} bytes (truncated?)", error)
        raw = handle.read(length)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _refuse(path, head, "its header is not JSON", error) from None
    if not isinstance(document, dict):
        raise _refuse(path, head, "its header is not a JSON object", error)
    data_bytes = size - 8 - length
    metadata = document.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise error(f"{path}: the safetensors __metadata__ must map names to strings")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in document.items():
        tensors[name] = _tensor_info(path, name, entry, data_bytes, error)
    return SafetensorsHeader(path=path, tensors=tensors, metadata=dict(metadata))


def _tensor_info(path: Path, name: str, entry: object, data_bytes: int,
                 error: type[CheckpointError]) -> TensorInfo:
    def bad(why: str) -> CheckpointError:
        return error(f"{path} is not a valid safetensors file: tensor {name!r} {why}")

    if not isinstance(entry, dict):
        raise bad("has no dtype/shape/data_offsets entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad(f"has dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(f"has shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int for o in offsets) or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
        raise bad(f"has byte range {offsets!r} outside the file's {data_bytes} data bytes (truncated?)")
    itemsize = _ITEMSIZE.get(dtype)
    if itemsize is not None and math.prod(shape) * itemsize != offsets[1] - offsets[0]:
        raise bad(f"declares {dtype}{shape} ({math.prod(shape) * itemsize} bytes) over "
                  f"{offsets[1] - offsets[0]} bytes")
    return TensorInfo(dtype=dtype, shape=tuple(shape), data_offsets=(offsets[0], offsets[1]))
