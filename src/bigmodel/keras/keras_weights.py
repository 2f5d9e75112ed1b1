"""The weights file of Keras 3 (``model.weights.h5``, also a bare ``.weights.h5``) for bigmodel
models.

Keras 3 stores each layer's variables as HDF5 datasets ``<path>/vars/0``, ``<path>/vars/1``, ...
where ``<path>`` follows the objects: ``layers/<snake class name>[_k]`` for the layers of a
Sequential or functional model (``k`` counts earlier layers of the same class), then the
attribute holding a sub-layer (``cell`` of an RNN, ``forward_layer`` of a Bidirectional,
``query_dense`` of a MultiHeadAttention, ...). Arrays are in Keras layouts; bigmodel's layers
convert through their ``_weight_perms`` (the same permutations ``get_weights`` uses), so a Conv2D
kernel is ``(kh, kw, in, out)`` in the file and ``(out, in, kh, kw)`` in memory.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import CheckpointError
from bigmodel.keras.model_classes import model_class

_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
_ATTENTION_ROLE = re.compile(r"^(query|key|value|output)_(kernel|bias)$")


class WeightsFileError(CheckpointError, ValueError):
    """A Keras weights file is missing a weight, has a wrong shape, or is not HDF5."""


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _path_name(layer: Any) -> str:
    """Keras names a layer's group after its Python class; a class exported under another name
    (``GroupQueryAttention`` is Keras's ``GroupedQueryAttention``) says so in ``keras_class_name``."""
    return _snake(getattr(type(layer), "keras_class_name", None) or type(layer).__name__)


def _unique(name: str, used: dict[str, int]) -> str:
    """Keras's container naming: ``dense``, ``dense_1``, ``dense_2`` ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _own_items(layer: Any) -> list[str]:
    """The layer's own weights in Keras's variable order: trainable ones first."""
    fixed = layer.__dict__.get("_fixed_weights", set())
    names = [n for n in layer._weight_perms if getattr(layer, n, None) is not None]
    trainable = [n for n in names if isinstance(getattr(layer, n), nn.Parameter) and n not in fixed]
    return trainable + [n for n in names if n not in trainable]


def _children(layer: Any) -> list[tuple[str, Any]]:
    """(relative path, sub-layer) pairs as Keras walks attributes (sorted, ``_`` names last)."""
    from bigmodel.keras.layers.base import Layer

    def container(path: str, module: nn.Module) -> None:
        # Layers kept in a list/tuple/dict attribute: Keras names them by class, in order.
        used: dict[str, int] = {}
        for item in module.children():
            if isinstance(item, Layer):
                found.append((f"{path}/{_unique(_path_name(item), used)}", item))
            else:
                container(f"{path}/{_unique('container', used)}", item)

    found: list[tuple[str, Any]] = []
    for attr, child in sorted(layer.named_children(),
                              key=lambda item: f"~{item[0]}" if item[0].startswith("_")
                              else item[0]):
        if isinstance(child, Layer):
            found.append((attr, child))
        else:
            container(attr, child)
    return found


def weight_entries(layer: Any, path: str = "") -> list[tuple[Any, str, str]]:
    """Every weight under ``layer`` as ``(owner layer, attribute, h5 dataset path)``.

    Also lists the group of each weightless layer as ``(layer, "", group path)`` so that the file
    holds a ``vars`` group for every layer, as Keras writes it.
    """
    from bigmodel.keras.serialization import keras_layer_order

    prefix = f"{path}/" if path else ""
    name = type(layer).__name__
    entries: list[tuple[Any, str, str]] = []
    if isinstance(layer, (model_class("Sequential"), model_class("Functional"))):
        entries.append((layer, "", f"{prefix}vars"))
        used: dict[str, int] = {}
        for child in keras_layer_order(layer):
            child_path = f"{prefix}layers/{_unique(_path_name(child), used)}"
            entries.extend(weight_entries(child, child_path))
        return entries
    own = _own_items(layer)
    if name in _RECURRENT:  # Keras keeps an RNN's weights on its cell
        entries.append((layer, "", f"{prefix}vars"))
        entries += [(layer, n, f"{prefix}cell/vars/{i}") for i, n in enumerate(own)]
        return entries
    if name == "MultiHeadAttention":
        entries.append((layer, "", f"{prefix}vars"))
        counts: dict[str, int] = {}
        for n in own:
            match = _ATTENTION_ROLE.match(n)
            role = match.group(1) if match else n
            index = counts.get(role, 0)
            counts[role] = index + 1
            entries.append((layer, n, f"{prefix}{role}_dense/vars/{index}"))
        return entries
    if hasattr(type(layer), "keras_weight_entries"):  # a layer that lays out its own file paths
        return layer.keras_weight_entries(prefix)
    if name == "TimeDistributed":
        inner = getattr(layer, "layer", None)
        entries.append((layer, "", f"{prefix}vars"))
        if inner is not None:
            entries.extend(weight_entries(inner, f"{prefix}layer"))
        return entries
    entries.append((layer, "", f"{prefix}vars"))
    entries += [(layer, n, f"{prefix}vars/{i}") for i, n in enumerate(own)]
    for attr, child in _children(layer):
        entries.extend(weight_entries(child, f"{prefix}{attr}"))
    return entries


def _keras_shape(owner: Any, attr: str) -> tuple[int, ...]:
    tensor = getattr(owner, attr)
    perm = owner._weight_perms.get(attr)
    if perm is None:
        return tuple(tensor.shape)
    return tuple(int(tensor.shape[i]) for i in np.argsort(perm))


def _keras_array(owner: Any, attr: str) -> np.ndarray:
    tensor = getattr(owner, attr).detach()
    perm = owner._weight_perms.get(attr)
    if perm is not None:
        tensor = tensor.permute(*np.argsort(perm).tolist())
    return tensor.cpu().contiguous().numpy()


def write_weights(model: Any, h5: Any) -> None:
    """Write every weight of ``model`` into the open h5py file ``h5`` in Keras 3's layout."""
    for owner, attr, path in weight_entries(model):
        if not attr:
            group = h5.require_group(path)
            group.attrs["name"] = owner.name
            continue
        h5.create_dataset(path, data=_keras_array(owner, attr))


def check_weights(model: Any, h5: Any, file: Any) -> list[tuple[Any, str, Any]]:
    """Match every weight of ``model`` with a dataset of ``h5``; compare shapes, read nothing.

    The model may live on the ``meta`` device (no memory): only shapes are used here.

    Returns:
        ``(owner, attribute, dataset)`` for every weight.

    Raises:
        WeightsFileError: a weight is missing, has another shape or dtype, or the file holds
            weights the model does not have.
    """
    import h5py

    if "layer_names" in h5.attrs or "model_weights" in h5:
        raise WeightsFileError(f"'{file}' is a legacy Keras 2 / tf.keras HDF5 file (groups by "
                               "layer name), which bigmodel does not read; load it in Keras and "
                               "save it again with Keras 3 (model.save('x.keras'))")
    found: list[tuple[Any, str, Any]] = []
    expected_paths = set()
    for owner, attr, path in weight_entries(model):
        if not attr:
            expected_paths.add(path)
            continue
        expected_paths.add(path)
        item = h5.get(path)
        if not isinstance(item, h5py.Dataset):
            raise WeightsFileError(f"'{file}': weight '{attr}' of layer '{owner.name}' "
                                   f"({type(owner).__name__}) is missing (no dataset '{path}' "
                                   "in the weights file)")
        expected = _keras_shape(owner, attr)
        if tuple(item.shape) != expected:
            raise WeightsFileError(f"'{file}': weight '{attr}' of layer '{owner.name}' "
                                   f"({type(owner).__name__}) has shape {tuple(item.shape)} in "
                                   f"the file ('{path}'); the layer expects {expected}")
        if item.dtype.kind not in "fiub":
            raise WeightsFileError(f"'{file}': dataset '{path}' (layer '{owner.name}') holds "
                                   f"{item.dtype}, not numbers")
        found.append((owner, attr, item))
    extra: list[str] = []

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and name not in expected_paths \
                and not name.startswith(("optimizer/", "metrics/", "compile_metrics/")):
            extra.append(name)

    h5.visititems(visit)
    if extra:
        raise WeightsFileError(f"'{file}' holds weights the model '{model.name}' does not have: "
                               f"{sorted(extra)[:5]} (a different architecture?)")
    return found


def read_weights(model: Any, h5: Any, file: Any) -> None:
    """Check every shape first, then copy the datasets of ``h5`` into ``model``'s weights."""
    found = check_weights(model, h5, file)
    arrays = []
    for owner, attr, item in found:
        try:
            arrays.append(np.asarray(item[()]))
        except Exception as exc:  # h5py raises OSError/KeyError for damaged chunks
            raise WeightsFileError(f"'{file}': weight '{attr}' of layer '{owner.name}' cannot "
                                   f"be read (damaged file): {exc}") from None
    with torch.no_grad():
        for (owner, attr, _), array in zip(found, arrays):
            target = getattr(owner, attr)
            value = torch.as_tensor(array, dtype=target.dtype)
            perm = owner._weight_perms.get(attr)
            if perm is not None:
                value = value.permute(*perm)
            target.copy_(value.to(target.device))
