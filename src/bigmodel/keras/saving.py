"""``keras.saving``: saving and loading Keras-surface models, chosen by the file name.

- ``.keras``: a real Keras 3 archive (zip of ``config.json``, ``metadata.json`` and
  ``model.weights.h5``) that real Keras 3 loads, and that real Keras 3 writes
  (``bigmodel.keras.keras_archive``); ``.weights.h5``: Keras 3's weights-only HDF5 file.
- ``.safetensors``: bigmodel's own single file (below), no pickle; written and read through
  :mod:`bigmodel.models.model_files` like every bigmodel model file.
- Any other name is refused: no file is written under a name whose format it does not have.

The safetensors file holds the weights (the model's ``state_dict``) as tensors, and in its text metadata the
architecture (``serialize_layer`` JSON), the compile settings and a SHA-256 digest of the tensor
bytes, so a truncated or altered file is refused with a clear error. Loading rebuilds the layers
from the JSON and never executes anything stored in the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from bigmodel.errors import CheckpointError
from bigmodel.keras.file_editor import KerasFileEditor  # noqa: F401  (keras.saving API)
from bigmodel.keras.object_registry import CustomObjectScope, custom_object_scope  # noqa: F401
from bigmodel.keras.serialization import (  # noqa: F401  (keras.saving API)
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)
from bigmodel.keras.unsupported import unsupported_attribute
from bigmodel.models.model_files import read_safetensors, write_safetensors
from bigmodel.utils.loading import read_safetensors_header

FORMAT = "bigmodel.keras/1"
MODEL_SUFFIXES = (".keras", ".safetensors")
WEIGHTS_SUFFIXES = (".weights.h5", ".safetensors")


class ModelFileError(CheckpointError, ValueError):
    """A saved model file is missing, corrupt, tampered with or unsafe (Keras raises ValueError)."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        data = tensor.reshape(-1).view(torch.uint8)  # a 0-d tensor cannot be viewed as bytes
        digest.update(data.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _tensors(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
           overwrite: bool) -> None:
    target = Path(path)
    if target.exists() and not overwrite:
        raise ModelFileError(f"'{target}' exists and overwrite=False")
    write_safetensors(target, tensors, {**metadata, "sha256": _digest(tensors)})


def _suffix(path: str | os.PathLike, allowed: tuple[str, ...], what: str) -> str:
    name = Path(path).name
    for suffix in allowed:
        if name.endswith(suffix):
            return suffix
    raise ModelFileError(f"Invalid filepath for {what}: '{path}'. Supported file names end in "
                         f"{' or '.join(repr(s) for s in allowed)} (.keras: a Keras 3 archive; "
                         ".weights.h5: Keras 3 weights; .safetensors: bigmodel's own format)")


def save_model(model: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write architecture + weights + compile settings of ``model`` to ``path`` (atomic).

    ``.keras`` writes a real Keras 3 archive, ``.safetensors`` bigmodel's single file.

    Raises:
        ModelFileError: another file name, or ``path`` exists and ``overwrite`` is false.
    """
    from bigmodel import __version__
    from bigmodel.keras.layers.layer_registry import serialize_layer

    suffix = _suffix(path, MODEL_SUFFIXES, "model.save()")
    model._require_built("save")
    if suffix == ".keras":
        from bigmodel.keras.keras_archive import save_keras_archive

        save_keras_archive(model, path, overwrite=overwrite)
        return
    metadata = {
        "format": FORMAT,
        "bigmodel_version": __version__,
        "model_config": json.dumps(serialize_layer(model)),
        "compile_config": json.dumps(model._compile_config),
    }
    _write(path, _tensors(model), metadata, overwrite)


def save_weights(model: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write only the weights of ``model`` to ``path`` (atomic): ``.weights.h5`` in Keras 3's
    layout, ``.safetensors`` as the ``state_dict``."""
    suffix = _suffix(path, WEIGHTS_SUFFIXES, "save_weights()")
    model._require_built("save_weights")
    if suffix == ".weights.h5":
        from bigmodel.keras.keras_archive import save_weights_h5

        save_weights_h5(model, path, overwrite=overwrite)
        return
    _write(path, _tensors(model), {"format": FORMAT + "+weights"}, overwrite)


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    file = Path(path)
    if not file.is_file():
        raise ModelFileError(f"File not found: filepath={file}. Please ensure the file is an "
                             "accessible bigmodel (.safetensors) model file")
    tensors, metadata = read_safetensors(  # refuses pickles unread
        file, error=ModelFileError,
        unreadable="'{path}' is not a readable safetensors model file (truncated or corrupt)")
    if not metadata.get("format", "").startswith(FORMAT):
        raise ModelFileError(f"'{file}' is a safetensors file but not a bigmodel model file "
                             f"(metadata format={metadata.get('format')!r}, expected {FORMAT!r})")
    expected = metadata.get("sha256")
    if expected is None or _digest(tensors) != expected:
        raise ModelFileError(f"'{file}' failed its integrity check: the weights do not match the "
                             "digest recorded when it was saved (file altered or damaged)")
    return tensors, metadata


def _load_state(model: Any, tensors: dict[str, torch.Tensor], file: Any) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ModelFileError(f"'{file}' does not fit model '{model.name}': missing weights "
                             f"{missing[:5]}, unexpected weights {unexpected[:5]}")
    for key, value in tensors.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise ModelFileError(f"'{file}': weight '{key}' has shape {tuple(value.shape)}, the "
                                 f"model expects {tuple(own[key].shape)}")
    model.load_state_dict(tensors, strict=True)


def load_model(filepath: str | os.PathLike, custom_objects: Any = None, compile: bool = True,
               safe_mode: bool = True) -> Any:
    """Rebuild a model saved with ``model.save(path)`` or by real Keras 3 (``.keras``).

    Args:
        custom_objects: user classes (by class or registered name) a ``.keras`` file may use.
        safe_mode: refuse Lambda layers holding Python bytecode (Keras semantics).

    Raises:
        ModelFileError: missing, truncated, tampered, pickle, or not a model file.
        UnknownObjectError: an unregistered custom class in a ``.keras`` file.
    """
    from bigmodel.keras.compile_config import restore_compile
    from bigmodel.keras.layers.layer_registry import deserialize_layer

    if _is_keras_archive(filepath):
        from bigmodel.keras.keras_archive import load_keras_archive

        return load_keras_archive(filepath, custom_objects=custom_objects, compile=compile,
                                  safe_mode=safe_mode)
    tensors, metadata = _read(filepath)
    if "model_config" not in metadata:
        raise ModelFileError(f"'{filepath}' holds weights only; build the model and call "
                             "load_weights() instead")
    try:
        model = deserialize_layer(json.loads(metadata["model_config"]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"'{filepath}': architecture JSON is corrupt: {exc}") from None
    model._require_built("load_model")
    _load_state(model, tensors, filepath)
    config = json.loads(metadata.get("compile_config") or "null")
    if compile and config:
        restore_compile(model, config, filepath, custom_objects)
    return model


def _is_keras_archive(filepath: str | os.PathLike) -> bool:
    """``.keras`` names, and zip files under other names; pickles are refused by name."""
    import zipfile

    from bigmodel.utils.loading import looks_like_pickle

    file = Path(filepath)
    if file.is_file() and zipfile.is_zipfile(file):
        if file.name.endswith(".keras"):
            return True
        try:
            with zipfile.ZipFile(file) as archive:
                return "config.json" in archive.namelist()  # else e.g. torch.save: refused
        except (zipfile.BadZipFile, OSError):
            return False
    if file.is_file() and looks_like_pickle(file):
        read_safetensors_header(file, error=ModelFileError)  # raises the refusal
    return file.name.endswith(".keras")


def load_weights(model: Any, filepath: str | os.PathLike) -> None:
    """Load weights saved by ``save_weights`` or Keras 3 (``.weights.h5``, ``.keras``) into
    ``model``; every shape is checked before any weight changes."""
    if Path(filepath).name.endswith((".weights.h5", ".h5")) or _is_keras_archive(filepath):
        from bigmodel.keras.keras_archive import load_weights_h5

        model._require_built("load_weights")
        load_weights_h5(model, filepath)
        return
    tensors, _ = _read(filepath)
    model._require_built("load_weights")
    _load_state(model, tensors, filepath)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.saving", name)
