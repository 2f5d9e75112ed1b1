"""Reuters newswire topics (11,228 wires as word ids, 46 topics), as ``keras.datasets.reuters``.

Keras's ``reuters.npz`` (ragged object arrays, read without pickle by
:mod:`bigmodel.keras.datasets.safe_pickle`), fetched with :func:`~bigmodel.keras.utils.get_file`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.keras.datasets import word_sequences
from bigmodel.keras.datasets.safe_pickle import load_npz
from bigmodel.keras.utils_files import get_file

__all__ = ["get_label_names", "get_word_index", "load_data"]

FILE_HASH = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_HASH = "4d44cc38712099c9e383dc6e5f11a921"
LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply",
    "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi",
    "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin",
    "strategic-metal", "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei",
    "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead",
)


def load_data(path: str = "reuters.npz", num_words: int | None = None, skip_top: int = 0,
              maxlen: int | None = None, test_split: float = 0.2, seed: int = 113,
              start_char: int | None = 1, oov_char: int | None = 2, index_from: int = 3,
              **kwargs: Any
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Reuters like Keras 3 (one shuffle, then the last ``test_split`` is the test set).

    Args: as :func:`bigmodel.keras.datasets.imdb.load_data`, plus ``test_split`` (fraction in
    ``[0, 1)`` held out for testing).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x as 1-D object arrays of int lists, y int
        topic ids (names in :func:`get_label_names`).

    Raises:
        DataFileError: download failed or the file is not Keras's format.
        DataError: ``maxlen`` keeps no sequence.
        ConfigError: a bad option or an unknown keyword argument.
    """
    if kwargs:
        raise ConfigError(f"reuters.load_data: unrecognized keyword arguments: {sorted(kwargs)}")
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or not (
            0 <= test_split < 1):
        raise ConfigError(f"reuters.load_data: test_split must be in [0, 1). Received: "
                          f"test_split={test_split!r}")
    local = get_file(fname=path, origin=f"{word_sequences.ORIGIN}reuters.npz",
                     file_hash=FILE_HASH)
    f = load_npz(local, ("x", "y"))
    xs, labels = f["x"], f["y"]
    if len(xs) != len(labels):
        raise DataFileError(f"{local}: {len(xs)} sequences but {len(labels)} labels")
    indices = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(indices)
    (xs,), (labels,) = word_sequences.encode_sequences(
        [xs[indices]], [labels[indices]], num_words=num_words, skip_top=skip_top, maxlen=maxlen,
        start_char=start_char, oov_char=oov_char, index_from=index_from)
    idx = int(len(xs) * (1 - test_split))
    return ((word_sequences.object_array(xs[:idx]), np.array(labels[:idx])),
            (word_sequences.object_array(xs[idx:]), np.array(labels[idx:])))


def get_word_index(path: str = "reuters_word_index.json") -> dict[str, int]:
    """``{word: index}`` from Keras's ``reuters_word_index.json``."""
    return word_sequences.load_word_index(
        path, f"{word_sequences.ORIGIN}reuters_word_index.json", WORD_INDEX_HASH)


def get_label_names() -> tuple[str, ...]:
    """The 46 topic names; label ``i`` is ``get_label_names()[i]``."""
    return LABEL_NAMES
