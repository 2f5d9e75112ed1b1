"""Boston and California housing prices (``keras.datasets.boston_housing`` /
``california_housing``): Keras's ``.npz`` files of plain float arrays, read with
``np.load(allow_pickle=False)``, split as Keras splits them."""

from __future__ import annotations

import numpy as np

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.keras.datasets import word_sequences
from bigmodel.keras.utils_files import get_file

__all__ = ["load_housing"]

Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_housing(name: str, path: str, file_hash: str, test_split: float, seed: int,
                 version: str = "large") -> Splits:
    """Fetch ``name`` (``boston_housing.npz`` or ``california_housing.npz``), shuffle it with
    ``RandomState(seed)`` and hold out the last ``test_split`` for testing (Keras's order).

    Raises:
        ConfigError: ``test_split`` outside [0, 1), an unknown ``version``.
        DataFileError: download failed, not an ``.npz`` of arrays ``x`` and ``y`` of one length.
    """
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or not (
            0 <= test_split < 1):
        raise ConfigError(f"Invalid `test_split` argument: {test_split!r}. It must be between 0 "
                          "and 1 (exclusive of 1).")
    if version not in ("small", "large"):
        raise ConfigError(f"Argument `version` must be one of 'small', 'large'. Received: "
                          f"version={version!r}")
    local = get_file(fname=path, origin=f"{word_sequences.ORIGIN}{name}", file_hash=file_hash)
    try:
        with np.load(local, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise DataFileError(f"{local}: not Keras's {name} (an .npz of arrays x and y): "
                            f"{err}") from err
    if len(x) != len(y):
        raise DataFileError(f"{local}: {len(x)} rows of x but {len(y)} of y")
    if version == "small":
        x, y = x[:600], y[:600]
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))
