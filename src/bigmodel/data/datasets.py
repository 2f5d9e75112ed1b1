"""Find, check and (when allowed) download the IDX image data sets: Fashion-MNIST and MNIST.

Each data set is four IDX files (``train-images-idx3-ubyte.gz`` ...). They are looked for, in order:

1. the ``path`` argument (a directory);
2. ``$BIGMODEL_DATA/<name>``, then ``$BIGMODEL_DATA`` itself;
3. the cache, ``~/.cache/bigmodel/<name>``;
4. the Debian package's directory (Fashion-MNIST: ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist/``; Debian has no MNIST package);
5. a download from the data set's official mirror into the cache, each file checked against its
   published size and checksums before it is renamed into place. ``BIGMODEL_OFFLINE=1`` skips it.

Files may be gzip-compressed or not (``name.gz`` or ``name``). A place that holds all four files
but fails a check (corrupt, wrong shape, not the data set) is recorded and the search goes on; if
nothing works, one :class:`~bigmodel.errors.DataFileError` lists every place and why it failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import sys
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bigmodel.data.download import RemoteFile, fetch_verified, file_matches, removing_on_failure
from bigmodel.data.idx import read_idx
from bigmodel.errors import DataFileError, UnknownNameError

__all__ = [
    "CACHE_ROOT",
    "DATASETS",
    "DEBIAN_LOCATIONS",
    "DatasetSpec",
    "download_dataset",
    "find_datasets",
    "get_spec",
    "load_dataset",
]

# Where things are; module attributes so tests (and unusual installs) can point them elsewhere.
CACHE_ROOT = Path("~/.cache/bigmodel")
DEBIAN_LOCATIONS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
DEBIAN_PACKAGES: dict[str, str] = {"fashion-mnist": "dataset-fashion-mnist"}
DATA_ENV = "BIGMODEL_DATA"
OFFLINE_ENV = "BIGMODEL_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60.0

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
# ((x_train, y_train), (x_test, y_test)), as Keras's load_data() returns them.
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# Replaced in tests by a fake opener; file:// URLs work with the real one.
_urlopen: Callable[..., object] = urllib.request.urlopen


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A data set of four IDX files: names, official checksums, mirrors, expected shapes."""

    name: str
    title: str
    files: dict[str, RemoteFile]  # role (see ROLES) -> file
    mirrors: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10
    num_train: int = 60000
    num_test: int = 10000


# Fashion-MNIST. Mirror, sizes and MD5s: the table "Get the Data" in the README of
# github.com/zalandoresearch/fashion-mnist. SHA-256 of the .gz files: FILE_HASHES in Keras 3
# (keras/src/datasets/fashion_mnist.py, which downloads the same files from the second mirror).
# Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 ships the same deflate streams with the
# gzip header's file name dropped and its mtime changed: its .gz files hash differently (SHA-256
# cc1d090a..., 8d3605d1..., b0564c3e..., 0ae29f65...) but putting the header back gives exactly
# the published MD5 and SHA-256, so the decompressed bytes (payload_sha256, computed from the
# Debian files) are those of the official release.
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files={
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz",
            26421880,
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz",
            29515,
            "25c81989df183df01b3e8a0aad5dffbe",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            4422102,
            "bef4ecab320f06d8554ea6380940ec79",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            5148,
            "bb300cfdad3c16e7a12a480ee83cd310",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # zalando's (no https)
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's copy
    ),
)

# MNIST. Mirrors: torchvision's (torchvision/datasets/mnist.py), which also publishes the MD5s;
# LeCun's page is the original but often refuses downloads. Only MD5s are published, so a download
# is checked by MD5 and by the byte size listed on the MNIST page (yann.lecun.com/exdb/mnist/).
MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    files={
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432"
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3"
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c"
        ),
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST, MNIST)}


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name`` (``"fashion-mnist"`` or ``"fashion_mnist"``, ``"mnist"``).

    Raises:
        UnknownNameError: no such data set (the message lists the known ones).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise UnknownNameError(
            f"Unknown data set {name!r}; known data sets: {', '.join(sorted(DATASETS))}."
        )
    return DATASETS[key]


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _cache_dir(spec: DatasetSpec) -> Path:
    return Path(CACHE_ROOT).expanduser() / spec.name


def _local_places(
    spec: DatasetSpec, path: str | os.PathLike | None
) -> list[tuple[str, Path | None]]:
    """Places to look, in search order, as ``(label, directory)``; ``None`` for an unset variable."""
    places: list[tuple[str, Path | None]] = []
    if path is not None:
        places.append(("path argument", Path(path).expanduser()))
    data_root = os.environ.get(DATA_ENV)
    if data_root:
        root = Path(data_root).expanduser()
        places.append((f"${DATA_ENV}/{spec.name}", root / spec.name))
        places.append((f"${DATA_ENV}", root))
    else:
        places.append((f"${DATA_ENV}", None))
    places.append(("cache", _cache_dir(spec)))
    if spec.name in DEBIAN_LOCATIONS:
        package = DEBIAN_PACKAGES.get(spec.name, "")
        places.append((f"Debian package {package}".strip(), Path(DEBIAN_LOCATIONS[spec.name])))
    return places


def _file_in(directory: Path, remote: RemoteFile) -> Path | None:
    """``name.gz`` or, if only that exists, the uncompressed ``name``."""
    for candidate in (remote.name, remote.name.removesuffix(".gz")):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _files_in(spec: DatasetSpec, directory: Path) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role in ROLES:
        remote = spec.files[role]
        file_path = _file_in(directory, remote)
        if file_path is None:
            missing.append(remote.name)
        else:
            found[role] = file_path
    return found, missing


def _idx_header(array: np.ndarray) -> bytes:
    """The IDX header of a uint8 array, to hash arrays as the decompressed files they came from."""
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )


def _check_official(spec: DatasetSpec, role: str, array: np.ndarray, path: Path) -> None:
    """Full-size data must be the official release: catches MNIST files in a Fashion-MNIST place."""
    hasher = hashlib.sha256(_idx_header(array))
    hasher.update(np.ascontiguousarray(array))
    digest = hasher.hexdigest()
    for other in DATASETS.values():
        if other.name != spec.name and other.files[role].payload_sha256 == digest:
            raise DataFileError(
                f"{path}: holds {other.title} data, not {spec.title} (decompressed SHA-256 "
                f"{digest})."
            )
    expected = spec.files[role].payload_sha256
    if expected is not None and digest != expected:
        raise DataFileError(
            f"{path}: has the full {spec.title} shape {array.shape} but not its content: "
            f"decompressed SHA-256 {digest}, expected {expected}."
        )


def _read_split(
    spec: DatasetSpec, files: dict[str, Path], split: str
) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
    images = read_idx(images_path, ndim=3, dtype=np.uint8)
    labels = read_idx(labels_path, ndim=1, dtype=np.uint8)
    if images.shape[1:] != spec.image_shape:
        raise DataFileError(
            f"{images_path}: expected {spec.title} images of {spec.image_shape[0]}x"
            f"{spec.image_shape[1]} pixels, shape (N, {spec.image_shape[0]}, "
            f"{spec.image_shape[1]}); found shape {images.shape}."
        )
    if len(labels) != len(images):
        raise DataFileError(
            f"{labels_path}: holds {len(labels)} labels but {images_path} holds {len(images)} "
            f"images; expected one label per image."
        )
    if len(labels) and int(labels.max()) >= spec.num_classes:
        raise DataFileError(
            f"{labels_path}: expected labels in 0..{spec.num_classes - 1}, found "
            f"{int(labels.max())}."
        )
    full = spec.num_train if split == "train" else spec.num_test
    if len(labels) == full:
        _check_official(spec, f"{split}_labels", labels, labels_path)
        _check_official(spec, f"{split}_images", images, images_path)
    return images, labels


def _load_from(spec: DatasetSpec, files: dict[str, Path]) -> Splits:
    return _read_split(spec, files, "train"), _read_split(spec, files, "test")


def download_dataset(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Download a data set's four files from its mirrors into ``directory`` (default: the cache).

    Files already there with the official size and checksums are kept. Each file is written to a
    temporary name and renamed only after its size and checksums match; if any file cannot be
    had from any mirror, the files this call downloaded are removed again, so a failed download
    leaves nothing behind. ``BIGMODEL_OFFLINE`` is not consulted here (see :func:`load_dataset`).

    Args:
        name: ``"fashion-mnist"`` or ``"mnist"``.
        directory: where to put the files; default ``~/.cache/bigmodel/<name>``.

    Returns:
        The directory holding the four files.

    Raises:
        DataFileError: a file could not be downloaded from any mirror or failed its checks (the
            message names each URL and what went wrong).
        UnknownNameError: unknown data set.
    """
    spec = get_spec(name)
    target_dir = Path(directory).expanduser() if directory is not None else _cache_dir(spec)
    with removing_on_failure(target_dir) as created:
        for role in ROLES:
            remote = spec.files[role]
            target = target_dir / remote.name
            if file_matches(remote, target):
                continue
            errors = []
            for mirror in spec.mirrors:
                url = mirror + remote.name
                print(f"Downloading {url} -> {target}", file=sys.stderr)
                try:
                    fetch_verified(url, remote, target, _urlopen, DOWNLOAD_TIMEOUT_S)
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    errors.append(f"{url}: {exc}")
                    continue
                created.append(target)
                break
            else:
                raise DataFileError(
                    f"could not download {remote.name} ({remote.size} bytes): " + "; ".join(errors)
                )
    return target_dir


def _fix_hint(spec: DatasetSpec) -> str:
    names = ", ".join(spec.files[role].name for role in ROLES)
    hints = []
    if spec.name in DEBIAN_PACKAGES:
        hints.append(f"install the Debian package: apt-get install {DEBIAN_PACKAGES[spec.name]}")
    hints.append(f"put the four files ({names}) in a directory and set {DATA_ENV}=<that directory>")
    hints.append(
        f"or pass load_data(path=<that directory>); or allow the download: unset {OFFLINE_ENV} "
        f"and connect to the network"
    )
    return "To fix: " + "; or ".join(hints[:-1]) + "; " + hints[-1] + "."


def load_dataset(
    name: str, path: str | os.PathLike | None = None, *, download: bool | None = None
) -> Splits:
    """Load a data set's train and test splits, searching the places listed in this module's doc.

    Args:
        name: ``"fashion-mnist"`` (or ``"fashion_mnist"``) or ``"mnist"``.
        path: a directory to look in first.
        download: allow the last step, downloading into the cache; ``None`` (default) allows it
            unless the environment variable ``BIGMODEL_OFFLINE`` is set to a true value.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, uint8 arrays of shapes ``(60000, 28, 28)``,
        ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)`` for the official data (other counts for
        user-supplied subsets); labels are in ``0..9``.

    Raises:
        DataFileError: no place had valid files; the message lists every place tried, why each
            failed (missing, incomplete, corrupt, download error, downloads disabled) and how to
            fix it.
        UnknownNameError: unknown data set.
    """
    spec = get_spec(name)
    tried: list[str] = []
    for label, directory in _local_places(spec, path):
        if directory is None:
            tried.append(f"{label}: not set")
            continue
        where = f"{label} ({directory})"
        if not directory.is_dir():
            tried.append(f"{where}: missing (no such directory)")
            continue
        files, missing = _files_in(spec, directory)
        if not files:
            tried.append(f"{where}: missing (none of the four files)")
            continue
        if missing:
            tried.append(f"{where}: incomplete (missing {', '.join(missing)})")
            continue
        try:
            data = _load_from(spec, files)
        except DataFileError as exc:
            tried.append(f"{where}: corrupt: {exc}")
            continue
        _warn_skipped(spec, tried, where)
        return data
    cache = _cache_dir(spec)
    allowed = (not _offline()) if download is None else download
    if not allowed:
        reason = f"{OFFLINE_ENV}=1" if download is None else "download=False"
        tried.append(f"download into {cache}: disabled ({reason})")
    else:
        try:
            files, _ = _files_in(spec, download_dataset(spec.name, cache))
            data = _load_from(spec, files)
        except DataFileError as exc:
            tried.append(f"download into {cache}: failed: {exc}")
        else:
            _warn_skipped(spec, tried, f"download into {cache}")
            return data
    lines = "\n".join(f"  {number}. {entry}" for number, entry in enumerate(tried, start=1))
    raise DataFileError(
        f"{spec.title} could not be loaded. Places tried, in order:\n{lines}\n{_fix_hint(spec)}"
    )


def _warn_skipped(spec: DatasetSpec, tried: list[str], used: str) -> None:
    """Corrupt files, and a ``path`` that did not work, are reported even when a later place works."""
    notable = [
        entry for entry in tried if ": corrupt:" in entry or entry.startswith("path argument")
    ]
    if notable:
        warnings.warn(
            f"{spec.title}: loaded from {used}; skipped: " + " | ".join(notable),
            stacklevel=3,
        )


def find_datasets(*, verify: bool = False) -> dict[str, Path | None]:
    """Where each data set would be loaded from, without downloading (for ``bigmodel info``).

    Args:
        verify: read and check the files (a second or so for Fashion-MNIST) instead of only
            checking that all four exist.

    Returns:
        ``{name: directory or None}`` for every known data set, in search order of
        ``$BIGMODEL_DATA``, the cache and the Debian directory.
    """
    found: dict[str, Path | None] = {}
    for name, spec in DATASETS.items():
        found[name] = None
        for _, directory in _local_places(spec, None):
            if directory is None or not directory.is_dir():
                continue
            files, missing = _files_in(spec, directory)
            if missing:
                continue
            if verify:
                try:
                    _load_from(spec, files)
                except DataFileError:
                    continue
            found[name] = directory
            break
    return found
