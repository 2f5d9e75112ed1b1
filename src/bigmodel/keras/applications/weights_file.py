"""The pretrained weights of ``keras.applications``: Keras's published files (legacy Keras HDF5,
one group per layer), downloaded once with a hash check and loaded by layer name.

A legacy file (written by ``tf.keras`` 2, or Keras 3's ``legacy_h5_format``) holds a root attribute
``layer_names`` and, per layer, a group with an attribute ``weight_names`` naming its datasets
(``conv1_conv/kernel:0``, ...) in the layer's legacy order: trainable weights first. Keras 3 loads
these files by position; here each layer's weights are found by its name (a name with Keras 2's
``/`` separators, as in the DenseNet files, matches Keras 3's ``_``), and only when the names do
not match at all does loading fall back to Keras's positional order. Every shape is checked before
any weight changes; nothing in the file is executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch import nn

from bigmodel.errors import CheckpointError
from bigmodel.keras.utils_files import get_file

#: where Keras publishes the weight files (EfficientNet's are outside ``tensorflow/``)
STORAGE_URL = "https://storage.googleapis.com/"
KERAS_APPLICATIONS = "tensorflow/keras-applications"


class WeightsFile:
    """One published weight file: its path under :data:`STORAGE_URL` and its hash (MD5 or
    SHA-256; None where Keras has none: then the file is checked only by loading it)."""

    def __init__(self, path: str, file_hash: str | None = None, file_name: str | None = None):
        self.path, self.file_hash = path, file_hash
        # the name in the cache: Keras's (which for NASNet differs from the URL's)
        self.file_name = file_name or path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        return STORAGE_URL + self.path

    def fetch(self) -> str:
        """The local path of the file, downloaded into ``~/.keras/models`` when not cached.

        Raises:
            DataFileError: the download failed or its hash did not match (nothing is kept).
        """
        return get_file(self.file_name, self.url, cache_subdir="models",
                        file_hash=self.file_hash)


def keras_file(family: str, file_name: str, file_hash: str | None = None,
               cache_name: str | None = None) -> WeightsFile:
    """A file of ``tensorflow/keras-applications/<family>/``, where most families' files are."""
    return WeightsFile(f"{KERAS_APPLICATIONS}/{family}/{file_name}", file_hash, cache_name)


def _attribute_list(group: h5py.Group, name: str) -> list[str]:
    """A string-list attribute, also when Keras split it in chunks ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def _file_layers(root: h5py.Group, path: str) -> dict[str, list[np.ndarray]]:
    """Layer name -> weight arrays (legacy order) for every layer of the file holding weights."""
    layers: dict[str, list[np.ndarray]] = {}
    for name in _attribute_list(root, "layer_names"):
        if name not in root:
            raise CheckpointError(f"{path}: the file lists layer {name!r} but has no group for it")
        group = root[name]
        weight_names = _attribute_list(group, "weight_names")
        try:
            arrays = [np.asarray(group[weight]) for weight in weight_names]
        except KeyError as err:
            raise CheckpointError(f"{path}: layer {name!r} lists weights {weight_names} that "
                                  "the file does not hold") from err
        if arrays:
            layers[name] = arrays
    return layers


def _legacy_order(layer: Any) -> list[int]:
    """Positions of the layer's ``get_weights()`` arrays in the legacy (trainable first) order."""
    items = layer._ordered_weight_items()
    if not getattr(layer, "trainable", True):  # Keras: a frozen layer lists none as trainable
        return list(range(len(items)))
    trainable = [i for i, (owner, attr) in enumerate(items)
                 if isinstance(getattr(owner, attr), nn.Parameter)
                 and attr not in owner.__dict__.get("_fixed_weights", set())]
    return trainable + [i for i in range(len(items)) if i not in trainable]


def load_legacy_weights(model: Any, filepath: str | os.PathLike) -> None:
    """Load a legacy Keras HDF5 weights file into ``model``, matching layers by name.

    Args:
        model: a built functional ``Model``.
        filepath: the ``.h5`` file (``layer_names`` at its root or under ``model_weights``).

    Raises:
        CheckpointError: not an HDF5 file, not in the legacy layout, a layer of the model that
            the file does not hold (when names match neither by name nor by position), or a
            weight count or shape that differs (the message names the layer). Nothing was
            changed in the model then.
    """
    path = str(filepath)
    if not Path(path).is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with h5py.File(path, "r") as file:
            root = file
            if "layer_names" not in file.attrs and "model_weights" in file:
                root = file["model_weights"]  # a whole-model legacy .h5: its weights group
            if not _attribute_list(root, "layer_names"):
                raise CheckpointError(f"{path} is not a legacy Keras weights file (no "
                                      "'layer_names' attribute); a Keras 3 '.weights.h5' file "
                                      "loads with model.load_weights")
            saved = _file_layers(root, path)
    except OSError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"cannot read weights file {path}: {err}") from err
    targets = [layer for layer in model.layers if layer._ordered_weight_items()]
    by_name = {name.replace("/", "_"): arrays for name, arrays in saved.items()}
    if all(layer.name in by_name for layer in targets):
        pairs = [(layer, layer.name, by_name[layer.name]) for layer in targets]
    elif len(saved) == len(targets):  # Keras's own rule: the layers holding weights, in order
        pairs = [(layer, name, arrays) for layer, (name, arrays) in zip(targets, saved.items())]
    else:
        missing = [layer.name for layer in targets if layer.name not in by_name]
        raise CheckpointError(f"{path}: the file has no weights for layer(s) {missing[:5]} of "
                              f"model '{model.name}' ({len(targets)} layers hold weights, the "
                              f"file has {len(saved)})")
    planned = []
    for layer, saved_name, arrays in pairs:
        expected = layer.get_weights()
        order = _legacy_order(layer)
        if len(arrays) != len(expected):
            raise CheckpointError(f"{path}: layer '{layer.name}' expects {len(expected)} "
                                  f"weights; the file's layer {saved_name!r} has {len(arrays)}")
        values: list[np.ndarray] = [np.empty(0)] * len(arrays)
        for position, array in zip(order, arrays):
            if array.shape != expected[position].shape:
                raise CheckpointError(
                    f"{path}: layer '{layer.name}' weight {position} has shape "
                    f"{expected[position].shape} in the model and {array.shape} in the file's "
                    f"layer {saved_name!r}")
            values[position] = array
        planned.append((layer, values))
    for layer, values in planned:
        layer.set_weights(values)
