"""``keras.utils.text_dataset_from_directory``: a folder of class subfolders of ``.txt`` files, in
batches of strings.

Keras 3 builds a ``tf.data.Dataset`` of string tensors (TensorFlow needed); here the result is a
:class:`~bigmodel.keras.py_dataset.PyDataset` of NumPy batches: texts as an object array of
``str`` ``(batch,)`` and labels, with Keras's file order, class names, labels, validation split
and ``max_length``. ``fit`` / ``predict`` take it (strings go to the model's string layer), and
``TextVectorization.adapt`` takes it (the texts of each ``(texts, labels)`` batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.engine.progress import print_message
from bigmodel.errors import ConfigError, DataError, DataFileError, NotSupportedError
from bigmodel.keras.image_dataset import (
    check_split,
    class_files,
    encode_labels,
    shuffle_files,
    split_files,
)
from bigmodel.keras.py_dataset import PyDataset

__all__ = ["TextDataset", "text_dataset_from_directory"]


class TextDataset(PyDataset):
    """Batches of texts read from ``paths`` (UTF-8, cut to ``max_length`` characters)."""

    def __init__(self, paths: list[str], labels: np.ndarray | None, class_names: list[str],
                 batch_size: int, max_length: int | None, rng: np.random.RandomState | None):
        super().__init__()
        self.paths, self.labels, self.class_names = paths, labels, class_names
        self.file_paths = list(paths)  # Keras's attribute name
        self.batch_size, self.max_length, self._rng = batch_size, max_length, rng
        self._order = np.arange(len(paths))

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _text(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError as error:
            raise DataFileError(f"text_dataset_from_directory: cannot read {path}: {error}") \
                from None
        return text if self.max_length is None else text[:self.max_length]

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        texts = np.empty(len(chosen), dtype=object)
        texts[:] = [self._text(self.paths[i]) for i in chosen]
        return texts if self.labels is None else (texts, self.labels[chosen])

    def on_epoch_end(self) -> None:
        if self._rng is not None:  # a new order each epoch, as tf.data reshuffles
            self._rng.shuffle(self._order)


def text_dataset_from_directory(directory: Any, labels: Any = "inferred",
                                label_mode: str | None = "int", class_names: Any = None,
                                batch_size: int | None = 32, max_length: int | None = None,
                                shuffle: bool = True, seed: int | None = None,
                                validation_split: float | None = None, subset: str | None = None,
                                follow_links: bool = False, format: str = "tf",
                                verbose: bool = True) -> Any:
    """Texts under ``directory`` (one subfolder per class, ``.txt`` files), as Keras 3's function.

    Returns:
        A :class:`TextDataset` (``.class_names``, ``.file_paths``), or a list ``[training,
        validation]`` for ``subset="both"``.

    Raises:
        ConfigError: a bad argument (label_mode, subset, split without a seed, ...).
        DataError: no ``.txt`` files.
        DataFileError: not a directory, or a file that cannot be read.
        NotSupportedError: ``labels`` as a list, ``batch_size=None``, ``format="grain"``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataFileError(f"text_dataset_from_directory: {root} is not a directory")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ConfigError("text_dataset_from_directory: label_mode must be 'int', 'categorical', "
                          f"'binary' or None. Received: label_mode={label_mode!r}")
    if batch_size is None or format != "tf":
        raise NotSupportedError("text_dataset_from_directory: batch_size=None and format="
                                f"{format!r} are not supported by bigmodel")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(
            max_length, int) or max_length < 1):
        raise ConfigError("text_dataset_from_directory: max_length must be a positive integer "
                          f"or None. Received: max_length={max_length!r}")
    check_split("text_dataset_from_directory", validation_split, subset, shuffle, seed)
    if not (labels is None or (isinstance(labels, str) and labels == "inferred")):
        raise NotSupportedError("text_dataset_from_directory: labels given as a list are not "
                                "supported by bigmodel; use labels='inferred' or None")
    paths, indices, names = class_files(root, class_names, follow_links, (".txt",),
                                        "text_dataset_from_directory")
    if labels is None:
        label_mode = None
    if not paths:
        raise DataError(f"text_dataset_from_directory: no .txt files in {root}")
    paths, label_array, seed = shuffle_files(paths, np.asarray(indices, dtype=np.int64), shuffle,
                                             seed)
    if verbose:
        print_message(f"Found {len(paths)} files belonging to {len(names)} classes.")
    encoded = encode_labels(label_array, label_mode, len(names), "text_dataset_from_directory")

    def make(part: slice, what: str) -> TextDataset:
        if verbose and what:
            print_message(f"Using {len(paths[part])} files for {what}.")
        return TextDataset(paths[part], None if encoded is None else encoded[part], names,
                           int(batch_size), max_length,
                           np.random.RandomState(seed) if shuffle else None)

    return split_files(len(paths), validation_split, subset, make)
