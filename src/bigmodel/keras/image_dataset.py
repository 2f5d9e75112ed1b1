"""``keras.utils.image_dataset_from_directory``: a folder of class subfolders of images, in batches.

Keras 3 builds a ``tf.data.Dataset`` (TensorFlow needed); here the result is a
:class:`~bigmodel.keras.py_dataset.PyDataset` of NumPy batches (float32 images ``(batch, height,
width, channels)`` in ``[0, 255]`` and labels), which ``fit`` / ``evaluate`` / ``predict`` take,
with Keras's file order, class names, labels, validation split and resizing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.engine.progress import print_message
from bigmodel.errors import ConfigError, DataError, DataFileError, NotSupportedError
from bigmodel.keras.ops.image import resize
from bigmodel.keras.py_dataset import PyDataset

__all__ = ["ImageDataset", "check_split", "class_files", "encode_labels",
           "image_dataset_from_directory", "shuffle_files", "split_files"]

_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_CHANNELS = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}


class ImageDataset(PyDataset):
    """Batches of images read from ``paths`` (decoded, converted and resized when asked for)."""

    def __init__(self, paths: list[str], labels: np.ndarray | None, class_names: list[str],
                 batch_size: int, image_size: tuple[int, int], color_mode: str,
                 interpolation: str, rng: np.random.RandomState | None):
        super().__init__()
        self.paths, self.labels, self.class_names = paths, labels, class_names
        self.file_paths = list(paths)  # Keras's attribute name
        self.batch_size, self.image_size = batch_size, image_size
        self._mode, self._interpolation, self._rng = color_mode, interpolation, rng
        self._order = np.arange(len(paths))

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _image(self, path: str) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib

        pil_mode, channels = _CHANNELS[self._mode]
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert(pil_mode), dtype=np.float32)
        except (OSError, UnidentifiedImageError) as error:
            raise DataFileError(f"image_dataset_from_directory: cannot read image {path}: "
                                f"{error}") from None
        tensor = torch.from_numpy(array.reshape(*array.shape[:2], channels))
        if tuple(tensor.shape[:2]) != self.image_size:
            tensor = resize(tensor, self.image_size, interpolation=self._interpolation)
        return tensor

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = torch.stack([self._image(self.paths[i]) for i in chosen]).numpy()
        return images if self.labels is None else (images, self.labels[chosen])

    def on_epoch_end(self) -> None:
        if self._rng is not None:  # a new order each epoch, as tf.data reshuffles
            self._rng.shuffle(self._order)


def class_files(directory: Path, class_names: list[str] | None, follow_links: bool,
                extensions: tuple[str, ...] = _EXTENSIONS,
                place: str = "image_dataset_from_directory") -> tuple[list[str], list[int],
                                                                      list[str]]:
    """Files ending in one of ``extensions`` and their class indices in Keras's order: classes
    (subfolders, or ``class_names`` in that order) sorted by name, files sorted by folder then
    name (shared by the ``*_dataset_from_directory`` functions; ``place`` names the caller).

    Raises:
        ConfigError: ``class_names`` that are not the subfolders.
    """
    folders = sorted(p.name for p in directory.iterdir() if p.is_dir())
    if class_names is not None:
        if sorted(class_names) != folders:
            raise ConfigError(f"{place}: class_names {class_names} do not match the subfolders "
                              f"of {directory}: {folders}")
        folders = list(class_names)
    paths, labels = [], []
    for index, name in enumerate(folders):
        walk = sorted(os.walk(directory / name, followlinks=follow_links), key=lambda x: x[0])
        for root, _, files in walk:
            for fname in sorted(files):
                if fname.lower().endswith(extensions):
                    paths.append(os.path.join(root, fname))
                    labels.append(index)
    return paths, labels, folders


def encode_labels(labels: np.ndarray, label_mode: str | None, num_classes: int,
                  place: str) -> np.ndarray | None:
    """Class indices as Keras's ``label_mode`` gives them (None: no labels), for ``place``."""
    if label_mode is None:
        return None
    if label_mode == "int":
        return labels.astype(np.int32)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    if num_classes != 2:
        raise ConfigError(f'{place}: label_mode="binary" needs exactly 2 classes; found '
                          f"{num_classes}")
    return labels.astype(np.float32)[:, None]


def check_split(place: str, validation_split: Any, subset: Any, shuffle: bool, seed: Any) -> None:
    """The ``validation_split`` / ``subset`` / ``seed`` rules of Keras's directory loaders."""
    if subset not in (None, "training", "validation", "both"):
        raise ConfigError(f"{place}: subset must be 'training', 'validation', 'both' or None. "
                          f"Received: subset={subset!r}")
    if (validation_split is None) != (subset is None):
        raise ConfigError(f"{place}: give validation_split and subset together. Received: "
                          f"validation_split={validation_split}, subset={subset!r}")
    if validation_split is not None and not 0 < validation_split < 1:
        raise ConfigError(f"{place}: validation_split must be between 0 and 1. Received: "
                          f"validation_split={validation_split}")
    if validation_split is not None and shuffle and seed is None:
        raise ConfigError(f"{place}: using validation_split with shuffling needs a seed (so "
                          "training and validation do not overlap)")


def shuffle_files(paths: list[str], labels: np.ndarray, shuffle: bool,
                  seed: Any) -> tuple[list[str], np.ndarray, Any]:
    """Files and labels in Keras's shuffled order (a seed drawn when none is given)."""
    if not shuffle:
        return paths, labels, seed
    seed = int(np.random.randint(1_000_000)) if seed is None else seed
    order = np.random.RandomState(seed).permutation(len(paths))
    return [paths[i] for i in order], labels[order], seed


def split_files(count: int, validation_split: float | None, subset: str | None,
                make: Any) -> Any:
    """``make(part, what)`` for the files a subset takes (the last ``validation_split`` of them
    are held out): one dataset, or ``[training, validation]`` for ``subset="both"``."""
    if validation_split is None:
        return make(slice(None), "")
    cut = count - int(validation_split * count)
    training, validation = slice(0, cut), slice(cut, None)
    if subset == "training":
        return make(training, "training")
    if subset == "validation":
        return make(validation, "validation")
    return [make(training, "training"), make(validation, "validation")]


def image_dataset_from_directory(directory: Any, labels: Any = "inferred",
                                 label_mode: str | None = "int", class_names: Any = None,
                                 color_mode: str = "rgb", batch_size: int | None = 32,
                                 image_size: tuple[int, int] = (256, 256), shuffle: bool = True,
                                 seed: int | None = None, validation_split: float | None = None,
                                 subset: str | None = None, interpolation: str = "bilinear",
                                 follow_links: bool = False, crop_to_aspect_ratio: bool = False,
                                 pad_to_aspect_ratio: bool = False, data_format: str | None = None,
                                 verbose: bool = True) -> Any:
    """Images under ``directory`` (one subfolder per class), as Keras 3's function.

    Returns:
        An :class:`ImageDataset` (``.class_names``, ``.file_paths``), or a list ``[training,
        validation]`` for ``subset="both"``.

    Raises:
        ConfigError: a bad argument (label_mode, color_mode, split without a seed, ...).
        DataError: no images.
        DataFileError: an image that cannot be read.
        NotSupportedError: ``labels`` as a list, ``crop_to_aspect_ratio`` /
            ``pad_to_aspect_ratio``, ``data_format="channels_first"`` or ``batch_size=None``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataFileError(f"image_dataset_from_directory: {root} is not a directory")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ConfigError("image_dataset_from_directory: label_mode must be 'int', "
                          f"'categorical', 'binary' or None. Received: label_mode={label_mode!r}")
    if color_mode not in _CHANNELS:
        raise ConfigError("image_dataset_from_directory: color_mode must be 'grayscale', 'rgb' "
                          f"or 'rgba'. Received: color_mode={color_mode!r}")
    if crop_to_aspect_ratio or pad_to_aspect_ratio or data_format == "channels_first" or (
            batch_size is None):
        raise NotSupportedError(
            "image_dataset_from_directory: crop_to_aspect_ratio, pad_to_aspect_ratio, "
            "data_format='channels_first' and batch_size=None are not supported by bigmodel")
    check_split("image_dataset_from_directory", validation_split, subset, shuffle, seed)
    if not (labels is None or (isinstance(labels, str) and labels == "inferred")):
        raise NotSupportedError("image_dataset_from_directory: labels given as a list are not "
                                "supported by bigmodel; use labels='inferred' (one subfolder per "
                                "class) or None")
    paths, indices, names = class_files(root, class_names, follow_links)
    if labels is None:
        label_mode = None
    if not paths:
        raise DataError(f"image_dataset_from_directory: no images ({', '.join(_EXTENSIONS)}) "
                        f"in {root}")
    paths, label_array, seed = shuffle_files(paths, np.asarray(indices, dtype=np.int64), shuffle,
                                             seed)
    if verbose:
        print_message(f"Found {len(paths)} files belonging to {len(names)} classes.")
    encoded = encode_labels(label_array, label_mode, max(len(names), int(label_array.max()) + 1),
                            "image_dataset_from_directory")

    def make(part: slice, what: str) -> ImageDataset:
        if verbose and what:
            print_message(f"Using {len(paths[part])} files for {what}.")
        return ImageDataset(paths[part], None if encoded is None else encoded[part], names,
                            int(batch_size), tuple(int(s) for s in image_size), color_mode,
                            interpolation, np.random.RandomState(seed) if shuffle else None)

    return split_files(len(paths), validation_split, subset, make)
