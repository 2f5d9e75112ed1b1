"""Legacy Keras HDF5 weight files (written by ``tf.keras`` 2, or Keras 3's ``legacy_h5_format``;
Keras's published ``keras.applications`` weights are such files), read into a model.

The file holds a root attribute ``layer_names`` (under ``model_weights`` in a whole-model file)
and, per layer, a group with an attribute ``weight_names`` naming its datasets
(``conv1_conv/kernel:0``, ...) in the layer's legacy order: trainable weights first. Keras 3 loads
these files by position; here each layer's weights are found by its name (a name with Keras 2's
``/`` separators, as in the DenseNet files, matches Keras 3's ``_``), and only when the names do
not all match does loading fall back to Keras's positional order. Every shape is checked before
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
from bigmodel.keras.keras_weights import WeightsFileError


def is_legacy_layout(h5: Any) -> bool:
    """Whether an open HDF5 file is in the legacy layout (layer groups listed by name)."""
    root = h5["model_weights"] if "model_weights" in h5 else h5
    return "layer_names" in root.attrs or "layer_names0" in root.attrs


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
            raise WeightsFileError(f"{path}: the file lists layer {name!r} but has no group for it")
        group = root[name]
        weight_names = _attribute_list(group, "weight_names")
        try:
            arrays = [np.asarray(group[weight]) for weight in weight_names]
        except KeyError as err:
            raise WeightsFileError(f"{path}: layer {name!r} lists weights {weight_names} that "
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
    """Load a legacy Keras HDF5 weights file into ``model`` (see :func:`read_legacy_weights`).

    Raises:
        CheckpointError: no such file, not HDF5, or see :func:`read_legacy_weights`.
    """
    path = str(filepath)
    if not Path(path).is_file():
        raise WeightsFileError(f"weights file {path} does not exist")
    try:
        with h5py.File(path, "r") as file:
            read_legacy_weights(model, file, path)
    except OSError as err:
        if isinstance(err, CheckpointError):
            raise
        raise WeightsFileError(f"cannot read weights file {path}: {err}") from err


def read_legacy_weights(model: Any, h5: Any, path: Any) -> None:
    """Copy the weights of an open legacy file into ``model``, matching layers by name.

    Args:
        model: a built functional or Sequential ``Model``.
        h5: the open file (``layer_names`` at its root or under ``model_weights``).
        path: the file's name, for messages.

    Raises:
        CheckpointError: not in the legacy layout, a layer of the model that the file does not
            hold (when names match neither by name nor by position), or a weight count or shape
            that differs (the message names the layer). Nothing was changed in the model then.
    """
    root = h5
    if "layer_names" not in h5.attrs and "model_weights" in h5:
        root = h5["model_weights"]  # a whole-model legacy .h5: its weights group
    if not _attribute_list(root, "layer_names"):
        raise WeightsFileError(f"{path} is not a legacy Keras weights file (no 'layer_names' "
                               "attribute); a Keras 3 '.weights.h5' file loads with "
                               "model.load_weights")
    saved = _file_layers(root, path)
    targets = [layer for layer in model.layers if layer._ordered_weight_items()]
    by_name = {name.replace("/", "_"): arrays for name, arrays in saved.items()}
    if all(layer.name in by_name for layer in targets):
        pairs = [(layer, layer.name, by_name[layer.name]) for layer in targets]
    elif len(saved) == len(targets):  # Keras's own rule: the layers holding weights, in order
        pairs = [(layer, name, arrays) for layer, (name, arrays) in zip(targets, saved.items())]
    else:
        missing = [layer.name for layer in targets if layer.name not in by_name]
        raise WeightsFileError(f"{path}: the file has no weights for layer(s) {missing[:5]} of "
                              f"model '{model.name}' ({len(targets)} layers hold weights, the "
                              f"file has {len(saved)})")
    planned = []
    for layer, saved_name, arrays in pairs:
        expected = layer.get_weights()
        order = _legacy_order(layer)
        if len(arrays) != len(expected):
            raise WeightsFileError(f"{path}: layer '{layer.name}' expects {len(expected)} "
                                  f"weights; the file's layer {saved_name!r} has {len(arrays)}")
        values: list[np.ndarray] = [np.empty(0)] * len(arrays)
        for position, array in zip(order, arrays):
            if array.shape != expected[position].shape:
                raise WeightsFileError(
                    f"{path}: layer '{layer.name}' weight {position} has shape "
                    f"{expected[position].shape} in the model and {array.shape} in the file's "
                    f"layer {saved_name!r}")
            values[position] = array
        planned.append((layer, values))
    for layer, values in planned:
        layer.set_weights(values)
