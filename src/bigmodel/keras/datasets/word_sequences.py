"""What IMDB and Reuters share: Keras's download location and its word-id sequence options
(shuffle with a seed, start / OOV marks, index offset, ``maxlen`` filter, ``num_words`` /
``skip_top`` cut), done exactly as ``keras.datasets.imdb`` / ``reuters`` do them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataError, DataFileError
from bigmodel.keras.utils_files import get_file

__all__ = ["ORIGIN", "encode_sequences", "load_word_index", "object_array"]

# Keras's data-set bucket; a module attribute so tests (and mirrors) can point it elsewhere.
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def _check_int(name: str, value: Any, allow_none: bool, low: int = 0) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"load_data: {name} must be an integer >= {low}"
                          f"{' or None' if allow_none else ''}. Received: {name}={value!r}")


def encode_sequences(groups: list[Any], labels: list[np.ndarray], *, num_words: int | None,
                     skip_top: int, maxlen: int | None, start_char: int | None,
                     oov_char: int | None, index_from: int
                     ) -> tuple[list[list[list[int]]], list[np.ndarray]]:
    """Keras's transformation of word-id sequences, applied to each group (train, test) with the
    ``num_words`` default taken over all of them.

    Returns:
        The groups as lists of int lists, and their labels (long sequences dropped).

    Raises:
        ConfigError: a negative or non-integer option.
        DataError: ``maxlen`` drops every sequence of a group, or a sequence is not integer ids.
    """
    for name, value, allow_none in (("num_words", num_words, True), ("skip_top", skip_top, False),
                                    ("maxlen", maxlen, True), ("start_char", start_char, True),
                                    ("oov_char", oov_char, True), ("index_from", index_from, False)):
        _check_int(name, value, allow_none)
    out_groups, out_labels = [], []
    for sequences, group_labels in zip(groups, labels):
        try:
            lists = [[int(w) + index_from for w in x] for x in sequences]
        except (TypeError, ValueError) as err:
            raise DataFileError(f"load_data: the file's sequences are not lists of word ids "
                                f"({err})") from err
        if start_char is not None:
            lists = [[start_char] + x for x in lists]
        if maxlen:  # Keras keeps sequences strictly shorter than maxlen
            kept = [i for i, x in enumerate(lists) if len(x) < maxlen]
            lists, group_labels = [lists[i] for i in kept], np.asarray(group_labels)[kept]
            if not lists:
                raise DataError(f"load_data: after filtering for sequences shorter than "
                                f"maxlen={maxlen}, no sequence was kept. Increase maxlen")
        out_groups.append(lists)
        out_labels.append(np.asarray(group_labels))
    if not num_words:
        num_words = max((max(x) for group in out_groups for x in group if x), default=0)
    if oov_char is not None:
        out_groups = [[[w if skip_top <= w < num_words else oov_char for w in x] for x in group]
                      for group in out_groups]
    else:
        out_groups = [[[w for w in x if skip_top <= w < num_words] for x in group]
                      for group in out_groups]
    return out_groups, out_labels


def object_array(sequences: list[list[int]]) -> np.ndarray:
    """A 1-D object array of lists (NumPy would make a 2-D array of equal-length lists)."""
    out = np.empty(len(sequences), dtype=object)
    out[:] = sequences if sequences else []
    return out


def load_word_index(path: str, origin: str, file_hash: str) -> dict[str, int]:
    """A ``{word: index}`` JSON file fetched through :func:`get_file`.

    Raises:
        DataFileError: not a JSON object of word -> int.
    """
    local = get_file(fname=path, origin=origin, file_hash=file_hash)
    try:
        with open(local, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError) as err:
        raise DataFileError(f"{local}: not a readable word index ({err})") from err
    if not isinstance(index, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in index.items()):
        raise DataFileError(f"{local}: a word index must be a JSON object of word -> int")
    return index
