"""IMDB movie-review sentiment (25,000 + 25,000 reviews as word ids), as ``keras.datasets.imdb``.

The file is Keras's ``imdb.npz`` (downloaded with :func:`~bigmodel.keras.utils.get_file` into
``~/.keras/datasets``); its ragged sequences are NumPy object arrays, read without pickle
(:mod:`bigmodel.keras.datasets.safe_pickle`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.keras.datasets import word_sequences
from bigmodel.keras.datasets.safe_pickle import load_npz
from bigmodel.keras.utils_files import get_file

__all__ = ["get_word_index", "load_data"]

FILE_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"


def load_data(path: str = "imdb.npz", num_words: int | None = None, skip_top: int = 0,
              maxlen: int | None = None, seed: int = 113, start_char: int | None = 1,
              oov_char: int | None = 2, index_from: int = 3, **kwargs: Any
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load IMDB like Keras 3: same shuffles, marks, cuts and return types.

    Args:
        path: the file's name in the cache (``~/.keras/datasets``).
        num_words: keep the ``num_words`` most frequent words (others become ``oov_char``).
        skip_top: also replace the ``skip_top`` most frequent words by ``oov_char``.
        maxlen: drop sequences of ``maxlen`` ids or more (after the start mark).
        seed: the shuffle seed.
        start_char: id put at the start of each sequence (None: none).
        oov_char: id of cut words (None: cut words are dropped).
        index_from: offset added to each word id.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x as 1-D object arrays of int lists, y int
        arrays of 0 / 1.

    Raises:
        DataFileError: download failed, or the file is not Keras's format (names the file).
        DataError: ``maxlen`` keeps no sequence.
        ConfigError: a bad option or an unknown keyword argument.
    """
    if kwargs:
        raise ConfigError(f"imdb.load_data: unrecognized keyword arguments: {sorted(kwargs)}")
    local = get_file(fname=path, origin=f"{word_sequences.ORIGIN}imdb.npz", file_hash=FILE_HASH)
    f = load_npz(local, ("x_train", "y_train", "x_test", "y_test"))
    rng = np.random.RandomState(seed)  # one generator: train shuffled first, then test
    splits = []
    for x, y in ((f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])):
        if len(x) != len(y):
            raise DataFileError(f"{local}: {len(x)} sequences but {len(y)} labels")
        indices = np.arange(len(x))
        rng.shuffle(indices)
        splits.append((x[indices], y[indices]))
    (x_train, x_test), (y_train, y_test) = word_sequences.encode_sequences(
        [splits[0][0], splits[1][0]], [splits[0][1], splits[1][1]], num_words=num_words,
        skip_top=skip_top, maxlen=maxlen, start_char=start_char, oov_char=oov_char,
        index_from=index_from)
    return ((word_sequences.object_array(x_train), y_train),
            (word_sequences.object_array(x_test), y_test))


def get_word_index(path: str = "imdb_word_index.json") -> dict[str, int]:
    """``{word: index}`` (index 1 is the most frequent word; add ``index_from`` for load_data's
    ids), from Keras's ``imdb_word_index.json``."""
    return word_sequences.load_word_index(
        path, f"{word_sequences.ORIGIN}imdb_word_index.json", WORD_INDEX_HASH)
