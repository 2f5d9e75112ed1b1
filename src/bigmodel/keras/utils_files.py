"""``keras.utils.get_file``: download a file once into a cache (``~/.keras/datasets``), check its
hash, optionally extract a tar / zip archive, as Keras 3 does.

Differences from Keras, all on the side of safety: the download is written under a temporary name
and renamed only when complete and (if a hash was given) matching, so a failed or interrupted
download leaves nothing in the cache; an archive member whose path would land outside the
extraction folder (absolute, ``..``, a link pointing out, a device file) makes the whole
extraction fail with :class:`~bigmodel.errors.DataFileError` (Keras skips such members with a
warning), and extraction happens in a temporary folder renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.utils.io import atomic_path

__all__ = ["extract_archive", "get_file", "hash_file", "validate_file"]

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 16
# Replaced in tests by a fake opener; file:// and http:// URLs work with the real one.
_urlopen: Callable[..., Any] = urllib.request.urlopen


def keras_home() -> str:
    """``$KERAS_HOME`` when set, else ``~/.keras`` (Keras's cache root)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _hasher(algorithm: str, file_hash: str | None = None) -> Any:
    """Keras's rule: ``"sha256"``, or ``"auto"`` with a 64-character hash, is SHA-256; else MD5."""
    if algorithm not in ("auto", "sha256", "md5"):
        raise ConfigError(f"get_file: hash_algorithm must be 'auto', 'sha256' or 'md5'. "
                          f"Received: hash_algorithm={algorithm!r}")
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None
                                 and len(file_hash) == 64):
        return hashlib.sha256()
    return hashlib.md5(usedforsecurity=False)


def hash_file(fpath: str | os.PathLike, algorithm: str = "sha256",
              chunk_size: int = 65535) -> str:
    """The hex SHA-256 (or MD5) of a file, as ``keras.utils``'s ``hash_file``."""
    hasher = _hasher(algorithm)
    with open(fpath, "rb") as handle:
        while block := handle.read(chunk_size):
            hasher.update(block)
    return hasher.hexdigest()


def validate_file(fpath: str | os.PathLike, file_hash: str, algorithm: str = "auto",
                  chunk_size: int = 65535) -> bool:
    """Whether the file's hash (SHA-256 or MD5, chosen as in Keras) equals ``file_hash``."""
    hasher = _hasher(algorithm, file_hash)
    with open(fpath, "rb") as handle:
        while block := handle.read(chunk_size):
            hasher.update(block)
    return hasher.hexdigest() == str(file_hash).lower()


def _download(origin: str, target: Path, file_hash: str | None, algorithm: str) -> None:
    """Stream ``origin`` to ``target`` through a temporary file renamed only on success."""
    print(f"Downloading data from {origin}", file=sys.stderr)
    hasher = _hasher(algorithm, file_hash)
    with atomic_path(target) as tmp:
        try:
            with _urlopen(origin, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                    open(tmp, "wb") as out:
                while block := response.read(_CHUNK):
                    hasher.update(block)
                    out.write(block)
        except urllib.error.HTTPError as err:
            raise DataFileError(f"get_file: URL fetch failure on {origin}: HTTP {err.code} "
                                f"{err.reason}") from err
        except urllib.error.URLError as err:
            raise DataFileError(f"get_file: URL fetch failure on {origin}: {err.reason}") from err
        except (OSError, ValueError) as err:  # a bad URL, a connection reset, a timeout
            raise DataFileError(f"get_file: URL fetch failure on {origin}: {err}") from err
        if file_hash is not None and hasher.hexdigest() != str(file_hash).lower():
            raise DataFileError(
                f"get_file: incomplete or corrupted file downloaded from {origin}: its "
                f"{hasher.name} hash is {hasher.hexdigest()}, expected {file_hash}. Nothing "
                "was kept")


def _inside(base: Path, name: str) -> bool:
    resolved = (base / name).resolve()
    return resolved == base or base in resolved.parents


def _check_members(archive: Any, base: Path, archive_path: str) -> None:
    """Refuse (do not skip) any member that would write outside ``base``."""
    if isinstance(archive, tarfile.TarFile):
        for member in archive.getmembers():
            bad = (os.path.isabs(member.name) or not _inside(base, member.name)
                   or member.isdev() or member.isfifo())
            if member.issym():
                target = os.path.join(os.path.dirname(member.name), member.linkname)
                bad = bad or os.path.isabs(member.linkname) or not _inside(base, target)
            elif member.islnk():
                bad = bad or os.path.isabs(member.linkname) or not _inside(base, member.linkname)
            if bad:
                raise DataFileError(f"get_file: archive {archive_path} holds a member outside "
                                    f"its folder or not a plain file: {member.name!r}; "
                                    "refusing to extract it")
    else:
        for name in archive.namelist():
            if os.path.isabs(name) or name.startswith(("/", "\\")) or not _inside(base, name):
                raise DataFileError(f"get_file: archive {archive_path} holds a member outside "
                                    f"its folder: {name!r}; refusing to extract it")


def extract_archive(file_path: str | os.PathLike, path: str | os.PathLike = ".",
                    archive_format: str | list[str] | None = "auto") -> bool:
    """Extract a tar (``.tar``, ``.tar.gz``, ``.tar.bz2``, ...) or zip archive into ``path``.

    Args:
        file_path: the archive.
        path: the folder to extract into (made; filled through a temporary sibling renamed into
            place, so a failed extraction leaves nothing).
        archive_format: ``"auto"`` (tar, then zip), ``"tar"``, ``"zip"``, a list of those, or
            ``None`` (nothing matches).

    Returns:
        True if the file was an archive of an accepted format and was extracted, else False.

    Raises:
        ConfigError: an unknown archive format.
        DataFileError: a member would land outside ``path``, or the archive is corrupt.
    """
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for fmt in formats:
        if fmt not in ("tar", "zip"):
            raise ConfigError(f"get_file: archive_format must be 'auto', 'tar', 'zip', a list of "
                              f"them or None. Received: archive_format={archive_format!r}")
    file_path, target = str(file_path), Path(path)
    for fmt in formats:
        is_match = tarfile.is_tarfile if fmt == "tar" else zipfile.is_zipfile
        if not is_match(file_path):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            opener = tarfile.open if fmt == "tar" else zipfile.ZipFile
            with opener(file_path) as archive:
                _check_members(archive, staging.resolve(), file_path)
                if fmt == "tar":
                    archive.extractall(staging, filter="data")
                else:
                    archive.extractall(staging)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(staging, target)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(err, DataFileError):
                raise
            raise DataFileError(f"get_file: cannot extract {file_path}: {err}") from err
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return True
    return False


def get_file(fname: str | os.PathLike | None = None, origin: str | None = None,
             untar: bool = False, md5_hash: str | None = None, file_hash: str | None = None,
             cache_subdir: str = "datasets", hash_algorithm: str = "auto",
             extract: bool = False, archive_format: str | list[str] | None = "auto",
             cache_dir: str | os.PathLike | None = None, force_download: bool = False) -> str:
    """Download ``origin`` into ``cache_dir/cache_subdir/fname`` unless already there; Keras 3's
    arguments, defaults, cache layout and return value.

    Args:
        fname: the local file name (no folder); default the last part of ``origin``'s path. With
            ``extract``, a name with a dot names the archive and the folder is
            ``<stem>_extracted``; a name without a dot names the folder and the archive is
            ``<fname>_archive``.
        origin: the URL (``http(s)://``, ``file://``, ...). Required.
        untar: deprecated: ``extract=True`` with ``archive_format="tar"``.
        md5_hash: deprecated: ``file_hash`` with ``hash_algorithm="md5"``.
        file_hash: the expected SHA-256 or MD5 hex digest; a cached file that does not match is
            downloaded again, a download that does not match is refused.
        cache_subdir: folder under ``cache_dir`` (an absolute path is used as is).
        hash_algorithm: ``"auto"`` (64 hex digits: SHA-256, else MD5), ``"sha256"`` or ``"md5"``.
        extract: extract the archive (tar or zip) and return the folder.
        archive_format: ``"auto"``, ``"tar"``, ``"zip"`` or ``None``.
        cache_dir: default ``$KERAS_HOME`` or ``~/.keras`` (``/tmp/.keras`` if not writable).
        force_download: download even if the file is cached.

    Returns:
        The path of the file, or of the extraction folder with ``extract``.

    Raises:
        ConfigError: no ``origin``, no file name in it, ``fname`` with a folder in it, an unknown
            ``hash_algorithm`` / ``archive_format``.
        DataFileError: the download failed (names the URL and reason), its hash did not match,
            or an archive member would land outside the extraction folder. Nothing half-written
            is left in the cache.
    """
    if not origin:
        raise ConfigError('get_file: please specify the "origin" argument (URL of the file to '
                          f"download). Received: origin={origin!r}")
    _hasher(hash_algorithm)
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    base = os.path.expanduser(str(cache_dir) if cache_dir is not None else keras_home())
    if not os.access(base, os.W_OK) and os.path.exists(base):
        base = os.path.join(tempfile.gettempdir(), ".keras")
    datadir = Path(base) / cache_subdir
    provided = fname is not None and str(fname) != ""
    name = os.fspath(fname) if provided else ""
    if not provided:
        name = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not name:
            raise ConfigError(f"get_file: can't parse the file name from the origin provided: "
                              f"{origin!r}. Please specify the `fname` argument")
    elif os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
        raise ConfigError("get_file: paths are no longer accepted as the `fname` argument; to "
                          f"choose the file's folder use `cache_dir`. Received: fname={name!r}")
    if extract or untar:
        if provided and "." in name:
            target = datadir / name
            extraction_dir = datadir / f"{name[:name.find('.')]}_extracted"
        else:
            extraction_dir, target = datadir / name, datadir / f"{name}_archive"
    else:
        target = datadir / name
    datadir.mkdir(parents=True, exist_ok=True)
    download = force_download or not target.exists()
    if not download and file_hash is not None and not validate_file(target, file_hash,
                                                                    hash_algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because the "
              f"{hash_algorithm} file hash does not match the original value of {file_hash} "
              "so we will re-download the data.", file=sys.stderr)
        download = True
    if download:
        _download(origin, target, file_hash, hash_algorithm)
    if extract or untar:
        if not extract_archive(target, extraction_dir, "tar" if untar else archive_format):
            raise DataFileError(f"get_file: {target} (from {origin}) is not a "
                                f"{'tar' if untar else 'tar or zip'} archive; cannot extract it")
        return str(extraction_dir)
    return str(target)
