"""The one reader/writer of bigmodel's model files: a JSON document that names its format, beside a
safetensors file of tensors whose SHA-256 the document records.

Every saver writes through :func:`write_model_files` and every loader reads through
:func:`read_model_document` + :func:`read_weights`; what differs is a :class:`FileFormat` (the
format name and version, the file names, how messages name the files)::

    model.json          {"format": "bigmodel-model", "format_version": 1, ...,
                         "weights": "model.safetensors", "weights_sha256": "..."}
    model.safetensors   the tensors (safetensors metadata {"format": "bigmodel-model"})

Formats written this way: registry models (``bigmodel-model``, :mod:`bigmodel.models.registry`),
pruned models (the same, with ``metadata.structure``), int8 models (``bigmodel-onnx-int8``) and LoRA
adapters (``bigmodel-lora``). Keras's single ``.safetensors`` file uses :func:`write_safetensors` /
:func:`read_safetensors` only (its architecture lives in the safetensors metadata).

Reading is confined and bounded (:mod:`bigmodel.utils.loading`): names recorded in the document stay
inside the folder, the JSON is size- and depth-limited, the safetensors header is checked (pickles
refused unread) and handed to the caller's ``check`` (shapes) before a tensor is read. Nothing is
executed. Writing is atomic: weights first, then the document, each via temp file + rename, so a
directory holds either the old complete pair, or a document whose checksum refuses new weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.utils.io import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from bigmodel.utils.loading import (
    SafetensorsHeader,
    confined_path,
    read_json,
    read_safetensors_header,
)

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # a document holds configs, graphs and metadata, never tensors
_RESERVED = ("format", "format_version", "weights", "weights_sha256")


@dataclass(frozen=True)
class FileFormat:
    """One kind of model file pair.

    Attributes:
        name: the ``"format"`` written in the document and the safetensors metadata.
        version: the ``"format_version"`` written, and the newest one read.
        description: names the kind in messages (``"a bigmodel model file"``).
        what: names the document in messages (``"Model file"``).
        weights_what: names the weights file in messages (``"Model weights"``).
        noun: names a missing pair (``"No model file at ..."``).
        json_name / weights_name: the file names.
        compact_json: write the document without indentation (large graphs).
        max_bytes: the largest document read.
    """

    name: str
    version: int
    description: str
    what: str = "Model file"
    weights_what: str = "Model weights"
    noun: str = "model file"
    json_name: str = "model.json"
    weights_name: str = "model.safetensors"
    compact_json: bool = False
    max_bytes: int = MAX_DOCUMENT_BYTES


# -- writing ----------------------------------------------------------------------------------------


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, Any],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (torch tensors, or NumPy arrays) to the safetensors file ``path`` atomically.

    Raises:
        InputTypeError / CheckpointError: see safetensors; a failed write leaves ``path`` untouched.
    """
    import numpy as np

    path = Path(path)
    values = list(tensors.values())
    with atomic_path(path) as tmp:
        if values and all(isinstance(value, np.ndarray) for value in values):
            from safetensors.numpy import save_file
        else:
            from safetensors.torch import save_file
        save_file(dict(tensors), str(tmp), metadata=dict(metadata or {}))
    return path


def write_model_files(directory: str | os.PathLike, file_format: FileFormat,
                      document: Mapping[str, Any], tensors: Mapping[str, Any]) -> Path:
    """Write ``<weights_name>`` then ``<json_name>`` into ``directory`` (each atomically).

    Args:
        directory: created if missing.
        file_format: names the format and the files.
        document: the JSON-serializable content (config, metadata, graph...); ``"format"``,
            ``"format_version"``, ``"weights"`` and ``"weights_sha256"`` are filled in here.
        tensors: name -> torch tensor (contiguous, CPU) or NumPy array.

    Returns:
        The path of the document.

    Raises:
        ConfigError: ``document`` sets one of the reserved keys, or is not JSON-serializable.
    """
    clashes = [key for key in _RESERVED if key in document]
    if clashes:
        raise ConfigError(f"write_model_files: the document must not set {clashes}; they are "
                          "written from the format and the weights file")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = write_safetensors(directory / file_format.weights_name, tensors,
                                {"format": file_format.name})
    spec = {"format": file_format.name, "format_version": file_format.version, **document,
            "weights": file_format.weights_name, "weights_sha256": sha256_file(weights)}
    path = directory / file_format.json_name
    try:
        if file_format.compact_json:
            atomic_write_text(path, json.dumps(spec, separators=(",", ":")) + "\n")
        else:
            atomic_write_json(path, spec)
    except TypeError as exc:  # json.dumps: a value that is not JSON
        raise ConfigError(f"{path}: the document is not JSON-serializable: {exc}") from None
    return path


# -- reading ----------------------------------------------------------------------------------------


def read_model_document(directory: str | os.PathLike,
                        formats: FileFormat | Iterable[FileFormat]) -> tuple[dict[str, Any], FileFormat]:
    """The parsed document of a model directory, checked against one of ``formats``.

    Args:
        directory: the folder holding the pair.
        formats: the accepted format(s); they share the document's file name.

    Returns:
        ``(document, the format it names)``.

    Raises:
        CheckpointError: the document is missing, a symlink out of the folder, too large or deep,
            not JSON, not an object, of another format, or of a newer or non-integer
            ``format_version`` (the message names the file and the problem).
    """
    accepted = [formats] if isinstance(formats, FileFormat) else list(formats)
    if not accepted or len({f.json_name for f in accepted}) != 1:
        raise ConfigError("read_model_document: formats must be one or more FileFormat sharing one "
                          f"document name; received {[f.json_name for f in accepted]}")
    first = accepted[0]
    directory = Path(directory)
    path = directory / first.json_name
    if not path.is_file():
        raise CheckpointError(f"No {first.noun} at {path} (expected {first.json_name} + "
                              f"{first.weights_name} written by bigmodel)")
    confined_path(directory, first.json_name, first.what)  # a symlink out of the folder is refused
    document = read_json(path, first.what, max_bytes=max(f.max_bytes for f in accepted))
    by_name = {f.name: f for f in accepted}
    found = by_name.get(document.get("format")) if isinstance(document, dict) else None
    if found is None:
        expected = " or ".join(f'"{f.name}"' for f in accepted)
        received = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise CheckpointError(f"{path} is not {first.description} (expected \"format\": {expected}; "
                              f"received {received!r})")
    version = document.get("format_version", 0)  # files of before the key existed: version 0
    if type(version) is not int:
        raise CheckpointError(f"{path}: format_version must be an integer; received {version!r}")
    if version > found.version:
        raise CheckpointError(f"{path} has format_version {version}; this bigmodel reads up to "
                              f"{found.version}")
    return document, found


def weights_file(directory: str | os.PathLike, document: Mapping[str, Any],
                 file_format: FileFormat) -> tuple[Path, SafetensorsHeader]:
    """The weights file a document names, confined to ``directory``, checksum-verified, with its
    checked header (nothing allocated yet: compare shapes with it before building).

    Raises:
        CheckpointError: a name leaving the folder, a missing file, a pickle or a file that is not
            safetensors (refused unread), or bytes that differ from the recorded SHA-256.
    """
    directory = Path(directory)
    path = confined_path(directory, document.get("weights", file_format.weights_name),
                         file_format.weights_what)
    header = read_safetensors_header(path)  # refuses pickles and non-safetensors files, unread
    expected = document.get("weights_sha256")
    if expected is not None and not isinstance(expected, str):
        raise CheckpointError(f"{directory / file_format.json_name}: weights_sha256 must be a hex "
                              f"string; received {expected!r}")
    if expected and sha256_file(path) != expected:
        raise CheckpointError(f"{path} does not match the checksum recorded in "
                              f"{directory / file_format.json_name} (modified or truncated)")
    return path, header


def read_weights(directory: str | os.PathLike, document: Mapping[str, Any], file_format: FileFormat,
                 check: Callable[[SafetensorsHeader], None] | None = None,
                 numpy: bool = False) -> dict[str, Any]:
    """The tensors of the weights file a document names (see :func:`weights_file`).

    Args:
        check: called with the header before any tensor is read (shape checks); raises to refuse.
        numpy: NumPy arrays instead of CPU torch tensors.

    Raises:
        CheckpointError: see :func:`weights_file`; a file safetensors cannot read.
    """
    path, header = weights_file(directory, document, file_format)
    if check is not None:
        check(header)
    return read_safetensors(path, numpy=numpy)[0]


def read_safetensors(path: str | os.PathLike, numpy: bool = False,
                     error: type[CheckpointError] = CheckpointError,
                     unreadable: str = "Cannot read {path}") -> tuple[dict[str, Any], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, its header checked first (pickles refused).

    Args:
        numpy: NumPy arrays instead of CPU torch tensors.
        error: the error class raised.
        unreadable: the message start for a file safetensors cannot read (``{path}`` filled in).

    Raises:
        ``error``: missing, a pickle, truncated, or not safetensors.
    """
    from safetensors import safe_open

    read_safetensors_header(path, error=error)  # refuses pickles and non-safetensors files, unread
    try:
        with safe_open(str(path), framework="numpy" if numpy else "pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types (SafetensorError, ...)
        raise error(f"{unreadable.format(path=path)}: {exc}") from None
    return tensors, dict(metadata)


__all__ = ["FileFormat", "MAX_DOCUMENT_BYTES", "read_model_document",
           "read_safetensors", "read_weights", "weights_file", "write_model_files",
           "write_safetensors"]
