"""Image arrays a user hands to a trained model (``bigmodel predict``, ``bigmodel explain``,
``bigmodel serve``): ``.npy`` files or bytes read without pickles, and the conversion of one image or
a batch in any of the accepted layouts to float32 ``(N, C, H, W)`` in [0, 1] as in training."""

from __future__ import annotations

import io
from pathlib import Path


def load_images(path: str | Path):
    """Read a ``.npy`` file safely (no pickles).

    Raises:
        DataFileError: missing, unreadable or not a ``.npy`` array.
        InputTypeError: an object (pickled) array.
    """
    import numpy as np

    from bigmodel.errors import DataFileError, InputTypeError

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"Input file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputTypeError(f"{path} holds a pickled object array; expected a numeric image "
                                 "array (pickles are never loaded)") from None
        raise DataFileError(f"{path} is not a valid .npy file: {exc}") from None
    except OSError as exc:
        raise DataFileError(f"Cannot read {path}: {exc}") from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for .npz archives
        raise DataFileError(f"{path} is an .npz archive; expected a single .npy array")
    return array


def prepare_images(array, channels: int, height: int, width: int, source: str = "input"):
    """Validate and convert images to float32 ``(N, C, H, W)`` in [0, 1].

    Raises:
        InputTypeError: not a real-valued numeric array (bool, complex, strings, objects).
        ShapeError: a shape that is not one image or a batch of ``H×W`` images with ``C`` channels.
        DataError: NaN/Inf, integers outside 0..255, or floats outside [0, 1].
    """
    import numpy as np

    from bigmodel.errors import DataError, InputTypeError, ShapeError, describe

    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise InputTypeError(f"{source}: expected integer (0..255) or floating-point (0..1) pixels; "
                             f"received {describe(array)}")
    shape = array.shape
    image = (height, width)
    if shape == image or (channels == 1 and shape == (height, width, 1)) or shape == (
            channels, height, width) or shape == (height, width, channels):
        array = array[None]  # one image
        shape = array.shape
    if array.ndim == 3 and channels == 1 and shape[1:] == image:
        array = array[:, None]
    elif array.ndim == 4 and shape[1:] == (height, width, channels):
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and shape[1:] == (channels, height, width)):
        expected = f"(N, {height}, {width}, {channels}) or (N, {channels}, {height}, {width})"
        if channels == 1:
            expected = f"(N, {height}, {width}), " + expected
        raise ShapeError(f"{source}: expected images of shape {expected} (or a single image); "
                         f"received {describe(array)}")
    if len(array) == 0:
        raise ShapeError(f"{source}: holds no images; received {describe(array)}")
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataError(f"{source}: integer pixels must be in 0..255; found {low}..{high}")
        return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{source}: contains NaN or Inf")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise DataError(f"{source}: floating-point pixels must be scaled to [0, 1] (divide uint8 "
                        f"pixels by 255); found values {low:g}..{high:g}")
    return array


def read_npy_bytes(data: bytes, source: str = "upload"):
    """A ``.npy`` array from bytes (an upload), without pickles.

    Raises:
        DataFileError: not a ``.npy`` array (or an ``.npz`` archive).
        InputTypeError: an object (pickled) array.
    """
    import numpy as np

    from bigmodel.errors import DataFileError, InputTypeError

    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputTypeError(f"{source} holds a pickled object array; expected a numeric image "
                                 "array (pickles are never loaded)") from None
        raise DataFileError(f"{source} is not a valid .npy file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{source} is not a valid .npy file: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise DataFileError(f"{source} is an .npz archive; expected a single .npy array")
    return array


__all__ = ["load_images", "prepare_images", "read_npy_bytes"]
