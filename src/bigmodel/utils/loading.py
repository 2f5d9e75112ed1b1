"""Reading files bigmodel did not necessarily write: checked before anything is built from them.

A safetensors file is recognised by its own header -- an 8-byte little-endian header length, then
that many bytes of JSON describing each tensor's dtype, shape and byte range -- not by the absence of
pickle bytes: a header length of 640, 896 or 1152 makes a valid file start with ``\\x80\\x02`` ..
``\\x80\\x05``, the opening bytes of a pickle, so sniffing for pickles alone refuses good files.
Only a file that fails the header check is then classified (pickle, torch.save zip, other) so the
error can say what it is.

This is the one module every loader reads through (model files, checkpoints, LoRA adapters, int8
models, recipes):

- :func:`confined_path` resolves a file name recorded in a file inside its folder (no absolute
  paths, no ``..``, no symlink out);
- :func:`read_json` / :func:`read_yaml` / :func:`parse_yaml` (from :mod:`bigmodel.utils.documents`)
  read documents with size, depth and YAML alias-expansion bounds;
- :func:`meta_shapes` + :func:`check_shapes` compare the shapes a configuration declares with the
  weights header before anything is allocated.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch.overrides import TorchFunctionMode

from bigmodel.errors import BigModelError, CheckpointError
from bigmodel.utils.documents import loads_json, parse_yaml, read_json, read_yaml  # noqa: F401

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


# --- names recorded in files, resolved inside their folder ---------------------------------------

def confined_path(folder: str | os.PathLike, name: object, what: str,
                  error: type[BigModelError] = CheckpointError, kind: str | None = "file") -> Path:
    """``folder / name`` for a ``name`` read from a file (or listed in ``folder``), kept inside ``folder``.

    Refused: a name that is not a non-empty string, an absolute path (POSIX or Windows, drive
    letters included), any ``..`` component, and a path that resolves outside ``folder`` -- a
    symlinked file, or a symlinked directory on the way, pointing elsewhere. A symlink whose target
    stays inside ``folder`` is accepted: it reads nothing the folder does not hold. (The check runs
    before opening; a folder that an attacker can rewrite concurrently is out of scope.)

    Args:
        folder: the folder the file that recorded ``name`` lives in.
        name: the recorded relative path.
        what: how errors name the entry ("model weights", "adapter file", ...).
        error: the error class raised.
        kind: ``"file"`` or ``"dir"`` requires it to exist as one; ``None`` checks nothing more.

    Returns:
        ``folder / name`` (not resolved, so messages show the names the user knows).

    Raises:
        ``error`` naming ``folder`` and ``name``.
    """
    folder = Path(folder)
    if not isinstance(name, str) or not name or "\x00" in name:
        raise error(f"{what} in {folder}: expected a relative file name; received {name!r}")
    parts = name.replace("\\", "/").split("/")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or name[0] in "/\\":
        raise error(f"{what} in {folder}: {name!r} is an absolute path; only names inside the "
                    "folder are read")
    if ".." in parts:
        raise error(f"{what} in {folder}: {name!r} leaves the folder ('..'); only names inside "
                    "the folder are read")
    path = folder / name
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise error(f"{what} {path} resolves to {real}, outside {folder} (a symlink out of the "
                    "folder); refusing to read it")
    if kind == "file" and not os.path.isfile(real):
        raise error(f"{what} {path} is missing (or not a file)")
    if kind == "dir" and not os.path.isdir(real):
        raise error(f"{what} {path} is missing (or not a directory)")
    return path


# --- declared shapes checked before anything is allocated ----------------------------------------

# Initializers and in-place random fills: on a meta tensor only its shape matters, and torch's meta
# normal_ imports torch._dynamo on first use (seconds), so a meta build skips them.
_RANDOM_FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_,
                           torch.Tensor.exponential_, torch.Tensor.log_normal_,
                           torch.Tensor.cauchy_, torch.Tensor.geometric_, torch.Tensor.random_})


class _SkipRandomFills(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        skip = func in _RANDOM_FILLS or getattr(func, "__module__", None) == "torch.nn.init"
        if skip and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def meta_shapes(build: Callable[[], torch.nn.Module], what: str,
                error: type[BigModelError] = CheckpointError) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of the module ``build()`` makes, built on the ``meta`` device (no memory).

    Lets a loader compare a configuration's shapes with a weights header before building for real:
    ``num_classes=6000000`` costs nothing here.

    Raises:
        BigModelError: raised by ``build`` itself (e.g. a config value it refuses), unchanged.
        ``error``: anything else ``build`` raised, naming ``what``.
    """
    try:
        with torch.device("meta"), _SkipRandomFills():
            module = build()
        return {key: tuple(value.shape) for key, value in module.state_dict().items()}
    except BigModelError:
        raise
    except Exception as exc:  # a crafted config reaching a factory's own arithmetic
        raise error(f"{what} describes a model that cannot be built: {type(exc).__name__}: {exc}") \
            from None


def check_shapes(expected: Mapping[str, tuple[int, ...]], header: SafetensorsHeader, what: str,
                 error: type[BigModelError] = CheckpointError, aliases: Mapping[str, str] | None = None,
                 allow_missing: bool = False) -> None:
    """Compare the shapes a model expects with a weights header; raise naming the first mismatches.

    Args:
        expected: ``{key: shape}`` (from :func:`meta_shapes` or a live ``state_dict``).
        header: :func:`read_safetensors_header` of the weights file.
        what: how errors name the model ("model 'seed-cnn' with config {...}").
        aliases: ``{key: stored_key}`` for tensors stored once (tied weights).
        allow_missing: keys of ``expected`` absent from the file are fine (partial loads).

    Raises:
        ``error`` naming the file: missing or unexpected keys, or shapes that differ.
    """
    stored = {key: info.shape for key, info in header.tensors.items()}
    for alias, source in (aliases or {}).items():
        if source in stored:
            stored[alias] = stored[source]
    missing = [] if allow_missing else sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected) - set(aliases or {}))
    wrong = sorted(k for k in set(expected) & set(stored) if tuple(expected[k]) != stored[k])
    if not (missing or unexpected or wrong):
        return
    details = []
    if missing:
        details.append(f"missing {missing[:5]}")
    if unexpected:
        details.append(f"unexpected {unexpected[:5]}")
    if wrong:
        details.append("shape mismatch " + ", ".join(
            f"{k}: file {stored[k]} vs model {tuple(expected[k])}" for k in wrong[:5]))
    raise error(f"{header.path} does not fit {what}: {'; '.join(details)}")
