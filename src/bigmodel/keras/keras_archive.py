"""Real Keras 3 files: the ``.keras`` archive and the bare ``.weights.h5`` weights file.

A ``.keras`` archive is a zip of ``metadata.json`` (Keras version, date), ``config.json`` (the
model as Keras 3 serializes it, see :mod:`bigmodel.keras.serialization`) and
``model.weights.h5`` (HDF5, see :mod:`bigmodel.keras.keras_weights`). Real Keras 3 loads what
this module writes, and this module loads what real Keras 3 writes.

Reading is defensive: member names must stay inside the archive, members have size limits, the
architecture is first built on the ``meta`` device (no memory) and its weight shapes compared
with the HDF5 datasets before anything real is allocated, and no code from the file is run.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from bigmodel.errors import BigModelError, CheckpointError, ConfigError
from bigmodel.keras.compile_config import keras_compile_config, restore_compile
from bigmodel.keras.keras_assets import read_assets, write_assets
from bigmodel.keras.keras_weights import (
    WeightsFileError,
    check_weights,
    read_weights,
    write_weights,
)
from bigmodel.keras.legacy_weights import is_legacy_layout, read_legacy_weights
from bigmodel.keras.optimizer_state import (
    read_optimizer_arrays,
    restore_optimizer_variables,
    write_optimizer_variables,
)
from bigmodel.keras.serialization import Importer, layer_to_keras
from bigmodel.utils.io import atomic_path

#: Keras 3 release whose archive layout this writes (read back by every Keras 3 release since).
KERAS_VERSION = "3.8.0"
_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")
_MAX_JSON = 64 << 20
_MAX_WEIGHTS = 64 << 30


class KerasFileError(CheckpointError, ValueError):
    """A ``.keras`` archive is missing, not a zip, unsafe, or incomplete (Keras: ValueError)."""


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ConfigError("Keras .keras / .weights.h5 files need h5py: "
                          "pip install 'bigmodel[keras]' (or pip install h5py)") from None
    return h5py


def _check_overwrite(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise KerasFileError(f"'{target}' exists and overwrite=False")


def _weights_bytes(model: Any, optimizer: bool = False) -> bytes:
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        write_weights(model, h5)
        if optimizer:  # a .keras archive also holds the optimizer's state where it maps
            write_optimizer_variables(model, h5)
    return buffer.getvalue()


def save_keras_archive(model: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` archive (atomic: nothing is left on failure).

    Raises:
        ConfigError: a subclassed model or layer that has no Keras description.
        KerasFileError: ``path`` exists and ``overwrite`` is false.
    """
    from bigmodel import __version__

    target = Path(path)
    _check_overwrite(target, overwrite)
    spec = layer_to_keras(model)
    if model._declared_input_shape is not None:
        spec["build_config"] = {"input_shape": list(model._declared_input_shape)}
    spec["compile_config"] = keras_compile_config(getattr(model, "_compile_config", None))
    metadata = {"keras_version": KERAS_VERSION, "bigmodel_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _weights_bytes(model, optimizer=True)
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(spec))
            archive.writestr("model.weights.h5", weights)
            write_assets(model, archive)


def save_weights_h5(model: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write only the weights of ``model`` as a Keras 3 ``.weights.h5`` file (atomic)."""
    target = Path(path)
    _check_overwrite(target, overwrite)
    weights = _weights_bytes(model)
    with atomic_path(target) as tmp:
        tmp.write_bytes(weights)


# ----------------------------------------------------------------------------------- reading
def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise KerasFileError(f"File not found: filepath={path}. Please ensure the file is an "
                             "accessible `.keras` zip file.")
    if not zipfile.is_zipfile(path):
        raise KerasFileError(f"'{path}' is not a .keras archive (not a zip file)")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise KerasFileError(f"'{path}' is not a readable zip archive: {exc}") from None
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            archive.close()
            raise KerasFileError(f"'{path}': archive member '{name}' points outside the "
                                 "archive (absolute path or '..'); refusing the file")
    return archive


def _member(archive: zipfile.ZipFile, path: Path, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise KerasFileError(f"'{path}' is not a complete .keras archive: member '{name}' is "
                             f"missing (found {archive.namelist()[:6]})") from None
    if info.file_size > limit:
        raise KerasFileError(f"'{path}': member '{name}' declares {info.file_size} bytes, over "
                             f"the limit of {limit}")
    try:
        data = archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncation
        raise KerasFileError(f"'{path}': member '{name}' is damaged: {exc}") from None
    if len(data) > limit:
        raise KerasFileError(f"'{path}': member '{name}' is larger than declared")
    return data


def _open_h5(data: bytes | Path, where: Any) -> Any:
    h5py = _h5py()
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise WeightsFileError(f"'{where}': the weights are not a readable HDF5 file "
                               f"(corrupt or another format): {exc}") from None


def _build(spec: dict[str, Any], where: str, custom_objects: Any, safe_mode: bool) -> Any:
    model = Importer(where, custom_objects, safe_mode).layer(spec)
    if not getattr(model, "built", False):
        raise KerasFileError(f"'{where}': the model in the file declares no input shape, so "
                             "its weights cannot be placed")
    return model


def _meta_check(spec: dict[str, Any], h5: Any, where: str, custom_objects: Any,
                safe_mode: bool) -> None:
    """Build the architecture without memory and compare every weight shape with the file."""
    try:
        with torch.device("meta"):
            model = _build(spec, where, custom_objects, safe_mode)
    except BigModelError:
        raise
    except (RuntimeError, NotImplementedError, TypeError):
        return  # a layer that cannot be built on meta: the real build checks the same shapes
    check_weights(model, h5, where)


def load_keras_archive(path: str | os.PathLike, custom_objects: Any = None,
                       compile: bool = True, safe_mode: bool = True) -> Any:
    """Rebuild a model from a Keras 3 ``.keras`` archive (written by Keras or bigmodel).

    Raises:
        KerasFileError: missing file, not a zip, unsafe member names, missing members.
        WeightsFileError: weights not HDF5, a weight missing or of another shape.
        UnknownObjectError: an unregistered custom class.
        ConfigError: a Lambda with bytecode under ``safe_mode``, an unsupported argument.
    """
    file = Path(path)
    with _open_archive(file) as archive:
        raw = _member(archive, file, "config.json", _MAX_JSON)
        weights = _member(archive, file, "model.weights.h5", _MAX_WEIGHTS)
    try:
        spec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KerasFileError(f"'{file}': config.json is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise KerasFileError(f"'{file}': config.json must hold an object")
    with _open_h5(weights, file) as h5:
        _meta_check(spec, h5, str(file), custom_objects, safe_mode)
        model = _build(spec, str(file), custom_objects, safe_mode)
        read_weights(model, h5, file)
        optimizer_arrays = read_optimizer_arrays(h5)
    with _open_archive(file) as archive:  # a layer's vocabulary file (Keras's assets/)
        read_assets(model, archive, file)
    if compile and isinstance(spec.get("compile_config"), dict) and spec["compile_config"]:
        restore_compile(model, spec["compile_config"], file, custom_objects)
        if optimizer_arrays is not None and getattr(model, "compiled", False):
            restore_optimizer_variables(model, optimizer_arrays, file)
    return model


def load_weights_h5(model: Any, path: str | os.PathLike) -> None:
    """Load a Keras 3 ``.weights.h5`` file (or the weights of a ``.keras`` archive) into
    ``model``; every shape is checked before any weight changes."""
    file = Path(path)
    if file.name.endswith(".keras"):
        with _open_archive(file) as archive:
            source: bytes | Path = _member(archive, file, "model.weights.h5", _MAX_WEIGHTS)
    else:
        if not file.is_file():
            raise WeightsFileError(f"File not found: filepath={file}")
        source = file
    with _open_h5(source, file) as h5:
        if not file.name.endswith(".keras") and is_legacy_layout(h5):
            read_legacy_weights(model, h5, file)  # tf.keras / keras.applications files
        else:
            read_weights(model, h5, file)
