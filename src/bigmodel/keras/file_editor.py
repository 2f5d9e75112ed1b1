"""``keras.saving.KerasFileEditor``: look at and edit the weights of a Keras 3 file without building
its model, as Keras 3's editor does.

A ``.keras`` archive or a ``.weights.h5`` file is read into ``weights_dict``, a nested dict of
object paths (``{"layers": {"dense": {"0": kernel, "1": bias}}}``, Keras's ``vars`` groups left
out) holding NumPy arrays. ``compare(model)`` lists what a model expects and the file lacks (or
the other way round, or shapes that differ); ``rename_object`` / ``delete_object`` /
``add_object`` / ``delete_weight`` / ``add_weights`` edit the dict; ``save("x.weights.h5")``
writes it in Keras 3's layout (atomically), for ``model.load_weights`` here or in real Keras.

Reading never executes anything and refuses what Keras refuses: HDF5 soft or external links,
external or virtual datasets, negative or > 64-rank shapes, a dataset over 4 GiB.
"""

from __future__ import annotations

import json
import math
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import rich.console

from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.keras.keras_archive import save_weights_h5
from bigmodel.utils.io import atomic_path

#: a weights dataset over this many bytes is refused (Keras's limit)
MAX_DATASET_BYTES = 1 << 32
#: a config.json / metadata.json member over this many bytes is refused
MAX_JSON_BYTES = 64 << 20


class WeightsEditError(CheckpointError, ValueError):
    """A Keras file the editor refuses to read (unsafe or malformed HDF5, not an archive)."""


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ConfigError("KerasFileEditor needs h5py: pip install 'bigmodel[keras]'") from None
    return h5py


def _json_member(archive: zipfile.ZipFile, path: str, name: str) -> Any:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightsEditError(f"'{path}' is not a complete .keras archive: member '{name}' "
                               "is missing") from None
    if info.file_size > MAX_JSON_BYTES:
        raise WeightsEditError(f"'{path}': member '{name}' is {info.file_size} bytes, over the "
                               f"limit of {MAX_JSON_BYTES}")
    return json.loads(archive.read(name))


def read_weights_tree(h5: Any, where: str, inner_path: str = "",
                      metadata: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """``(weights, metadata)`` of an open h5py group: nested dicts of NumPy arrays (Keras's
    ``vars`` groups skipped over, empty groups left out) and ``{path: attributes}``.

    Raises:
        WeightsEditError: a link, an external or virtual dataset, or a malformed shape.
    """
    h5py = _h5py()
    metadata = {} if metadata is None else metadata
    attributes = {key: value for key, value in h5.attrs.items()}
    if attributes:
        metadata[inner_path] = attributes
    result: dict[str, Any] = {}
    for key in h5.keys():
        path = f"{inner_path}/{key}"
        link = h5.get(key, getclass=True, getlink=True)
        if link in (h5py.ExternalLink, h5py.SoftLink):
            raise WeightsEditError(f"'{where}': not allowed: H5 file with {link.__name__} at "
                                   f"{path}")
        value = h5[key]
        if isinstance(value, h5py.Group):
            if len(value) == 0:
                continue
            group = value["vars"] if "vars" in value.keys() else value
            if isinstance(group, h5py.Group) and len(group) == 0:
                continue
            result[key], metadata = read_weights_tree(group, where, path, metadata)
            continue
        if not isinstance(value, h5py.Dataset):
            continue
        if value.external or value.is_virtual:
            raise WeightsEditError(f"'{where}': not allowed: H5 file with an external or "
                                   f"virtual dataset at {path}")
        shape = value.shape or ()
        if any(dim < 0 for dim in shape) or len(shape) > 64:
            raise WeightsEditError(f"'{where}': malformed HDF5 dataset shape {shape} at {path}")
        size = math.prod(shape) * value.dtype.itemsize
        if size > MAX_DATASET_BYTES:
            raise WeightsEditError(f"'{where}': HDF5 dataset {path} too large to load safely "
                                   f"({size} bytes; limit is {MAX_DATASET_BYTES})")
        result[key] = value[()]
    return result, metadata


def _leaf_check(name: str | None, what: str) -> None:
    if name is not None and "/" in name:
        raise ConfigError(f"Argument `{what}` should be a leaf name, not a full path name. "
                          f"Received: {what}='{name}'")


def _count(tree: dict, name: str) -> int:
    return sum(_count(v, name) for v in tree.values() if isinstance(v, dict)) + (name in tree)


class KerasFileEditor:
    """Inspect and edit the weights of a ``.keras`` or ``.weights.h5`` file (Keras 3's editor).

    Args:
        filepath: a ``.keras`` archive or a ``.weights.h5`` file.

    Attributes:
        weights_dict: the weights, nested by object path, NumPy arrays at the leaves.
        config / metadata: the archive's ``config.json`` / ``metadata.json`` (None for
            ``.weights.h5``). object_metadata: the HDF5 attributes by group path.

    Raises:
        ConfigError: another file name ending.
        WeightsEditError: not a readable archive, or an unsafe or malformed HDF5 file.
    """

    def __init__(self, filepath: Any):
        filepath = str(filepath)
        self.filepath = filepath
        self.config = None
        self.metadata = None
        self.console = rich.console.Console(highlight=False)
        h5py = _h5py()
        try:
            if filepath.endswith(".keras"):
                with zipfile.ZipFile(filepath) as archive:
                    self.config = _json_member(archive, filepath, "config.json")
                    self.metadata = _json_member(archive, filepath, "metadata.json")
                    with archive.open("model.weights.h5") as member, \
                            h5py.File(member, "r") as h5:
                        tree, meta = read_weights_tree(h5, filepath)
            elif filepath.endswith(".weights.h5"):
                with h5py.File(filepath, "r") as h5:
                    tree, meta = read_weights_tree(h5, filepath)
            else:
                raise ConfigError(f"Invalid filename: expected a `.keras` `.weights.h5` "
                                  f"extension. Received: filepath={filepath}")
        except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            raise WeightsEditError(f"'{filepath}' is not a readable Keras file: {error}") \
                from None
        self.weights_dict = tree
        self.object_metadata = meta
        self.console.print(f"Keras model file '{filepath}'")
        if self.metadata is not None:
            self.console.print(f"Saved with Keras {self.metadata.get('keras_version')} - date "
                               f"saved: {self.metadata.get('date_saved')}")

    # ------------------------------------------------------------------------------- inspect
    def summary(self) -> None:
        """Print every object path with its weights' shapes and dtypes."""
        def show(tree: dict, indent: int) -> None:
            for key, value in tree.items():
                if isinstance(value, dict):
                    self.console.print(" " * indent + f"{key}")
                    show(value, indent + 2)
                else:
                    self.console.print(" " * indent + f"{key}: shape={value.shape}, "
                                       f"dtype={value.dtype}")
        show(self.weights_dict, 0)

    def weights_summary(self) -> None:
        """Same as :meth:`summary` (the name Keras's error messages point to)."""
        self.summary()

    def compare(self, reference_model: Any) -> dict[str, Any]:
        """Compare the file's weights with what ``reference_model`` would save.

        Returns:
            ``{"status": "success" | "error", "error_count": int, "match_count": int}``; each
            missing object or weight, and each shape mismatch, is printed and counted once.
        """
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "reference.weights.h5"
            save_weights_h5(reference_model, path)
            with _h5py().File(path, "r") as h5:
                reference, _ = read_weights_tree(h5, str(path))
        checked: set[str] = set()
        errors, matches = self._compare(self.weights_dict, reference, "", "saved file",
                                        "reference model", checked)
        more, _ = self._compare(reference, self.weights_dict, "", "reference model",
                                "saved file", checked)
        errors += more
        if errors == 0:
            self.console.print("Comparison successful: saved file is compatible with the "
                               f"reference model\n    Found {matches} matching "
                               f"weight{'' if matches == 1 else 's'}")
        else:
            self.console.print(f"Found {errors} error{'' if errors == 1 else 's'}: saved file "
                               "is not compatible with the reference model")
        return {"status": "success" if errors == 0 else "error", "error_count": errors,
                "match_count": matches}

    def _compare(self, target: dict, reference: dict, base: str, target_name: str,
                 reference_name: str, checked: set[str]) -> tuple[int, int]:
        errors = matches = 0
        for key, value in reference.items():
            path = f"{base}/{key}"
            if path in checked:
                continue
            if key not in target:
                errors += 1
                checked.add(path)
                kind = "Object" if isinstance(value, dict) else "Weight"
                self.console.print(f"...{kind} {path} present in {reference_name}, missing "
                                   f"from {target_name}")
            elif isinstance(value, dict):
                sub_errors, sub_matches = self._compare(target[key], value, path, target_name,
                                                        reference_name, checked)
                errors, matches = errors + sub_errors, matches + sub_matches
            elif np.shape(target[key]) != np.shape(value):
                errors += 1
                checked.add(path)
                self.console.print(f"...Weight shape mismatch for {path}\n    In "
                                   f"{reference_name}: shape={np.shape(value)}\n    In "
                                   f"{target_name}: shape={np.shape(target[key])}")
            else:
                matches += 1
        return errors, matches

    # ---------------------------------------------------------------------------------- edit
    def _edit_object(self, edit: Any, source_name: str, target_name: str | None = None) -> None:
        """Apply ``edit(parent_dict, source_name, target_name)`` where ``source_name`` lives: a
        full path (``"layers/dense"``), or a name that occurs exactly once."""
        _leaf_check(target_name, "target_name")
        if "/" in source_name:
            *parents, leaf = source_name.split("/")
            tree = self.weights_dict
            for part in parents:
                if not isinstance(tree.get(part), dict):
                    raise ConfigError(f"Path '{source_name}' not found in model.")
                tree = tree[part]
            if leaf not in tree:
                raise ConfigError(f"Path '{source_name}' not found in model.")
            edit(tree, source_name=leaf, target_name=target_name)
            return
        found = _count(self.weights_dict, source_name)
        if found > 1:
            raise ConfigError(f"Name '{source_name}' occurs more than once in the model; try "
                              "passing a complete path")
        if found == 0:
            raise ConfigError(f"Source name '{source_name}' does not appear in the model. Use "
                              "`editor.weights_summary()` to list all objects.")

        def visit(tree: dict) -> None:
            for value in list(tree.values()):
                if isinstance(value, dict):
                    visit(value)
            if source_name in tree:
                edit(tree, source_name=source_name, target_name=target_name)
        visit(self.weights_dict)

    def rename_object(self, object_name: str, new_name: str) -> None:
        """Rename the object ``object_name`` (a name or a path) to the leaf name ``new_name``."""
        def rename(tree: dict, source_name: str, target_name: str) -> None:
            tree[target_name] = tree.pop(source_name)
        self._edit_object(rename, object_name, new_name)

    def delete_object(self, object_name: str) -> None:
        """Remove the object ``object_name`` (a name or a path) and all its weights."""
        self._edit_object(lambda tree, source_name, target_name: tree.pop(source_name),
                          object_name)

    def add_object(self, object_path: str, weights: dict[str, Any]) -> None:
        """Add an object at ``object_path`` holding ``weights`` (``{"0": array, ...}``).

        Raises:
            ConfigError: ``weights`` not a dict, or the parent path not found.
        """
        _weights_check(weights)
        *parents, leaf = object_path.split("/")
        tree = self.weights_dict
        for part in parents:
            if not isinstance(tree.get(part), dict):
                raise ConfigError(f"Path '{'/'.join(parents)}' not found in model.")
            tree = tree[part]
        tree[leaf] = {key: np.asarray(value) for key, value in weights.items()}

    def delete_weight(self, object_name: str, weight_name: str) -> None:
        """Remove the weight ``weight_name`` (e.g. ``"1"``) of the object ``object_name``."""
        def delete(tree: dict, source_name: str, target_name: Any = None) -> None:
            if weight_name not in tree[source_name]:
                raise ConfigError(f"Weight {weight_name} not found in object {object_name}. "
                                  f"Weights found: {list(tree[source_name].keys())}")
            tree[source_name].pop(weight_name)
        self._edit_object(delete, object_name)

    def add_weights(self, object_name: str, weights: dict[str, Any]) -> None:
        """Add (or replace) weights ``{"name": array}`` of the object ``object_name``."""
        _weights_check(weights)

        def add(tree: dict, source_name: str, target_name: Any = None) -> None:
            tree[source_name].update({k: np.asarray(v) for k, v in weights.items()})
        self._edit_object(add, object_name)

    # ---------------------------------------------------------------------------------- save
    def save(self, filepath: Any) -> None:
        """Write the (edited) weights as a Keras 3 ``.weights.h5`` file, atomically.

        Raises:
            ConfigError: ``filepath`` does not end in ``.weights.h5``.
        """
        filepath = str(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ConfigError(f"Invalid `filepath` argument: expected a `.weights.h5` "
                              f"extension. Received: filepath={filepath}")
        h5py = _h5py()

        def write(tree: dict, h5: Any, inner_path: str) -> None:
            leaves = {k: v for k, v in tree.items() if not isinstance(v, dict)}
            for key, value in tree.items():
                if isinstance(value, dict) and value:
                    write(value, h5, f"{inner_path}/{key}" if inner_path else key)
            if leaves:  # Keras's layout: an object's weights sit in its "vars" group
                group = h5.require_group(f"{inner_path}/vars" if inner_path else "vars")
                for key, value in leaves.items():
                    group.create_dataset(key, data=np.asarray(value))

        with atomic_path(Path(filepath)) as tmp, h5py.File(tmp, "w") as h5:
            write(self.weights_dict, h5, "")

    def resave_weights(self, filepath: Any) -> None:
        """Same as :meth:`save`."""
        self.save(filepath)


def _weights_check(weights: Any) -> None:
    if not isinstance(weights, dict):
        raise ConfigError("Argument `weights` should be a dict where keys are weight names "
                          "(usually '0', '1', etc.) and values are NumPy arrays. Received: "
                          f"type(weights)={type(weights)}")
