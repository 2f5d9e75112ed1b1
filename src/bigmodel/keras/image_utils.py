"""``keras.utils`` image files: ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``.

As Keras 3 (and ``keras.preprocessing.image``): images are Pillow ``Image`` objects; arrays are
float32 ``(height, width, channels)`` (channels first by ``data_format``).
"""

from __future__ import annotations

import io
import os
import pathlib
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataFileError, InputTypeError, ShapeError
from bigmodel.keras import config
from bigmodel.keras.ops.image import resize

_COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


def _pil() -> Any:
    from PIL import Image  # Pillow: the `keras` extra (it also comes with matplotlib)

    return Image


def _resample(interpolation: str) -> Any:
    methods = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC",
               "hamming": "HAMMING", "box": "BOX", "lanczos": "LANCZOS"}
    if interpolation not in methods:
        raise ConfigError(f"load_img: interpolation must be one of {sorted(methods)}; received "
                          f"interpolation={interpolation!r}")
    return getattr(_pil().Resampling, methods[interpolation])


def _data_format(place: str, data_format: str | None) -> str:
    fmt = data_format or config.image_data_format()
    if fmt not in ("channels_last", "channels_first"):
        raise ConfigError(f"{place}: data_format must be 'channels_last' or 'channels_first'; "
                          f"received data_format={data_format!r}")
    return fmt


def load_img(path: Any, color_mode: str = "rgb", target_size: Any = None,
             interpolation: str = "nearest", keep_aspect_ratio: bool = False) -> Any:
    """An image file (or ``io.BytesIO``) as a Pillow image in ``color_mode``.

    Args:
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"``.
        target_size: ``(height, width)`` to resize to, or None.
        interpolation: Pillow's resampling (``"nearest"``, ``"bilinear"``, ``"bicubic"``,
            ``"lanczos"``, ``"box"``, ``"hamming"``).
        keep_aspect_ratio: crop the centre to the target's aspect ratio before resizing.

    Raises:
        InputTypeError: ``path`` neither a path nor a BytesIO. ConfigError: a bad color mode or
        interpolation. DataFileError: a file that is missing or not an image.
    """
    image_module = _pil()
    if color_mode not in _COLOR_MODES:
        raise ConfigError(f"load_img: color_mode must be 'grayscale', 'rgb' or 'rgba'; received "
                          f"color_mode={color_mode!r}")
    if isinstance(path, io.BytesIO):
        source = path
    elif isinstance(path, (str, bytes, os.PathLike)):
        try:
            source = io.BytesIO(pathlib.Path(os.fsdecode(path)).read_bytes())
        except OSError as error:
            raise DataFileError(f"load_img: cannot read {os.fsdecode(path)}: {error}") from None
    else:
        raise InputTypeError(f"load_img: path must be a path or io.BytesIO; received "
                             f"{type(path).__name__}")
    try:
        image = image_module.open(source)
        image.load()
    except OSError as error:
        raise DataFileError(f"load_img: {path!r} is not an image Pillow can read: {error}") from None
    if color_mode == "grayscale":
        if image.mode not in ("L", "I;16", "I"):  # 16/32-bit grey kept, as Keras
            image = image.convert("L")
    elif image.mode != _COLOR_MODES[color_mode]:
        image = image.convert(_COLOR_MODES[color_mode])
    if target_size is not None:
        height, width = (int(s) for s in target_size)
        if image.size != (width, height):
            resample = _resample(interpolation)
            box = None
            if keep_aspect_ratio:
                in_width, in_height = image.size
                crop_height = min(in_height, in_width * height // width)
                crop_width = min(in_width, in_height * width // height)
                top, left = (in_height - crop_height) // 2, (in_width - crop_width) // 2
                box = (left, top, left + crop_width, top + crop_height)
            image = image.resize((width, height), resample, box=box)
    return image


def img_to_array(img: Any, data_format: str | None = None, dtype: Any = None) -> np.ndarray:
    """A Pillow image (or array-like) as a ``(height, width, channels)`` array (floatx).

    Raises:
        ShapeError: not a 2-D or 3-D image.
    """
    fmt = _data_format("img_to_array", data_format)
    array = np.asarray(img, dtype=dtype or config.floatx())
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim != 3:
        raise ShapeError(f"img_to_array: an image must be 2-D or 3-D; received shape "
                         f"{array.shape}")
    return array.transpose(2, 0, 1) if fmt == "channels_first" else array


def array_to_img(x: Any, data_format: str | None = None, scale: bool = True,
                 dtype: Any = None) -> Any:
    """A ``(height, width, channels)`` array as a Pillow image (1: grey, 3: RGB, 4: RGBA).

    Args:
        scale: stretch the values to [0, 255] (``x - min``, then ``* 255 / max``).

    Raises:
        ShapeError: not rank 3, or a channel count other than 1, 3, 4.
    """
    fmt = _data_format("array_to_img", data_format)
    array = np.asarray(x, dtype=dtype or config.floatx())
    if array.ndim != 3:
        raise ShapeError(f"array_to_img: expected one image of rank 3; received shape "
                         f"{array.shape}")
    if fmt == "channels_first":
        array = array.transpose(1, 2, 0)
    if scale:
        array = array - np.min(array)
        peak = np.max(array)
        if peak != 0:
            array = array / peak
        array = array * 255
    channels = array.shape[2]
    image_module = _pil()
    if channels == 4:
        return image_module.fromarray(array.astype("uint8"), "RGBA")
    if channels == 3:
        return image_module.fromarray(array.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(array) > 255:  # 32-bit grey, as Keras
            return image_module.fromarray(array[:, :, 0].astype("int32"), "I")
        return image_module.fromarray(array[:, :, 0].astype("uint8"), "L")
    raise ShapeError(f"array_to_img: images need 1, 3 or 4 channels; received {channels}")


def save_img(path: Any, x: Any, data_format: str | None = None, file_format: str | None = None,
             scale: bool = True, **kwargs: Any) -> None:
    """Save an image array to ``path`` (or a file object, with ``file_format``).

    The format comes from the file name's extension unless ``file_format`` says; an RGBA image
    saved as JPEG is converted to RGB. The file is written whole or not at all (temporary file,
    then rename). ``kwargs`` go to Pillow's ``Image.save``.

    Raises:
        ConfigError: no format known (a file object without ``file_format``).
    """
    if file_format is None and isinstance(path, (str, os.PathLike)):
        file_format = pathlib.Path(path).suffix[1:] or None
    if file_format is None:
        raise ConfigError(f"save_img: give file_format (no extension to read it from); "
                          f"received path={path!r}")
    file_format = "jpeg" if file_format.lower() == "jpg" else file_format.lower()
    image = array_to_img(x, data_format=data_format, scale=scale)
    if image.mode == "RGBA" and file_format == "jpeg":
        image = image.convert("RGB")
    if not isinstance(path, (str, os.PathLike)):
        image.save(path, format=file_format, **kwargs)
        return
    target = pathlib.Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        image.save(partial, format=file_format, **kwargs)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def smart_resize(x: Any, size: Any, interpolation: str = "bilinear",
                 data_format: str = "channels_last", **kwargs: Any) -> Any:
    """Images resized to ``size = (height, width)`` without distortion: the largest centred
    window of the target's aspect ratio is cut out first (``keras.preprocessing.image``).

    Args:
        x: one image ``(h, w, c)`` or a batch; a NumPy array gives a NumPy array.

    Raises:
        InputTypeError: unknown keyword arguments. ConfigError / ShapeError: as
        ``keras.ops.image.resize``.
    """
    if kwargs:
        raise InputTypeError(f"smart_resize: unexpected keyword arguments {sorted(kwargs)}")
    out = resize(x, size, interpolation=interpolation, crop_to_aspect_ratio=True,
                 data_format=data_format)
    return out.numpy() if isinstance(x, np.ndarray) else out


__all__ = ["array_to_img", "img_to_array", "load_img", "save_img", "smart_resize"]
