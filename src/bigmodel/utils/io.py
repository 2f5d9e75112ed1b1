"""Atomic file writes: a file is either the old one, the complete new one, or absent."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bigmodel.errors import BigModelError, CheckpointError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise write_error(err, target) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException as err:
        written = tmp_path.stat().st_size if tmp_path.exists() else 0
        tmp_path.unlink(missing_ok=True)
        if _is_io_error(err):
            raise write_error(err, target, written) from err
        raise


def _is_io_error(err: BaseException) -> bool:
    """An operating-system failure of a write: ``OSError`` (not already a bigmodel error), or a
    ``SafetensorError`` that carries one (safetensors reports it as "... (os error 28)")."""
    if isinstance(err, BigModelError):
        return False
    if isinstance(err, OSError):
        return True
    return type(err).__name__ == "SafetensorError" and "os error" in str(err)


def write_error(err: BaseException, target: Path, written: int = 0) -> Exception:
    """The :class:`~bigmodel.errors.CheckpointError` for a failed write of ``target``: names the
    file and the reason; for a full disk, the folder, the bytes written so far and the free space."""
    code = getattr(err, "errno", None)
    match = re.search(r"os error (\d+)", str(err))
    if code is None and match:
        code = int(match.group(1))
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f"{shutil.disk_usage(target.parent).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        error = CheckpointError(
            f"No space left on the disk holding {target.parent} while writing {target.name} "
            f"({written:,} bytes written before it failed; {free}). Nothing was replaced: "
            f"{target} is as it was. Free some space and run again")
    else:
        reason = (os.strerror(code) if isinstance(code, int) and not isinstance(err, OSError)
                  else getattr(err, "strerror", None) or str(err))
        error = CheckpointError(f"Cannot write {target}: {reason}")
    error.errno = code  # callers that know more (the bytes a checkpoint needs) still see ENOSPC
    return error


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

