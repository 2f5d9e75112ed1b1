"""Read the pickled data of Keras's data-set files without running pickle.

IMDB / Reuters ``.npz`` files hold ragged sequences as NumPy object arrays, which NumPy stores as a
pickle stream; CIFAR's batches are pickled dicts of arrays and lists. ``pickle`` (even with a
restricted ``find_class``) executes the stream; this module instead walks its opcodes with
:func:`pickletools.genops` and builds only plain values: ``None``, bools, ints, floats, str, bytes,
tuples, lists, dicts and NumPy arrays rebuilt from their state (``numpy.core.multiarray.
_reconstruct`` + ``BUILD``, the way NumPy pickles an array). Any other global, opcode or call
raises :class:`~bigmodel.errors.DataFileError`: nothing in the file is ever called.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from typing import Any

import numpy as np

from bigmodel.errors import DataFileError

__all__ = ["load_npz", "loads"]

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_NDARRAY = ("numpy", "ndarray")
_DTYPE = ("numpy", "dtype")
_ENCODE = ("_codecs", "encode")  # protocol-2 pickles of bytes written by Python 3
_MAX_DIMS = 32


class _Global:
    def __init__(self, key: tuple[str, str]):
        self.key = key


class _Pending:
    """An array or dtype made by a REDUCE, waiting for its BUILD state."""

    def __init__(self, kind: str, value: Any = None):
        self.kind, self.value = kind, value


class _Mark:
    pass


_MARK = _Mark()
_PUSH_ARG = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
             "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINBYTES",
             "BINBYTES", "BINBYTES8"}
_LATIN1_STRINGS = {"SHORT_BINSTRING", "BINSTRING", "STRING"}


def _dtype_from(spec: Any, where: str) -> np.dtype:
    if not isinstance(spec, (str, bytes)):
        raise DataFileError(f"{where}: unexpected dtype description {spec!r}")
    spec = spec.decode("latin1") if isinstance(spec, bytes) else spec
    dtype = np.dtype(spec)
    if dtype.kind not in "biufcOSU" or dtype.fields is not None:
        raise DataFileError(f"{where}: dtype {spec!r} is not a plain numeric, string or object "
                            "dtype; refusing it")
    return dtype


def _call(func: Any, args: Any, where: str) -> Any:
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise DataFileError(f"{where}: the pickle calls something other than NumPy's array "
                            "rebuilders; refusing it (nothing was executed)")
    if func.key in _RECONSTRUCT:
        if len(args) != 3 or not isinstance(args[0], _Global) or args[0].key != _NDARRAY:
            raise DataFileError(f"{where}: unexpected array reconstruction arguments")
        return _Pending("array")
    if func.key == _DTYPE:
        if not 1 <= len(args) <= 3:
            raise DataFileError(f"{where}: unexpected dtype arguments {args!r}")
        return _Pending("dtype", _dtype_from(args[0], where))
    if func.key == _ENCODE:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
            raise DataFileError(f"{where}: unexpected bytes encoding {args!r}")
        return args[0].encode("latin1")
    raise DataFileError(f"{where}: the pickle calls {'.'.join(func.key)}; refusing it")


def _build(target: Any, state: Any, where: str) -> Any:
    if not isinstance(target, _Pending):
        raise DataFileError(f"{where}: BUILD on something that is not an array or dtype")
    if target.kind == "dtype":
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
        dtype = target.value
        if order in ("<", ">") and dtype.itemsize > 1:
            dtype = dtype.newbyteorder(order)
        return dtype
    if not (isinstance(state, tuple) and len(state) == 5):
        raise DataFileError(f"{where}: unexpected array state")
    _, shape, dtype, fortran, data = state
    if isinstance(dtype, _Pending) or not isinstance(dtype, np.dtype):
        raise DataFileError(f"{where}: an array without a dtype")
    if (not isinstance(shape, tuple) or len(shape) > _MAX_DIMS
            or not all(isinstance(n, int) and n >= 0 for n in shape)):
        raise DataFileError(f"{where}: bad array shape {shape!r}")
    count = int(np.prod(shape, dtype=np.int64))
    order = "F" if fortran else "C"
    if dtype.kind == "O":
        if not isinstance(data, list) or len(data) != count:
            raise DataFileError(f"{where}: an object array of shape {shape} needs {count} items")
        out = np.empty(count, dtype=object)
        out[:] = data if count else []
        return out.reshape(shape, order=order)
    if isinstance(data, str):
        data = data.encode("latin1")  # Python 2 pickles read as text
    if not isinstance(data, bytes) or len(data) != count * dtype.itemsize:
        raise DataFileError(f"{where}: an array of shape {shape} and dtype {dtype} needs "
                            f"{count * dtype.itemsize} bytes of data")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _pop_mark(stack: list[Any], where: str) -> list[Any]:
    for position in range(len(stack) - 1, -1, -1):
        if stack[position] is _MARK:
            items = stack[position + 1:]
            del stack[position:]
            return items
    raise DataFileError(f"{where}: malformed pickle (no mark)")


def loads(data: bytes, where: str = "pickle") -> Any:
    """The value a pickle stream of plain data and NumPy arrays describes, built without
    executing anything.

    Raises:
        DataFileError: a global other than NumPy's array rebuilders, an unknown opcode, or a
            malformed stream (names ``where``).
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1 or isinstance(stack[0], (_Pending, _Global)):
                    raise DataFileError(f"{where}: malformed pickle")
                return stack[0]
            if name in _PUSH_ARG:
                stack.append(arg)
            elif name in _LATIN1_STRINGS:
                stack.append(arg.encode("latin1") if isinstance(arg, str) else arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    attr, module = stack.pop(), stack.pop()
                key = (module, attr)
                if key not in _RECONSTRUCT | {_NDARRAY, _DTYPE, _ENCODE}:
                    raise DataFileError(f"{where}: the pickle refers to {module}.{attr}; only "
                                        "NumPy arrays and plain values are read (nothing was "
                                        "executed)")
                stack.append(_Global(key))
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(_call(stack.pop(), args, where))
            elif name == "BUILD":
                state = stack.pop()
                stack.append(_build(stack.pop(), state, where))
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                size = int(name[-1])
                items = tuple(stack[-size:])
                del stack[-size:]
                stack.append(items)
            elif name == "TUPLE":
                stack.append(tuple(_pop_mark(stack, where)))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                stack.append(_pop_mark(stack, where))
            elif name == "APPEND":
                item = stack.pop()
                stack[-1].append(item)
            elif name == "APPENDS":
                items = _pop_mark(stack, where)
                stack[-1].extend(items)
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name in ("DICT", "SETITEMS"):
                items = _pop_mark(stack, where)
                pairs = dict(zip(items[::2], items[1::2]))
                if name == "DICT":
                    stack.append(pairs)
                else:
                    stack[-1].update(pairs)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                stack[-1][key] = value
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            else:
                raise DataFileError(f"{where}: pickle opcode {name} is not read here; refusing "
                                    "the file (nothing was executed)")
    except DataFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise DataFileError(f"{where}: malformed pickle data ({err})") from err
    raise DataFileError(f"{where}: truncated pickle (no STOP)")


def _read_npy(raw: bytes, where: str) -> np.ndarray:
    stream = io.BytesIO(raw)
    try:
        return np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise DataFileError(f"{where}: not a valid .npy array ({err})") from err
    stream.seek(0)  # an object array: header, then its pickle stream
    try:
        version = np.lib.format.read_magic(stream)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(stream)
        else:
            np.lib.format.read_array_header_2_0(stream)
    except ValueError as err:
        raise DataFileError(f"{where}: not a valid .npy array ({err})") from err
    array = loads(stream.read(), where)
    if not isinstance(array, np.ndarray):
        raise DataFileError(f"{where}: the object array's data is not an array")
    return array


def load_npz(path: str, members: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz`` file (object arrays read by :func:`loads`).

    Raises:
        DataFileError: not a zip file, a member missing, or a member that is not a safe array.
    """
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in members:
                if f"{member}.npy" not in names:
                    raise DataFileError(f"{path}: no array {member!r} in the file (it holds "
                                        f"{sorted(n.removesuffix('.npy') for n in names)})")
                raw = archive.read(f"{member}.npy")
                arrays[member] = _read_npy(raw, f"{path}[{member}]")
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz file ({err})") from err
    return arrays
