"""One writer per run directory: an exclusive lock on ``RUN_DIR/.lock``.

The lock is an ``fcntl.flock`` on ``RUN_DIR/.lock``, a small JSON file naming the holder (pid, host,
start time, command). The operating system drops a ``flock`` when its process ends, however it
ends, so a lock left by a killed run is never "held": the next writer takes it over and reports the
previous holder from the JSON. A clean release deletes the file.

Within one process the lock is re-entrant (``bigmodel train`` takes it before loading data, and the
``Trainer`` it builds takes it again for ``fit``): the process holds it until its last holder lets
go. A torchrun job's launcher may hold it for its workers: it names the directory and its pid in
``BIGMODEL_RUN_DIR_LOCK``, and a worker that finds that pid holding the lock proceeds without it.

``flock`` is advisory and works where the file system supports it (local disks; NFSv4 maps it onto
byte-range locks); on a platform without ``fcntl`` (Windows) the lock is not taken.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import errno
import json
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
LAUNCHER_ENV = "BIGMODEL_RUN_DIR_LOCK"

_held: dict[str, RunDirLock] = {}  # realpath of the run dir -> this process's lock
_guard = threading.Lock()


class RunDirLock:
    """This process's hold on a run directory (see the module doc); from :func:`acquire`.

    Attributes:
        run_dir: the run directory.
        path: its ``.lock`` file.
        previous: the JSON of a holder that ended without releasing (a stale lock taken over),
            or ``None``.
    """

    def __init__(self, run_dir: Path, fd: int | None, previous: dict[str, Any] | None) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self.previous = previous
        self._fd = fd
        self._count = 1

    @property
    def held(self) -> bool:
        return self._count > 0

    def release(self) -> None:
        """Let go of one hold; the last one deletes the lock file and unlocks it."""
        with _guard:
            if self._count == 0:
                return
            self._count -= 1
            if self._count:
                return
            _held.pop(_key(self.run_dir), None)
            fd, self._fd = self._fd, None
        if fd is None:
            return
        # Unlinked while still locked: a process that opened the old file and locks it after us
        # sees that the path no longer names its file and starts over (see ``_try_lock``).
        with contextlib.suppress(OSError):
            if _same_file(fd, self.path):
                self.path.unlink()
        os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@atexit.register
def _release_all() -> None:
    """At a normal interpreter exit, let go of what this process still holds (no stale file)."""
    for lock in list(_held.values()):
        lock._count = min(lock._count, 1)
        lock.release()


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
    except OSError:
        return None
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a process that has not written its name yet"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    if holder.get("started"):
        text += f", started {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _this_holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300]}


def _launcher_holds(run_dir: Path, holder: dict[str, Any] | None) -> bool:
    """Whether a torchrun launcher of this process named ``run_dir`` and holds its lock."""
    value = os.environ.get(LAUNCHER_ENV, "")
    directory, _, pid = value.rpartition(":")
    return bool(directory) and directory == _key(run_dir) and holder is not None \
        and str(holder.get("pid")) == pid and holder.get("host") == socket.gethostname()


def acquire(run_dir: str | os.PathLike) -> RunDirLock:
    """Take the run directory's lock (creating the directory), or a further hold on it.

    Returns:
        The lock; release it (or use it as a context manager) when the run ends.

    Raises:
        ConfigError: another process holds it (names its pid, host and start time).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = _key(run_dir)
    with _guard:
        lock = _held.get(key)
        if lock is not None:
            lock._count += 1
            return lock
        if fcntl is None:  # pragma: no cover - no advisory locks on this platform
            lock = _held[key] = RunDirLock(run_dir, None, None)
            return lock
        for _ in range(20):  # each retry follows a release that deleted the file under us
            result = _try_lock(run_dir)
            if result is not None:
                break
        else:  # pragma: no cover - would need 20 releases racing this one
            raise ConfigError(f"Cannot lock run directory {run_dir}: {run_dir / LOCK_NAME} keeps "
                              "being replaced")
        if result is _LAUNCHER or result is _UNSUPPORTED:
            lock = RunDirLock(run_dir, None, None)
        else:
            fd, previous = result
            lock = RunDirLock(run_dir, fd, previous)
        _held[key] = lock
    if lock.previous:
        warnings.warn(f"Run directory {run_dir}: took over the lock left by {_describe(lock.previous)}, "
                      "which ended without releasing it (killed or crashed)", stacklevel=2)
    return lock


_LAUNCHER = object()
_UNSUPPORTED = object()


def _try_lock(run_dir: Path):
    """``(fd, previous holder)`` once locked, ``_LAUNCHER``, ``_UNSUPPORTED`` (a file system
    without locks), or ``None`` to start over."""
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        for _ in range(20):  # the holder may be between its flock and writing its name
            if holder:
                break
            time.sleep(0.05)
            holder = _read_holder(fd)
        os.close(fd)
        if _launcher_holds(run_dir, holder):
            return _LAUNCHER
        raise ConfigError(
            f"Run directory {run_dir} is in use by another bigmodel process: {_describe(holder)}. "
            f"Wait for it to finish, or choose another run directory (lock file {path})") from None
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        warnings.warn(f"Run directory {run_dir}: its file system cannot lock files ({err}); another "
                      "process could write into it at the same time", stacklevel=4)
        return _UNSUPPORTED
    except BaseException:
        os.close(fd)
        raise
    if not _same_file(fd, path):  # released (and deleted) between our open and our flock
        os.close(fd)
        return None
    previous = _read_holder(fd)
    data = json.dumps(_this_holder()).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    return fd, previous


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike | None, enabled: bool = True) -> Iterator[RunDirLock | None]:
    """Hold the run directory's lock for the block (nothing when ``run_dir`` is None or not
    ``enabled``, e.g. on a torchrun rank other than 0)."""
    if run_dir is None or not enabled:
        yield None
        return
    lock = acquire(run_dir)
    try:
        yield lock
    finally:
        lock.release()


def launcher_environment(run_dir: str | os.PathLike) -> dict[str, str]:
    """Environment variables that let the workers a launcher starts work in ``run_dir`` under the
    lock this process holds."""
    return {LAUNCHER_ENV: f"{_key(Path(run_dir))}:{os.getpid()}"}


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a run directory's lock file (ignored when checking a directory is empty)."""
    return path.name == LOCK_NAME


__all__ = ["LOCK_NAME", "RunDirLock", "acquire", "hold", "is_lock_file", "launcher_environment"]
