"""The ``assets/`` folder of a ``.keras`` archive: files a layer writes with ``save_assets`` (a
lookup layer's ``vocabulary.txt``), under the same path as its weights group
(``assets/layers/text_vectorization/vocabulary.txt``), as Keras 3's saving walks them."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bigmodel.errors import CheckpointError
from bigmodel.keras.keras_weights import weight_entries

__all__ = ["read_assets", "write_assets"]

_MAX_ASSET_BYTES = 256 << 20


def _asset_layers(model: Any) -> list[tuple[Any, str]]:
    """(layer, archive folder) for every layer that has assets."""
    found = []
    for layer, attr, path in weight_entries(model):
        if attr == "" and path.endswith("vars") and hasattr(layer, "save_assets"):
            found.append((layer, "assets/" + path[:-len("vars")].rstrip("/")))
    return found


def write_assets(model: Any, archive: zipfile.ZipFile) -> None:
    """Let each layer write its assets into a scratch folder, then copy them into ``archive``."""
    for layer, folder in _asset_layers(model):
        with tempfile.TemporaryDirectory() as scratch:
            layer.save_assets(scratch)
            for name in sorted(os.listdir(scratch)):
                file = Path(scratch) / name
                if file.is_file():
                    archive.writestr(f"{folder}/{name}", file.read_bytes())


def read_assets(model: Any, archive: zipfile.ZipFile, where: Any) -> None:
    """Give each layer with ``load_assets`` the files of its folder (plain names only, sizes
    capped) in a scratch folder.

    Raises:
        CheckpointError: a layer's asset folder is missing or an asset is too large.
    """
    members = {info.filename: info for info in archive.infolist()}
    for layer, folder in _asset_layers(model):
        if not hasattr(layer, "load_assets"):
            continue
        prefix = folder + "/"
        mine = {name[len(prefix):]: info for name, info in members.items()
                if name.startswith(prefix) and "/" not in name[len(prefix):]
                and name[len(prefix):] not in ("", ".", "..")}
        if not mine:
            if getattr(layer, "input_vocabulary", None) is not None:
                continue  # a vocabulary given in the config: Keras writes no asset
            raise CheckpointError(f"'{where}': the archive has no assets for layer "
                                  f"'{layer.name}' (expected files under {prefix})")
        with tempfile.TemporaryDirectory() as scratch:
            for name, info in mine.items():
                if info.file_size > _MAX_ASSET_BYTES:
                    raise CheckpointError(f"'{where}': asset {info.filename} declares "
                                          f"{info.file_size} bytes, over the limit")
                (Path(scratch) / name).write_bytes(archive.read(info.filename))
            layer.load_assets(scratch)
