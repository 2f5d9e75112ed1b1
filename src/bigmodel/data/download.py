"""Verified downloads for the data sets: a file is fetched atomically and kept only if its size and
checksums match its record (``RemoteFile``, defined here); files made by a failed download are removed.
Used by :func:`bigmodel.data.datasets.download_dataset`."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bigmodel.errors import DataFileError
from bigmodel.utils.io import atomic_path


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a data set and what its official copy must look like.

    ``size``, ``md5`` and ``sha256`` describe the file as published (compressed); ``payload_sha256``
    is the SHA-256 of the decompressed IDX bytes, used to recognise the official data in any
    location whether or not it is compressed. ``None`` means not known.
    """

    name: str
    size: int
    md5: str
    sha256: str | None = None
    payload_sha256: str | None = None


@contextlib.contextmanager
def removing_on_failure(directory: Path) -> Iterator[list[Path]]:
    """Yield a list to record new files in; on failure remove them and the directories made for them."""
    new_dirs = []
    parent = directory
    while not parent.exists():
        new_dirs.append(parent)
        parent = parent.parent
    created: list[Path] = []
    try:
        yield created
    except BaseException:
        for file_path in created:
            file_path.unlink(missing_ok=True)
        for new_dir in new_dirs:  # deepest first; rmdir refuses a directory that is not empty
            with contextlib.suppress(OSError):
                new_dir.rmdir()
        raise


def file_matches(remote: RemoteFile, file_path: Path) -> bool:
    if not file_path.is_file() or file_path.stat().st_size != remote.size:
        return False
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(file_path, "rb") as handle:
        while block := handle.read(1 << 20):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest() == remote.md5 and (
        remote.sha256 is None or sha256.hexdigest() == remote.sha256
    )


def fetch_verified(url: str, remote: RemoteFile, target: Path, urlopen: Callable[..., Any],
                   timeout: float) -> None:
    """Download ``url`` with ``urlopen`` to ``target`` atomically, checking size, MD5 and (if
    known) SHA-256; a failed check leaves no file behind.

    Raises:
        DataFileError: too large, truncated, or a checksum mismatch (names the URL).
    """
    with atomic_path(target) as tmp:
        md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        received = 0
        with urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            while block := response.read(1 << 16):
                received += len(block)
                if received > remote.size:
                    raise DataFileError(
                        f"{url}: larger than the expected {remote.size} bytes; download abandoned."
                    )
                md5.update(block)
                sha256.update(block)
                out.write(block)
        if received != remote.size:
            raise DataFileError(f"{url}: expected {remote.size} bytes, received {received}.")
        if md5.hexdigest() != remote.md5:
            raise DataFileError(
                f"{url}: checksum mismatch: MD5 {md5.hexdigest()}, expected {remote.md5}."
            )
        if remote.sha256 is not None and sha256.hexdigest() != remote.sha256:
            raise DataFileError(
                f"{url}: checksum mismatch: SHA-256 {sha256.hexdigest()}, expected {remote.sha256}."
            )


__all__ = ["fetch_verified", "file_matches", "removing_on_failure"]
