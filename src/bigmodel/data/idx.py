"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the array's
values in C order, big-endian. The magic number is two zero bytes, a dtype code and the number
of dimensions. Files are often gzip-compressed; :func:`read_idx` detects that from the first
bytes (not from the file name), so ``train-images-idx3-ubyte`` and ``...ubyte.gz`` both work.

Every problem with a file is a :class:`~bigmodel.errors.DataFileError` that names the file, what
was expected and what was found.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bigmodel.errors import DataFileError, InputTypeError, ShapeError
from bigmodel.utils.io import atomic_path

__all__ = ["IDX_DTYPES", "read_idx", "write_idx"]

# dtype code (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_BY_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_MAX_DIM = 2**32 - 1


def _describe_dtypes() -> str:
    return ", ".join(
        f"0x{code:02X} ({dtype.str.lstrip('<>|')})" for code, dtype in IDX_DTYPES.items()
    )


def _read_exactly(handle: BinaryIO, size: int) -> bytearray:
    """Read up to ``size`` bytes, fewer only at end of file; memory grows with what is really read."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = handle.read(min(_CHUNK, size - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _count_rest(handle: BinaryIO) -> int:
    count = 0
    while chunk := handle.read(_CHUNK):
        count += len(chunk)
    return count


def _parse(
    handle: BinaryIO,
    name: str,
    compressed: bool,
    raw_size: int | None,
    ndim: int | None,
    dtype: np.dtype | None,
) -> np.ndarray:
    where = "decompressed " if compressed else ""
    magic = _read_exactly(handle, 4)
    if len(magic) < 4:
        raise DataFileError(
            f"{name}: not an IDX file: expected a 4-byte magic number, found only {len(magic)} "
            f"{where}byte(s)."
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DataFileError(
            f"{name}: bad IDX magic number 0x{bytes(magic).hex().upper()}: expected it to start "
            f"with two zero bytes (0x0000 + dtype code + number of dimensions)."
        )
    code, file_ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DataFileError(
            f"{name}: unknown IDX dtype code 0x{code:02X} in magic number "
            f"0x{bytes(magic).hex().upper()}; expected one of {_describe_dtypes()}."
        )
    file_dtype = IDX_DTYPES[code]
    if file_ndim == 0:
        raise DataFileError(f"{name}: IDX magic number declares 0 dimensions; expected at least 1.")
    if ndim is not None and file_ndim != ndim:
        raise DataFileError(
            f"{name}: expected a {ndim}-dimensional IDX file, found {file_ndim} dimensions "
            f"(magic number 0x{bytes(magic).hex().upper()})."
        )
    if dtype is not None and file_dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        raise DataFileError(
            f"{name}: expected IDX values of dtype {np.dtype(dtype)}, found dtype code "
            f"0x{code:02X} ({file_dtype.newbyteorder('=')})."
        )
    header_size = 4 + 4 * file_ndim
    dims_bytes = _read_exactly(handle, 4 * file_ndim)
    if len(dims_bytes) < 4 * file_ndim:
        raise DataFileError(
            f"{name}: truncated IDX header: {file_ndim} dimensions need a {header_size}-byte "
            f"header, found {4 + len(dims_bytes)} {where}bytes."
        )
    shape = struct.unpack(f">{file_ndim}I", dims_bytes)
    expected = math.prod(shape) * file_dtype.itemsize
    description = f"shape {shape} of {file_dtype.newbyteorder('=')}"
    # A raw file's length is known up front: check it before allocating what a bad header claims.
    if raw_size is not None and raw_size != header_size + expected:
        problem = "truncated" if raw_size < header_size + expected else "trailing bytes in"
        raise DataFileError(
            f"{name}: {problem} IDX file: the header declares {description}, so the file should "
            f"be {header_size + expected} bytes ({header_size}-byte header + {expected} bytes of "
            f"data); found {raw_size} bytes."
        )
    data = _read_exactly(handle, expected)
    if len(data) < expected:
        raise DataFileError(
            f"{name}: truncated IDX file: the header declares {description}, so {expected} "
            f"{where}bytes of data are expected after the {header_size}-byte header; found "
            f"{len(data)}."
        )
    extra = _count_rest(handle)
    if extra:
        raise DataFileError(
            f"{name}: trailing bytes in IDX file: the header declares {description} "
            f"({header_size + expected} {where}bytes in all); found {extra} more {where}bytes "
            f"after the data."
        )
    array = np.frombuffer(data, dtype=file_dtype).reshape(shape)
    if file_dtype.itemsize > 1:
        array = array.astype(file_dtype.newbyteorder("="))
    return array


def read_idx(
    path: str | os.PathLike,
    *,
    ndim: int | None = None,
    dtype: np.dtype | type | str | None = None,
) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (told apart by the gzip magic bytes).

    The magic number (0x0000 + dtype code + number of dimensions), the dimensions and the exact
    length of the data are checked; truncated files and trailing bytes are errors.

    Args:
        path: the file.
        ndim: when given, the number of dimensions the file must have (3 for images
            ``(N, rows, cols)``, 1 for labels ``(N,)``).
        dtype: when given, the dtype the file must hold (e.g. ``np.uint8``).

    Returns:
        A writable array in native byte order with the shape stored in the file, e.g. ``(N, 28, 28)``
        uint8 for MNIST images and ``(N,)`` uint8 for labels.

    Raises:
        DataFileError: the file is missing or unreadable, not gzip/IDX, has a bad magic number or
            dtype code, the wrong number of dimensions or dtype, or a length that does not match
            its header (the message names the file, what was expected and what was found).
    """
    file_path = Path(path)
    name = str(file_path)
    try:
        with open(file_path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                size = os.fstat(raw.fileno()).st_size
                return _parse(raw, name, False, size, ndim, dtype)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, name, True, None, ndim, dtype)  # type: ignore[arg-type]
    except DataFileError:
        raise
    except FileNotFoundError as exc:
        raise DataFileError(f"{name}: no such IDX file.") from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError(f"{name}: corrupt or truncated gzip data ({exc}).") from exc
    except OSError as exc:
        raise DataFileError(f"{name}: cannot read IDX file: {exc}") from exc


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically (a temporary file renamed on success).

    Args:
        path: destination file; its directory is created if needed.
        array: array-like with 1 to 255 dimensions, each at most 2**32 - 1, of dtype uint8, int8,
            int16, int32, float32 or float64 (e.g. ``(N, 28, 28)`` uint8 images, ``(N,)`` labels).
        compress: gzip the file; ``None`` (default) compresses when the name ends in ``.gz``.

    Returns:
        The path written.

    Raises:
        InputTypeError: the dtype has no IDX code.
        ShapeError: the array has 0 or more than 255 dimensions, or a dimension of 2**32 or more.
    """
    values = np.asarray(array)
    code = _CODE_BY_KIND.get((values.dtype.kind, values.dtype.itemsize))
    if code is None:
        raise InputTypeError(
            f"write_idx: IDX cannot store dtype {values.dtype}; expected one of uint8, int8, "
            f"int16, int32, float32, float64. Received: {values.dtype}."
        )
    if not 1 <= values.ndim <= 255:
        raise ShapeError(
            f"write_idx: IDX stores arrays with 1 to 255 dimensions. Received shape {values.shape}."
        )
    if any(size > _MAX_DIM for size in values.shape):
        raise ShapeError(
            f"write_idx: IDX dimensions must be below 2**32. Received shape {values.shape}."
        )
    target = Path(path)
    if compress is None:
        compress = target.name.endswith(".gz")
    header = bytes([0, 0, code, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    payload = np.ascontiguousarray(values, dtype=IDX_DTYPES[code]).tobytes()
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        if compress:
            # No file name and a zero mtime in the gzip header: same array, same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as stream:
                stream.write(header)
                stream.write(payload)
        else:
            handle.write(header)
            handle.write(payload)
    return target
